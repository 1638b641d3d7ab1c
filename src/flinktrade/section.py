"""``Section``: the base of every part of the settings (``[kafka]``, ``[notify]``, ``[api]``...).

``config.Settings`` is the one root that reads the TOML file, ``.env`` and the environment; every
stage describes its part as a plain ``Section`` (frozen, unknown keys refused, the offending input
kept out of error messages, since some fields are secrets) and never reads the environment itself.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """A frozen settings model that refuses unknown keys and never echoes its input in errors."""

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)
