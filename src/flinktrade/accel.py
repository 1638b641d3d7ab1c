"""The compiled analytics core: the same source, built by mypyc, used only while it matches.

``make setup`` runs ``accel.main(["build"])``: it compiles ``COMPILED`` (the indicators,
about half of the per-bar core's time) with mypyc into ``_mypyc/`` beside this file (never beside the
sources, so nothing shadows a ``.py`` by accident) and writes a manifest with the SHA-256 of
every source the build read (the compiled modules and the flinktrade modules they import), the
Python and mypy versions. It is a no-op when the manifest already matches.

``install()`` (called by ``flinktrade/__init__.py``) puts a finder first on ``sys.meta_path``:
importing a compiled module loads its extension only if the manifest matches the sources on
disk right now; otherwise (a source edited since the build, another Python, no build at all)
the plain Python source is imported, with one warning for a stale or unusable build. Setting
``FLINKTRADE_PURE_PYTHON=1`` always imports the source. Both forms compute the same values and
pickle their state the same way, so a checkpoint written by one restores in the other.

    python -c "from flinktrade import accel; accel.main(['build'])"    compile (cached)
    python -c "from flinktrade import accel; accel.main(['status'])"   JSON: is it in use
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import logging
import os
import sys
import sysconfig
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

log = logging.getLogger(__name__)

COMPILED: tuple[str, ...] = ("flinktrade.indicators", "flinktrade.pipeline.analytics")
"""The modules built by mypyc (typed, pure, no I/O): the indicators and the model around them
(``SymbolModel``: alerts, the strategies' dispatch, the events it makes; its plain input classes
live in ``pipeline.inputs``, left uncompiled). The built-in strategies gain nothing measurable
from it (they are called through the ``Strategy`` protocol either way)."""

C_MODULES: tuple[str, ...] = ("flinktrade._exact",)
"""Modules written in C (``flinktrade/_exact.c``: the exact windows' kernel, used by the
indicators), built beside the mypyc modules with the interpreter's C compiler, under the same
manifest."""

READS: tuple[str, ...] = (
    "flinktrade.errors",
    "flinktrade.events",
    "flinktrade.config",
    "flinktrade.strategies",
    "flinktrade.strategies.base",
    "flinktrade.pipeline.inputs",
)
"""The flinktrade modules the compiled ones import: mypyc reads their types at build time, so a
change in them also makes the build stale."""

PURE_ENV = "FLINKTRADE_PURE_PYTHON"
PACKAGE_DIR = Path(__file__).resolve().parent
BUILD_DIR = PACKAGE_DIR / "_mypyc"
MANIFEST = "manifest.json"


def _source(module: str) -> Path:
    path = PACKAGE_DIR.parent.joinpath(*module.split("."))
    if path.is_dir():  # a package: its __init__
        return path / "__init__.py"
    return path.with_suffix(".c" if module in C_MODULES else ".py")


def fingerprint() -> dict[str, Any]:
    """What a build is valid for: the sources' hashes, the interpreter ABI and mypy's version."""
    from mypy.version import __version__ as mypy_version

    builder = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()  # this file builds it
    return {**_runtime(), "mypy": mypy_version, "builder": builder, "sources": _hashes()}


def _runtime() -> dict[str, Any]:
    return {"python": sys.version, "abi": sysconfig.get_config_var("EXT_SUFFIX")}


def _hashes() -> dict[str, str]:
    modules = (*COMPILED, *C_MODULES, *READS)
    return {m: hashlib.sha256(_source(m).read_bytes()).hexdigest() for m in modules}


def _manifest(build_dir: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads((build_dir / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


class CompiledFinder(importlib.abc.MetaPathFinder):
    """Finds the compiled modules in ``build_dir`` while its manifest matches the sources."""

    def __init__(self, build_dir: Path = BUILD_DIR) -> None:
        self.build_dir = build_dir
        self._usable: bool | None = None  # decided at the first import of a compiled module
        self.reason = ""  # why the build is not used ("" when it is, or before the first import)
        self._files: dict[str, str] = {}  # module name -> extension file

    def usable(self) -> bool:
        if self._usable is None:
            self._usable = self._check()
        return self._usable

    def _check(self) -> bool:
        if os.environ.get(PURE_ENV, "") not in ("", "0"):
            return self._quiet(f"{PURE_ENV} is set")
        doc = _manifest(self.build_dir)
        if doc is None:
            return self._quiet("not built")
        runtime = _runtime()
        if doc.get("python") != runtime["python"] or doc.get("abi") != runtime["abi"]:
            self.reason = f"built for another Python ({doc.get('python')})"
        else:
            try:
                hashes = _hashes()
            except OSError as exc:
                hashes, self.reason = {}, f"cannot read the sources: {exc}"
            if hashes and doc.get("sources") != hashes:
                built = doc.get("sources") or {}
                changed = sorted(m for m in hashes if built.get(m) != hashes[m])
                self.reason = f"stale: {', '.join(changed)} changed since the build"
            elif hashes:
                files = doc.get("files")
                if isinstance(files, dict) and all(
                    (self.build_dir / f).is_file() for f in files.values()
                ):
                    self._files = {str(k): str(v) for k, v in files.items()}
                    return True
                self.reason = "incomplete build"
        log.warning(
            "the compiled analytics core is not used (%s): running the Python source; "
            "`make setup` rebuilds it",
            self.reason,
        )
        return False

    def _quiet(self, reason: str) -> bool:
        self.reason = reason
        log.info("the compiled analytics core is not used (%s)", reason)
        return False

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None = None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if (
            fullname not in COMPILED
            and fullname not in C_MODULES
            and not fullname.endswith("__mypyc")
        ):
            return None
        if not self.usable() or fullname not in self._files:
            return None
        file = str(self.build_dir / self._files[fullname])
        loader = importlib.machinery.ExtensionFileLoader(fullname, file)
        return importlib.util.spec_from_file_location(fullname, file, loader=loader)


def install() -> CompiledFinder:
    """Put the finder first on ``sys.meta_path`` (once per process)."""
    for finder in sys.meta_path:
        if isinstance(finder, CompiledFinder):
            return finder
    finder = CompiledFinder()
    sys.meta_path.insert(0, finder)
    return finder


def status() -> dict[str, Any]:
    """Which compiled modules are imported now, and why the build is not used if it is not."""
    finder = install()
    usable = finder.usable()
    loaded = sorted(
        name
        for name in COMPILED
        if name in sys.modules
        and getattr(sys.modules[name], "__file__", "").endswith(
            str(sysconfig.get_config_var("EXT_SUFFIX"))
        )
    )
    return {"compiled": usable, "reason": finder.reason, "loaded": loaded}


def build(force: bool = False, build_dir: Path = BUILD_DIR) -> bool:
    """Compile ``COMPILED`` into ``build_dir`` unless its manifest already matches; True if it
    built. The sources are copied to a scratch directory first: mypyc writes its extensions
    beside the sources it compiles, and they must never land in the package itself."""
    import shutil
    import subprocess
    import tempfile

    want = fingerprint()
    have = _manifest(build_dir)
    if not force and have is not None and {k: have.get(k) for k in want} == want:
        return False
    with tempfile.TemporaryDirectory(prefix="flinktrade-mypyc-") as scratch:
        work = Path(scratch)
        shutil.copytree(
            PACKAGE_DIR,
            work / "flinktrade",
            ignore=shutil.ignore_patterns("_mypyc", "__pycache__", "*.so"),
        )
        files = [str(Path(*m.split(".")).with_suffix(".py")) for m in COMPILED]
        env = {**os.environ, "MYPY_CACHE_DIR": str(work / ".mypy_cache")}
        done = subprocess.run(
            [sys.executable, "-m", "mypyc", *files],
            cwd=work,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            tail = "\n".join(done.stdout.splitlines()[-20:])
            raise RuntimeError(f"mypyc failed (exit {done.returncode}):\n{tail}")
        suffix = str(sysconfig.get_config_var("EXT_SUFFIX"))
        found: dict[str, str] = {}
        for module in COMPILED:
            rel = Path(*module.split(".")).with_name(module.rsplit(".", 1)[1] + suffix)
            if not (work / rel).is_file():
                raise RuntimeError(f"mypyc built no {rel}")
            found[module] = str(rel)
        for module in C_MODULES:
            found[module] = _compile_c(work, module, suffix)
        for lib in work.rglob(f"*__mypyc{suffix}"):  # the shared library of the group
            rel = lib.relative_to(work)
            if rel.parts[0] != "build":
                found[".".join(rel.parts).removesuffix(suffix)] = str(rel)
        fresh = build_dir.with_name(build_dir.name + ".new")
        shutil.rmtree(fresh, ignore_errors=True)
        for rel_file in found.values():
            (fresh / rel_file).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(work / rel_file, fresh / rel_file)
        (fresh / MANIFEST).write_text(json.dumps({**want, "files": found}, indent=1) + "\n")
        shutil.rmtree(build_dir, ignore_errors=True)
        fresh.rename(build_dir)
    return True


def _compile_c(work: Path, module: str, suffix: str) -> str:
    """Compile ``module``'s C source (copied into ``work``) into an extension beside it, with the
    compiler and flags the interpreter was built with; its path relative to ``work``."""
    import shlex
    import subprocess

    rel = Path(*module.split("."))
    source, target = work / rel.with_suffix(".c"), rel.with_name(rel.name + suffix)
    compiler = shlex.split(str(sysconfig.get_config_var("CC") or "cc"))
    command = [
        *compiler, "-O2", "-fwrapv", "-ffp-contract=off", "-fPIC", "-shared", "-Wall",
        f"-I{sysconfig.get_paths()['include']}", str(source), "-o", str(work / target), "-lm",
    ]  # fmt: skip
    done = subprocess.run(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False
    )
    if done.returncode != 0:
        tail = "\n".join(done.stdout.splitlines()[-20:])
        raise RuntimeError(f"compiling {source.name} failed (exit {done.returncode}):\n{tail}")
    return str(target)


def main(argv: Sequence[str]) -> int:
    """``build [--force]`` or ``status`` (see the module docstring); a failed build is reported
    in one line and is not an error: the Python source is used."""
    args = list(argv)
    if args[:1] == ["status"]:
        sys.stdout.write(json.dumps(status()) + "\n")
        return 0
    if args[:1] != ["build"] or set(args[1:]) - {"--force"}:
        sys.stderr.write("usage: main(['build']) | main(['build', '--force']) | main(['status'])\n")
        return 2
    try:
        built = build(force="--force" in args)
    except (RuntimeError, OSError, ImportError) as exc:  # no compiler, no mypy: the source runs
        sys.stdout.write(f"flinktrade.accel: not compiled ({exc}); the Python source is used\n")
        return 0
    sys.stdout.write("flinktrade.accel: compiled core " + ("built\n" if built else "up to date\n"))
    return 0
