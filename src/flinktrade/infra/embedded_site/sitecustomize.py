"""Run by Python's ``site`` in every interpreter that starts with this folder on its ``PYTHONPATH``:
flinktrade puts it first there for the JVMs that run its job (the gateway's MiniCluster, a local
session cluster's TaskManagers; ``infra.embedded.python_path``). In the interpreter such a JVM embeds
for a thread-mode job's Python operators, PyFlink's worker runtime is registered without Apache
Beam (``flinktrade.infra.embedded``). In any other process (a process-mode Python worker
the JVM starts, a Python child of the client) it does nothing. Either way it then runs the
``sitecustomize`` it hides, if there is one (Debian's Python has its own).
"""

import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent


def _in_a_jvm() -> bool:
    """True in a process whose program is a Java runtime: the embedded interpreter's process."""
    try:
        program = Path("/proc/self/exe").readlink()
    except OSError:  # not Linux: nothing is known, nothing is done
        return False
    return program.name == "java"


def _register() -> None:
    try:
        from flinktrade.infra.embedded import register_without_init

        register_without_init()
    except Exception as exc:  # PyFlink's own __init__ runs then, as without this folder
        sys.stderr.write(f"flinktrade: the worker runtime is imported in full: {exc!r}\n")


def _run_the_hidden_one() -> None:
    from importlib.machinery import PathFinder
    from importlib.util import module_from_spec

    path = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
    spec = PathFinder.find_spec("sitecustomize", path)
    if spec is not None and spec.loader is not None:
        spec.loader.exec_module(module_from_spec(spec))


if _in_a_jvm():
    _register()
_run_the_hidden_one()
