"""One settings root: the README's variables name real settings, and the names read by their own
spelling (``APCA_*``, ``SLACK_*``, ``FLINKTRADE_API_TOKEN``) land in the right section, below the
``FLINKTRADE_<SECTION>__<FIELD>`` names and the TOML file."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from pydantic import BaseModel

from flinktrade.config import Settings, load_settings

README = Path(__file__).resolve().parents[2] / "README.md"
NOT_SETTINGS = {
    "FLINKTRADE_CONFIG",  # which TOML file: read before the settings
    "FLINKTRADE_DEMO_FAULT",  # test hooks, read where they act
    "FLINKTRADE_EXECUTOR_CRASH_AT",
    "FLINKTRADE_JARS_DIR",  # infra/jvm.py, read before any settings exist
    "FLINKTRADE_NO_CDS",  # infra/cds.py, read where a JVM starts (before any settings exist)
    "FLINKTRADE_PURE_PYTHON",  # accel.py, read at the first import of a compiled module
    "FLINKTRADE_DEMO_BRACKET",  # the env form of `demo --no-bracket` (a CLI option, cli/demo.py)
    "FLINKTRADE_STAGE_LOG",  # pipeline/operator.py, a latency instrument read where an operator is made
    "JVM_ARGS",  # pyflink's own, read where the job's JVM starts (pipeline/job.py adds to it)
    "HADOOP_CLASSPATH",  # pyflink's launcher's, the same (infra/jvm.py puts the job's jars in it)
}
OWN_NAMES = {
    "APCA_API_KEY_ID", "APCA_API_SECRET_KEY", "APCA_API_BASE_URL", "APCA_API_DATA_URL",
    "APCA_API_STREAM_URL", "APCA_API_NEWS_STREAM_URL", "APCA_API_TRADING_STREAM_URL",
    "SLACK_WEBHOOK_URL", "SLACK_BOT_TOKEN", "SLACK_CHANNEL", "SLACK_API_URL",
    "FLINKTRADE_API_TOKEN",
}  # fmt: skip
"""Variables read by their own names, as the README's configuration table lists them."""


def readme_variables() -> list[str]:
    """The variables of the README's configuration table, shorthand (`` / `__PORT` ``) expanded."""
    section = README.read_text().split("## Configuration", 1)[1].split("\n## ", 1)[0]
    names: list[str] = []
    for row in section.splitlines():
        if not row.startswith("| `"):
            continue
        first = row.split("|")[1]
        base = ""
        for written in re.findall(r"`([A-Z_]+(?:\.\.\.)?)`", first):
            name = base + written if written.startswith("__") and base else written
            base = name.rsplit("__", 1)[0] if "__" in name else ""
            names.append(name)
    return names


def field_exists(path: list[str]) -> bool:
    model: type[BaseModel] = Settings
    for i, part in enumerate(path):
        field = model.model_fields.get(part.lower())
        if field is None:
            return False
        annotation = field.annotation
        if i < len(path) - 1:
            if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
                return False
            model = annotation
    return True


def test_every_variable_of_the_readme_is_a_setting() -> None:
    names = readme_variables()
    assert len(names) > 40, names  # the table was found and read
    unknown = []
    for name in names:
        if name in NOT_SETTINGS or name in OWN_NAMES:
            continue
        path = name.removeprefix("FLINKTRADE_").removesuffix("...").rstrip("_").split("__")
        if not name.startswith("FLINKTRADE_") or not field_exists(path):
            unknown.append(name)
    assert unknown == []


def test_every_section_and_own_name_is_in_the_readme() -> None:
    names = readme_variables()
    listed = {n.removeprefix("FLINKTRADE_").split("__")[0].rstrip(".").lower() for n in names}
    assert set(Settings.model_fields) - {"alpaca_api_key_id", "alpaca_api_secret_key",
        "alpaca_api_base_url", "alpaca_api_data_url", "alpaca_api_stream_url",
        "alpaca_api_news_stream_url", "alpaca_api_trading_stream_url"} <= listed  # fmt: skip
    aliases = {f.validation_alias for f in Settings.model_fields.values() if f.validation_alias}
    assert aliases <= OWN_NAMES <= set(names)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No settings variables, and a working directory of our own (for .env and the TOML file)."""
    for name in list(os.environ):
        if name.startswith(("FLINKTRADE_", "SLACK_", "APCA_")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_own_names_are_read_from_the_environment_and_dotenv(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (clean_env / ".env").write_text(
        "SLACK_CHANNEL=#from-dotenv\nSLACK_BOT_TOKEN=bot-from-dotenv\n"
        "FLINKTRADE_API_TOKEN=api-from-dotenv\n"
    )
    monkeypatch.setenv("SLACK_BOT_TOKEN", "bot-from-env")
    settings = load_settings()
    assert settings.notify.channel == "#from-dotenv"
    assert settings.notify.bot_token is not None
    assert settings.notify.bot_token.get_secret_value() == "bot-from-env"  # env over .env
    assert settings.api.token is not None
    assert settings.api.token.get_secret_value() == "api-from-dotenv"


def test_section_names_and_the_toml_file_win_over_own_names(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLINKTRADE_API_TOKEN", "own-name")
    monkeypatch.setenv("SLACK_CHANNEL", "#own-name")
    monkeypatch.setenv("SLACK_API_URL", "http://127.0.0.1:9/own/")
    (clean_env / "flinktrade.toml").write_text(
        '[api]\ntoken = "from-toml"\n[notify]\napi_url = "http://127.0.0.1:9/toml/"\n'
    )
    monkeypatch.setenv("FLINKTRADE_NOTIFY__CHANNEL", "#section-name")
    settings = load_settings()
    assert settings.api.token is not None
    assert settings.api.token.get_secret_value() == "from-toml"
    assert settings.notify.channel == "#section-name"
    assert settings.notify.api_url == "http://127.0.0.1:9/toml/"
    monkeypatch.setenv("FLINKTRADE_API__TOKEN", "section-name")
    token = load_settings().api.token
    assert token is not None and token.get_secret_value() == "section-name"


def test_sections_read_nothing_themselves(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from flinktrade.api.settings import ApiSettings
    from flinktrade.ingest.settings import IngestSettings
    from flinktrade.notify.settings import NotifySettings

    monkeypatch.setenv("SLACK_CHANNEL", "#x")
    monkeypatch.setenv("FLINKTRADE_API_TOKEN", "t")
    monkeypatch.setenv("FLINKTRADE_INGEST__MAX_ATTEMPTS", "3")
    assert NotifySettings().channel is None
    assert ApiSettings().token is None
    assert IngestSettings().max_attempts == 8
    assert load_settings().ingest.max_attempts == 3
