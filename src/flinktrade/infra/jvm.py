"""Where the JVM pieces live and how they get there.

``jvm/pom.xml`` names the Kafka broker and the Flink Kafka connector; Maven resolves them into
``.cache/jars``. The job's Java helper functions (``jvm/udf``) are compiled with ``javac`` against
the jars that ship inside the ``apache-flink`` wheel, so the versions always match the runtime,
and the Kafka connector (the trades' record deserializer).
All of it is cached: a second call does nothing.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from flinktrade.config import JitCompiler
from flinktrade.errors import InfraError
from flinktrade.infra import process

log = logging.getLogger(__name__)

KAFKA_CONNECTOR_JAR = "flink-sql-connector-kafka-5.0.0-2.2.jar"
UDF_JAR = "flinktrade-udf.jar"
C1_ONLY = "-XX:TieredStopAtLevel=1"
"""The HotSpot option of a JVM that compiles with C1 only (``config.JitCompiler.C1``)."""


def jit_options(jit: JitCompiler) -> list[str]:
    """The HotSpot options that make a JVM compile with ``jit`` (tiered: the JVM's default, none)."""
    return [C1_ONLY] if jit is JitCompiler.C1 else []


PROCESS_TMP_PREFIX = "flinktrade-jvm-"


def process_tmpdir(root: Path | None = None) -> Path:
    """An empty folder for the temporary files of the JVM this process starts (its
    ``java.io.tmpdir``): ``<root>/flinktrade-jvm-<uid>/<pid>``, ``root`` being the system's
    temporary folder unless given. The folders of processes that are gone are removed first.

    Why: Flink's table planner loader unpacked a 44 MB jar into the JVM's temporary folder at every
    start (the job has used no table environment since session 33) and deletes it only when the
    JVM exits normally; every job JVM that was killed instead (SIGKILL, the OOM killer, a crash
    test) left its jar behind, with Flink's ``flink-io``, ``flink-netty-shuffle``,
    ``flink-dist-cache`` and ``python-dist`` folders: 461 jars, 20 GB of ``/tmp``, after a day of
    this project's tests. Those folders still come with every job JVM."""
    parent = Path(root or tempfile.gettempdir()) / f"{PROCESS_TMP_PREFIX}{os.getuid()}"
    mine = parent / str(os.getpid())
    try:
        parent.mkdir(mode=0o700, exist_ok=True)
        parent.chmod(0o700)  # this user's alone (and not another user's made in its place)
        for folder in parent.iterdir():
            if folder.name.isdigit() and not process.alive(int(folder.name)):
                shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(mine, ignore_errors=True)  # a gone process's, whose pid this one reuses
        mine.mkdir()
    except OSError as exc:
        raise InfraError(
            f"cannot create the JVM's temporary folder {mine}: {exc.strerror} (see TMPDIR)"
        ) from None
    return mine


def project_root() -> Path:
    """The checkout that holds ``jvm/pom.xml`` (this package's source tree), else the cwd."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "jvm" / "pom.xml").is_file():
            return parent
    return Path.cwd()


def jars_dir() -> Path:
    override = os.environ.get("FLINKTRADE_JARS_DIR")
    return Path(override) if override else project_root() / ".cache" / "jars"


def kafka_classpath() -> str:
    return str(jars_dir() / "kafka" / "*")


def flink_lib_dir() -> Path:
    import pyflink  # the wheel ships Flink's own jars

    return Path(pyflink.__file__).parent / "lib"


def job_jars() -> list[Path]:
    """The job's own jars (the Kafka connector and ``jvm/udf``'s functions): on the gateway JVM's
    class path (``gateway_class_path``), and on ``pipeline.jars`` for a job that needs them
    shipped."""
    return [jars_dir() / "flink" / KAFKA_CONNECTOR_JAR, jars_dir() / "flink" / UDF_JAR]


GATEWAY_CLASS_PATH_ENV = "HADOOP_CLASSPATH"
"""The one variable pyflink's gateway launcher (``pyflink_gateway_server``) appends to its JVM's
class path, after Flink's ``lib/`` jars and ``flink-python``."""


def gateway_class_path(before: str | None) -> str:
    """``GATEWAY_CLASS_PATH_ENV`` for the gateway JVM: the job's jars, then what it held
    (``before``).

    Why: jars a job ships (``pipeline.jars``) are loaded, in a local MiniCluster too, by a user-code
    class loader from copies in the blob store whose names change with every job, so none of their
    ~2,400 classes (the shaded Kafka clients, the connector, ``jvm/udf``) could come from the class-
    data archive (``infra.cds``) and each was read and verified again by every job. On the JVM's own
    class path they are archived like Flink's, and a local job ships none of them
    (``job.environment``): the demo's gateway spent ~2.4 CPU-s less to its first bar
    (docs/benchmarks.md, session 34)."""
    return os.pathsep.join([*(str(jar) for jar in job_jars()), *([before] if before else [])])


def java_binary() -> str:
    java_home = os.environ.get("JAVA_HOME")
    candidate = Path(java_home) / "bin" / "java" if java_home else None
    if candidate and candidate.is_file():
        return str(candidate)
    found = shutil.which("java")
    if not found:
        raise InfraError("java not found: install a JDK 17 and put java on PATH (or set JAVA_HOME)")
    return found


def ensure_jars() -> None:
    """Resolve the Maven jars and build the UDF jar if they are missing or stale."""
    _ensure_maven_jars()
    _ensure_udf_jar()


def _ensure_maven_jars() -> None:
    kafka_dir = jars_dir() / "kafka"
    connector = jars_dir() / "flink" / KAFKA_CONNECTOR_JAR
    if connector.is_file() and any(kafka_dir.glob("kafka_2.13-*.jar")):
        return
    pom = project_root() / "jvm" / "pom.xml"
    mvn = shutil.which("mvn")
    if not mvn:
        raise InfraError("mvn not found: install Maven to resolve the Kafka and Flink jars")
    log.info("resolving JVM dependencies with Maven (%s)", pom)
    result = subprocess.run(
        [mvn, "-q", "-B", "-f", str(pom), f"-Djars.dir={jars_dir()}", "package"],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        tail = (result.stdout + result.stderr).strip().splitlines()[-5:]
        raise InfraError("Maven could not resolve the JVM jars: " + " | ".join(tail))


def _ensure_udf_jar() -> None:
    """Build ``UDF_JAR`` from ``jvm/udf/src`` unless it is up to date: built after the newest
    source, from the same list of source files (a source removed since would otherwise leave its
    classes in the jar; the list is kept beside it, ``<jar>.sources``)."""
    root = project_root() / "jvm" / "udf" / "src"
    sources = sorted(root.rglob("*.java"))
    target = jars_dir() / "flink" / UDF_JAR
    if not sources:
        if target.is_file():
            return
        raise InfraError(f"no Java sources under {project_root() / 'jvm' / 'udf'}")
    newest = max(s.stat().st_mtime for s in sources)
    listed = "".join(f"{s.relative_to(root)}\n" for s in sources)
    stamp = target.with_name(target.name + ".sources")
    if (
        target.is_file()
        and target.stat().st_mtime >= newest
        and stamp.is_file()
        and stamp.read_text() == listed
    ):
        return
    javac = shutil.which("javac")
    jar = shutil.which("jar")
    if not javac or not jar:
        raise InfraError("javac/jar not found: install a JDK 17 (not only a JRE)")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as classes:
        # Flink's own jars, its Python runtime (PEMJA: EmbeddedPython) and the Kafka connector
        # (TradeRecords reads the source's records)
        cp = os.pathsep.join(
            [
                str(flink_lib_dir() / "*"),
                str(flink_lib_dir().with_name("opt") / "*"),
                str(jars_dir() / "flink" / KAFKA_CONNECTOR_JAR),
            ]
        )
        compile_cmd = [javac, "-nowarn", "--release", "17", "-cp", cp, "-d", classes]
        result = subprocess.run(
            [*compile_cmd, *map(str, sources)], capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise InfraError("compiling the job's Java functions failed: " + result.stderr[-800:])
        tmp = target.with_suffix(".tmp")
        subprocess.run([jar, "cf", str(tmp), "-C", classes, "."], check=True)
        tmp.replace(target)
        stamp.write_text(listed)
    log.info("built %s", target)
