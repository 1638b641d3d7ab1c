"""Finding retained checkpoints to restore the job from.

Flink writes each checkpoint to ``<checkpoint dir>/<job id>/chk-<n>/`` and its ``_metadata`` file
last, so a directory with ``_metadata`` is complete. Checkpoints are retained on cancellation and
survive a killed process; ``latest`` picks the newest complete one of any earlier run.
"""

from __future__ import annotations

from pathlib import Path

from flinktrade.errors import ConfigError


def complete_checkpoints(root: Path, newer_than_ns: int = -1) -> list[Path]:
    """Complete checkpoint directories under ``root`` whose ``_metadata`` was written after
    ``newer_than_ns`` (epoch ns), oldest first.

    A running job deletes its older checkpoints as it completes new ones, so one may vanish
    between listing and reading: it is left out, not an error."""
    if not root.is_dir():
        return []
    stamped: list[tuple[int, str, Path]] = []
    for metadata in root.glob("*/chk-*/_metadata"):
        try:
            written = metadata.stat().st_mtime_ns
        except FileNotFoundError:  # removed by the job meanwhile
            continue
        if written > newer_than_ns:
            stamped.append((written, metadata.parent.name, metadata.parent))
    return [directory for _written, _name, directory in sorted(stamped)]


def resolve_checkpoint(spec: str, root: Path) -> Path:
    """``spec`` as a checkpoint directory: ``latest`` or a path; ``ConfigError`` if unusable."""
    if spec == "latest":
        found = complete_checkpoints(root)
        if not found:
            raise ConfigError(f"no complete checkpoint under {root} to restore from")
        return found[-1]
    path = Path(spec).expanduser()
    if path.is_file() and path.name == "_metadata":
        path = path.parent
    if not (path / "_metadata").is_file():
        raise ConfigError(f"{spec} is not a complete checkpoint or savepoint (no _metadata)")
    return path
