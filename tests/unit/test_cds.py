"""The JVMs use a class-data archive only while it was made for the Java binary and jars of now."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flinktrade.infra import cds


@pytest.fixture
def jars(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FLINKTRADE_JARS_DIR", str(tmp_path))
    monkeypatch.delenv(cds.DISABLE_ENV, raising=False)
    (tmp_path / "kafka").mkdir()
    (tmp_path / "kafka" / "kafka.jar").write_bytes(b"one")
    return tmp_path


def _made(jars: Path, key: str) -> Path:
    folder = jars / "cds"
    folder.mkdir(exist_ok=True)
    (folder / "broker.jsa").write_bytes(b"archive")
    (folder / "broker.json").write_text(json.dumps({"key": key}))
    return folder / "broker.jsa"


def test_an_archive_made_for_these_jars_is_used(jars: Path) -> None:
    archive = _made(jars, cds.key(cds.BROKER))
    assert cds.flags(cds.BROKER) == [f"-XX:SharedArchiveFile={archive}"]


def test_no_archive_or_another_key_means_no_flags(jars: Path) -> None:
    assert cds.flags(cds.BROKER) == []
    _made(jars, "made for other jars")
    assert cds.flags(cds.BROKER) == []


def test_a_jar_changed_since_the_archive_was_made_stales_it(jars: Path) -> None:
    _made(jars, cds.key(cds.BROKER))
    (jars / "kafka" / "kafka.jar").write_bytes(b"a new version")
    assert cds.flags(cds.BROKER) == []


def test_the_switch_turns_the_archives_off(jars: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _made(jars, cds.key(cds.BROKER))
    monkeypatch.setenv(cds.DISABLE_ENV, "1")
    assert cds.flags(cds.BROKER) == []
    assert cds.build() == {
        "broker": "off (FLINKTRADE_NO_CDS)",
        "gateway": "off (FLINKTRADE_NO_CDS)",
    }


def test_an_unreadable_record_means_no_flags(jars: Path) -> None:
    _made(jars, cds.key(cds.BROKER))
    (jars / "cds" / "broker.json").write_text("not json")
    assert cds.flags(cds.BROKER) == []


def test_jvm_args_that_name_an_archive_get_no_other() -> None:
    assert cds.names_archive("-Xmx1g -XX:SharedArchiveFile=/x/gateway.jsa")
    assert cds.names_archive("-XX:ArchiveClassesAtExit=/tmp/part.jsa")
    assert not cds.names_archive("-Xmx1g -XX:TieredStopAtLevel=1")
    assert not cds.names_archive(None)
