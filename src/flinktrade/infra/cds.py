"""Class-data sharing archives for the two JVMs whose start-up users wait on: the broker and the job.

A JVM spends much of its start-up reading, parsing and verifying classes; a CDS archive holds
them ready to map. ``make setup`` runs ``cds.main(["build"])``: it runs one short demo as a user
would (``_train``), its broker and its job's gateway JVM with ``-XX:ArchiveClassesAtExit``, and
keeps the archive each writes when it exits in ``.cache/jars/cds/`` with a key: the Java binary and
the jars it was made for (the gateway's include the job's own, which are on its class path:
``jvm.gateway_class_path``). From then on ``flags(name)`` gives ``-XX:SharedArchiveFile=...`` while
the key still matches, and nothing otherwise (no build, a JDK or a jar changed since): that JVM
then starts as before. The JVM checks the archive against its class path itself and runs without
it on any mismatch (``-Xshare:auto``, its default), so an archive can cost nothing but its disk.

Measured on the 2-core machine (2026-12-04): the broker's start to its first accepted connection
3.4-3.8 s -> 1.8-2.6 s; a job's ``prepare`` (gateway JVM, environments, plan) 10.4-11.0 s ->
7.6-8.6 s and its submission 3.6 -> 2.9 s. Made from a demo rather than from each JVM's bare start,
with the job's jars on the gateway's class path (2026-12-08): the demo's first signal 8.2-11.5 s
after the command instead of 10.8-12.4 s, in alternated pairs (docs/benchmarks.md, session 34).

    python -c "from flinktrade.infra import cds; cds.main(['build'])"    (cached)
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from flinktrade.infra import jvm, process

log = logging.getLogger(__name__)

BROKER, GATEWAY = "broker", "gateway"
NAMES = (BROKER, GATEWAY)
DISABLE_ENV = "FLINKTRADE_NO_CDS"
"""Set (to anything but ``0``): no JVM uses an archive, and ``build`` makes none."""


def archive_dir() -> Path:
    return jvm.jars_dir() / "cds"


def _jars(name: str) -> list[Path]:
    if name == BROKER:
        return sorted((jvm.jars_dir() / "kafka").glob("*.jar"))
    return [*sorted(jvm.flink_lib_dir().glob("*.jar")), *jvm.job_jars()]


def key(name: str) -> str:
    """What an archive is valid for: the Java binary and the jars on its JVM's class path."""
    java = Path(jvm.java_binary()).resolve()
    parts = [name, str(java), _stamp(java)]
    parts += [f"{p.name}:{_stamp(p)}" for p in _jars(name)]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _stamp(path: Path) -> str:
    stat = path.stat()
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def _disabled() -> bool:
    return os.environ.get(DISABLE_ENV, "") not in ("", "0")


ARCHIVE_OPTIONS = ("-XX:SharedArchiveFile=", "-XX:ArchiveClassesAtExit=")
"""The JVM options that name a class-data archive, to map or to write."""


def names_archive(jvm_args: str | None) -> bool:
    """Whether ``jvm_args`` (a ``JVM_ARGS`` value) already names an archive (then no other is
    added: a JVM takes one, and ``build`` passes the one it writes)."""
    return any(option in (jvm_args or "") for option in ARCHIVE_OPTIONS)


def flags(name: str) -> list[str]:
    """The JVM flags that use ``name``'s archive, if there is one for the JVM as it is now."""
    if _disabled():
        return []
    path = archive_dir() / f"{name}.jsa"
    try:
        recorded = json.loads((archive_dir() / f"{name}.json").read_text())["key"]
        usable = path.is_file() and recorded == key(name)
    except (OSError, ValueError, KeyError, TypeError):
        return []
    return [f"-XX:SharedArchiveFile={path}"] if usable else []


def build() -> dict[str, str]:
    """Make the archives that are missing or stale, in one training run (``_train``); what
    happened to each (never raises: a JVM without an archive starts as it did before)."""
    if _disabled():
        return dict.fromkeys(NAMES, f"off ({DISABLE_ENV})")
    archive_dir().mkdir(parents=True, exist_ok=True)
    done = {name: "up to date" for name in NAMES if flags(name)}
    parts = {
        name: archive_dir() / f"{name}.jsa.part-{os.getpid()}" for name in NAMES if name not in done
    }
    try:
        for part in parts.values():
            part.unlink(missing_ok=True)
        if parts:
            _train(parts)
        for name, part in parts.items():
            _wait_for_writer(part)
            if not part.is_file() or part.stat().st_size == 0:
                raise RuntimeError(f"the {name} JVM wrote no archive")
        for name, part in parts.items():
            part.replace(archive_dir() / f"{name}.jsa")
            (archive_dir() / f"{name}.json").write_text(json.dumps({"key": key(name)}))
            done[name] = "built"
    except Exception as exc:  # an archive only speeds start-up: never fail the set-up
        for name in parts:
            log.warning("no class-data archive for the %s JVM: %s", name, exc)
            done.setdefault(name, f"not built: {exc}")
    finally:
        for part in parts.values():
            part.unlink(missing_ok=True)
    return {name: done[name] for name in NAMES}


TRAINING_DEMO_S = 12
"""The training demo's ``--duration`` (counted from its job's submission): its first bars and
signals come 2-5 s into it on this machine without an archive."""


def _train(parts: dict[str, Path]) -> None:
    """Write the archives ``parts`` names (broker, gateway, or both) from one demo, run as a user
    runs it, on a state folder and ports of its own and with none of this process's settings or
    secrets (the allow-listed environment, a temporary working folder): its broker started here
    first, which the demo reuses, with ``-XX:ArchiveClassesAtExit`` when its archive is wanted,
    and its job's gateway JVM with the same on ``JVM_ARGS``. Each JVM writes its archive as it
    exits. Both archives then hold what the demo's start loads, not only the JVMs' own start: the
    broker's request handling, the job's tasks, Kafka clients and Python operators (an archive
    made from a job cancelled before it ran left ~1,000 of the classes the demo's job loaded
    outside it)."""
    from flinktrade.config import BrokerSettings
    from flinktrade.infra import daemon
    from flinktrade.infra.kafka import LocalKafka

    with tempfile.TemporaryDirectory(prefix="flinktrade-cds-") as tmp:
        state = Path(tmp) / "state"
        settings = BrokerSettings(port=process.free_port(), controller_port=process.free_port())
        broker = LocalKafka(settings, state)
        if BROKER in parts:
            broker.archive_flags = [f"-XX:ArchiveClassesAtExit={parts[BROKER]}"]
        env = daemon.daemon_env(
            {
                "FLINKTRADE_STATE_DIR": str(state),
                "FLINKTRADE_BROKER__PORT": str(settings.port),
                "FLINKTRADE_BROKER__CONTROLLER_PORT": str(settings.controller_port),
                "FLINKTRADE_KAFKA__BOOTSTRAP_SERVERS": broker.bootstrap_servers,
            }
        )
        if "FLINKTRADE_JARS_DIR" in os.environ:
            env["FLINKTRADE_JARS_DIR"] = os.environ["FLINKTRADE_JARS_DIR"]
        if GATEWAY in parts:
            env["JVM_ARGS"] = f"-XX:ArchiveClassesAtExit={parts[GATEWAY]}"
        demo = ["demo", "--duration", str(TRAINING_DEMO_S), "--api-port", "0"]
        broker.up()
        try:
            subprocess.run(
                [sys.executable, "-m", "flinktrade.cli", *demo], cwd=tmp, env=env, check=True,
                capture_output=True, timeout=300,
            )  # fmt: skip
        finally:
            broker.down(timeout_s=120)  # its JVM writes the archive as it exits


def _wait_for_writer(part: Path, timeout_s: float = 120.0) -> None:
    """Wait until no process runs with ``part`` on its command line (the JVM writing it has
    exited, so the archive is complete)."""
    needle = str(part)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not any(needle in arg for args in process.command_lines() for arg in args):
            return
        time.sleep(0.2)
    raise TimeoutError(f"the JVM writing {part.name} did not exit in {timeout_s:.0f} s")


def main(argv: Sequence[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if list(argv) != ["build"]:
        sys.stderr.write("usage: cds build\n")
        return 2
    sys.stdout.write(json.dumps(build()) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
