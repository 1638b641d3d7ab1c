"""Class-data sharing archives for the two JVMs whose start-up users wait on: the broker and the job.

A JVM spends much of its start-up reading, parsing and verifying classes; a CDS archive holds
them ready to map. ``make setup`` runs ``cds.main(["build"])``: it starts each JVM once as it
runs for real, with ``-XX:ArchiveClassesAtExit`` (the Kafka broker up and down on a temporary
folder; a job's gateway JVM that builds, submits and cancels the default job), and keeps the
archive each writes when it exits in ``.cache/jars/cds/`` with a key: the Java binary and the
jars it was made for. From then on ``flags(name)`` gives ``-XX:SharedArchiveFile=...`` while the
key still matches, and nothing otherwise (no build, a JDK or a jar changed since): that JVM then
starts as before. The JVM checks the archive against its class path itself and runs without it
on any mismatch (``-Xshare:auto``, its default), so an archive can cost nothing but its disk.

Measured on the 2-core machine (2026-12-04): the broker's start to its first accepted connection
3.4-3.8 s -> 1.8-2.6 s; a job's ``prepare`` (gateway JVM, environments, plan) 10.4-11.0 s ->
7.6-8.6 s and its submission 3.6 -> 2.9 s.

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
    return sorted(jvm.flink_lib_dir().glob("*.jar"))


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
    """Make each archive that is missing or stale; what happened to each (never raises: a JVM
    without an archive starts as it did before)."""
    done: dict[str, str] = {}
    if _disabled():
        return dict.fromkeys(NAMES, f"off ({DISABLE_ENV})")
    archive_dir().mkdir(parents=True, exist_ok=True)
    for name in NAMES:
        if flags(name):
            done[name] = "up to date"
            continue
        part = archive_dir() / f"{name}.jsa.part-{os.getpid()}"
        part.unlink(missing_ok=True)
        try:
            (_train_broker if name == BROKER else _train_gateway)(part)
            _wait_for_writer(part)
            if not part.is_file() or part.stat().st_size == 0:
                raise RuntimeError("the JVM wrote no archive")
            part.replace(archive_dir() / f"{name}.jsa")
            (archive_dir() / f"{name}.json").write_text(json.dumps({"key": key(name)}))
            done[name] = "built"
        except Exception as exc:  # an archive only speeds start-up: never fail the set-up
            log.warning("no class-data archive for the %s JVM: %s", name, exc)
            done[name] = f"not built: {exc}"
        finally:
            part.unlink(missing_ok=True)
    return done


def _train_broker(part: Path) -> None:
    from flinktrade.config import BrokerSettings
    from flinktrade.infra.kafka import LocalKafka

    with tempfile.TemporaryDirectory(prefix="flinktrade-cds-") as tmp:
        broker = LocalKafka(
            BrokerSettings(
                port=process.free_port(), controller_port=process.free_port(), heap="512m"
            ),
            Path(tmp),
        )
        broker.archive_flags = [f"-XX:ArchiveClassesAtExit={part}"]
        broker.up()
        broker.down(timeout_s=120)  # the JVM writes the archive as it exits


_GATEWAY_RUN = """
from flinktrade.pipeline import job
io = job.JobIO(bootstrap_servers="127.0.0.1:9")  # never reached: the job is cancelled at once
options = job.JobOptions(checkpoint_dir=None, restart_attempts=0, name="flinktrade-cds")
client = job.prepare(io, options).execute_async(options.name)
client.cancel().result()
"""


def _train_gateway(part: Path) -> None:
    env = dict(os.environ)
    env["JVM_ARGS"] = f"{env.get('JVM_ARGS', '')} -XX:ArchiveClassesAtExit={part}".strip()
    env[DISABLE_ENV] = "1"  # this run makes the archive: it must not also read an old one
    with tempfile.TemporaryDirectory(prefix="flinktrade-cds-") as tmp:
        subprocess.run(
            [sys.executable, "-c", _GATEWAY_RUN], cwd=tmp, env=env, check=True,
            capture_output=True, timeout=300,
        )  # fmt: skip


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
