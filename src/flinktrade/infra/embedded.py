"""The Python a JVM embeds for a thread-mode job: its ``PYTHONPATH``, and PyFlink's worker runtime
without the import of Apache Beam.

``pyflink.fn_execution``'s ``__init__`` imports Apache Beam, pandas (through Beam) and PyFlink's
Cython coders, only to decide one flag, ``PYFLINK_CYTHON_ENABLED``, which picks the compiled
coders of the Beam-based runtime that process mode's Python workers run. Two kinds of
interpreter use the package's modules and none of that:

- a client that plans a job in thread mode: it reads one module, the protocol buffers that
  describe each Python function (``pipeline.job.environment``; 0.8-0.9 s of every job's build);
- the interpreter embedded in a JVM that runs a thread-mode job's Python operators (the gateway's
  MiniCluster, a local session cluster's TaskManagers): its modules (``pyflink.fn_execution.
  embedded`` and ``.datastream.embedded``) hand values to Java through PEMJA and pickle; a coder
  of the package serves only Python windows, which flinktrade's job has none of. There the import
  was half of the tasks' start in the demo, on the path to its first signal (py-spy;
  docs/benchmarks.md, session 20). ``SITE``, first on those JVMs' ``PYTHONPATH``
  (``python_path``), holds a ``sitecustomize`` that registers the package this way before
  anything imports it.

The package is registered as it is, minus what its ``__init__`` runs: every module of it still
imports from the same files; with ``PYFLINK_CYTHON_ENABLED`` False a coder that is used anyway is
the pure-Python one, which encodes the same bytes. This module imports only the standard library:
``sitecustomize`` imports it while the embedded interpreter starts.
"""

from __future__ import annotations

import importlib.util
import os
import site
import sys
import types
from pathlib import Path

WORKER_RUNTIME = "pyflink.fn_execution"
"""PyFlink's package of the Python workers' runtime."""

SITE = Path(__file__).with_name("embedded_site")
"""The folder of the ``sitecustomize`` that calls ``register_without_init`` in a JVM's embedded
interpreter (and does nothing in any other process that has the folder on its path)."""


def python_path(extra: list[str] | None = None) -> str:
    """PYTHONPATH for JVM-embedded (thread-mode) Python on this machine: ``SITE``, this package's
    source root, the working directory (user strategies by dotted path), this venv's
    site-packages, then ``extra`` (by default the entries of this process's own
    ``PYTHONPATH``)."""
    if extra is None:
        extra = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    package_root = str(Path(__file__).resolve().parents[2])
    paths = [str(SITE), package_root, str(Path.cwd()), *site.getsitepackages(), *extra]
    return os.pathsep.join(dict.fromkeys(paths))


def register_without_init() -> bool:
    """Let this interpreter import the modules of ``WORKER_RUNTIME`` without running its
    ``__init__``; False (and nothing done) when the package is imported already or not
    installed."""
    if WORKER_RUNTIME in sys.modules:
        return False
    spec = importlib.util.find_spec(WORKER_RUNTIME)
    if spec is None or spec.submodule_search_locations is None:
        return False
    package = types.ModuleType(WORKER_RUNTIME)
    package.__spec__ = spec
    package.__file__ = spec.origin
    package.__path__ = list(spec.submodule_search_locations)
    package.PYFLINK_CYTHON_ENABLED = False  # type: ignore[attr-defined]
    sys.modules[WORKER_RUNTIME] = package
    sys.modules["pyflink"].fn_execution = package  # type: ignore[attr-defined]
    return True
