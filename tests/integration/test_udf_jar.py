"""The job's Java functions' jar (``infra.jvm._ensure_udf_jar``): built from ``jvm/udf/src``,
rebuilt when a source is newer, and when a source is gone (its classes must leave the jar)."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest

from flinktrade.infra import jvm

pytestmark = pytest.mark.integration

SOURCE = "package io.flinktrade.udf;\npublic class {name} {{ public static int one() {{ return 1; }} }}\n"


def _classes(jar: Path) -> set[str]:
    with zipfile.ZipFile(jar) as archive:
        return {n.rsplit("/", 1)[-1] for n in archive.namelist() if n.endswith(".class")}


def test_the_jar_follows_its_sources_added_changed_and_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "checkout"
    src = root / "jvm" / "udf" / "src" / "io" / "flinktrade" / "udf"
    src.mkdir(parents=True)
    for name in ("Kept", "Removed"):
        (src / f"{name}.java").write_text(SOURCE.format(name=name))
    monkeypatch.setattr(jvm, "project_root", lambda: root)
    monkeypatch.setenv("FLINKTRADE_JARS_DIR", str(tmp_path / "jars"))
    jar = tmp_path / "jars" / "flink" / jvm.UDF_JAR

    jvm._ensure_udf_jar()
    assert _classes(jar) == {"Kept.class", "Removed.class"}
    built = jar.stat().st_mtime_ns

    jvm._ensure_udf_jar()  # nothing changed: not built again
    assert jar.stat().st_mtime_ns == built

    (src / "Removed.java").unlink()
    old = jar.stat().st_mtime - 60  # the remaining source is older than the jar
    os.utime(src / "Kept.java", (old, old))
    jvm._ensure_udf_jar()
    assert _classes(jar) == {"Kept.class"}
