"""Finding retained checkpoints on disk (no Flink needed)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from flinktrade.errors import ConfigError
from flinktrade.pipeline.checkpoints import complete_checkpoints, resolve_checkpoint


def checkpoint(root: Path, name: str, written_ns: int | None) -> Path:
    directory = root / "job" / name
    directory.mkdir(parents=True)
    if written_ns is not None:
        metadata = directory / "_metadata"
        metadata.write_bytes(b"x")
        os.utime(metadata, ns=(written_ns, written_ns))
    return directory


def test_complete_ones_oldest_first_incomplete_ones_left_out(tmp_path: Path) -> None:
    newest = checkpoint(tmp_path, "chk-2", 3_000_000_000)
    oldest = checkpoint(tmp_path, "chk-9", 1_000_000_000)
    checkpoint(tmp_path, "chk-3", None)  # still being written: no _metadata yet
    assert complete_checkpoints(tmp_path) == [oldest, newest]
    assert complete_checkpoints(tmp_path, newer_than_ns=2_000_000_000) == [newest]
    assert resolve_checkpoint("latest", tmp_path) == newest


def test_latest_without_any_complete_checkpoint_is_a_config_error(tmp_path: Path) -> None:
    checkpoint(tmp_path, "chk-1", None)
    with pytest.raises(ConfigError, match="no complete checkpoint"):
        resolve_checkpoint("latest", tmp_path)
