"""The ``flinktrade`` command run as a separate process, the way tests run it.

``run_flinktrade`` is the one runner of the tests that check the command as a user meets it (exit
code, stdout, stderr): this interpreter's ``python -m flinktrade.cli`` (or, with ``script``, the
``flinktrade`` console script installed beside it), with exactly the environment and working
directory the test gives, output captured as text, a time limit, and no exception for a non-zero
exit. ``flinktrade_argv`` is the same command line, for tests that start a long-running command
themselves (``subprocess.Popen``). Reading what a run printed is ``testing.output``.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path


def flinktrade_argv(*args: str, script: bool = False) -> list[str]:
    """The command line of ``flinktrade args...``: ``python -m flinktrade.cli`` with this
    interpreter, or (``script``) the console script of this interpreter's environment."""
    if script:
        return [str(Path(sys.executable).with_name("flinktrade")), *args]
    return [sys.executable, "-m", "flinktrade.cli", *args]


def run_flinktrade(
    *args: str,
    env: Mapping[str, str],
    cwd: Path | str | None = None,
    timeout: float = 120.0,
    script: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run ``flinktrade args...`` to its end with ``env`` as its whole environment, in ``cwd``;
    stdout and stderr captured as text. ``subprocess.TimeoutExpired`` after ``timeout`` seconds
    (the process is killed); a non-zero exit is the caller's to check."""
    return subprocess.run(
        flinktrade_argv(*args, script=script),
        env=dict(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
