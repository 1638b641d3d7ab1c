"""Finding retained checkpoints to restore the job from.

Flink writes each checkpoint to ``<checkpoint dir>/<job id>/chk-<n>/`` and its ``_metadata`` file
last, so a directory with ``_metadata`` is complete. Checkpoints are retained on cancellation and
survive a killed process; ``latest`` picks the newest complete one of any earlier run.
"""

from __future__ import annotations

from pathlib import Path

from flinktrade.errors import ConfigError


def complete_checkpoints(root: Path) -> list[Path]:
    """Complete checkpoint directories under ``root``, oldest first (by ``_metadata`` time)."""
    if not root.is_dir():
        return []
    found = [m.parent for m in root.glob("*/chk-*/_metadata") if m.is_file()]
    return sorted(found, key=lambda d: ((d / "_metadata").stat().st_mtime_ns, d.name))


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
