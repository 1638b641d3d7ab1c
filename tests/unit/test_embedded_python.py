"""The ``sitecustomize`` that spares a JVM's embedded interpreter the import of Apache Beam does
nothing in any other process, and runs the ``sitecustomize`` it hides.

That it acts inside the JVM is tested on a real MiniCluster: tests/integration/test_job.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from flinktrade.infra.embedded import SITE, python_path

PROBE = """
import sys
import pyflink.fn_execution as runtime
print(runtime.PYFLINK_CYTHON_ENABLED, "apache_beam" in sys.modules)
"""


def _python(code: str, pythonpath: list[Path]) -> list[str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(str(p) for p in pythonpath))
    done = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "flinktrade:" not in done.stderr
    return done.stdout.split()


def test_the_jvms_python_path_starts_with_the_folder_of_the_hook() -> None:
    paths = python_path(["/elsewhere"]).split(os.pathsep)
    assert paths[0] == str(SITE)
    assert (SITE / "sitecustomize.py").is_file()
    assert paths[-1] == "/elsewhere"


def test_outside_a_jvm_the_worker_runtime_is_imported_as_pyflink_does() -> None:
    """A Python process with the folder on its path (a process-mode worker the JVM starts, a
    child of the client) imports PyFlink's worker runtime in full, Beam and the Cython coders."""
    assert _python(PROBE, [SITE]) == ["True", "True"]


def test_the_sitecustomize_it_hides_still_runs(tmp_path: Path) -> None:
    (tmp_path / "sitecustomize.py").write_text("import sys\nsys.hidden_site_ran = True\n")
    code = "import sys; print(getattr(sys, 'hidden_site_ran', False))"
    assert _python(code, [SITE, tmp_path]) == ["True"]
