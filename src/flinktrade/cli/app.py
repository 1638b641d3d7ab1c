"""The root ``flinktrade`` command. Exit codes are decided here and only here.

0 ok; 1 unexpected failure, or a service of the demo died; 2 bad arguments or configuration
(including a Kafka address off loopback without ``kafka.allow_unauthenticated_remote``); 69 local
infrastructure could not be set up; 75 a dependency is unavailable for now (retry later).

Every stage brings its own commands: each module in ``STAGES`` has ``register(app)``, which adds
a command group (``infra``, ``job``, ``ingest``, ...) or top-level commands (``execute``,
``simulate``, ``backtest``, ...). A stage that is not installed is left out.
"""

from __future__ import annotations

import importlib
import json
import logging
import sys
from types import ModuleType
from typing import Annotated

import typer
from rich.console import Console

from flinktrade import __version__
from flinktrade.config import load_settings, masked_dump
from flinktrade.errors import ConfigError, FlinktradeError, InfraError, TransientError

console = Console(stderr=True)
out = Console()
log = logging.getLogger("flinktrade")

STAGES = (
    "flinktrade.infra.cli",
    "flinktrade.pipeline.cli",
    "flinktrade.ingest.cli",
    "flinktrade.notify.cli",
    "flinktrade.strategies.cli",
    "flinktrade.testing.cli",
    "flinktrade.execution.cli",
    "flinktrade.backtest.cli",
    "flinktrade.api.cli",
    "flinktrade.cli.demo",
)
"""The modules whose ``register(app)`` adds their commands, in this order."""

app = typer.Typer(
    name="flinktrade",
    help="Real-time algorithmic trading on Kafka and Apache Flink.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _print_version(wanted: bool) -> None:
    if wanted:  # eager: before click asks for the missing command
        out.print(__version__)
        raise typer.Exit


@app.callback()
def _root(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print the version and exit.", callback=_print_version, is_eager=True
        ),
    ] = False,
) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("py4j", "apache_beam", "pyflink"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@app.command("show-config")
def show_config() -> None:
    """Print the effective configuration (secrets masked) as JSON."""
    out.print_json(json.dumps(masked_dump(load_settings(check_exposure=False))))


def _optional(module: str) -> ModuleType | None:
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if not exc.name or not module.startswith(exc.name):
            raise  # the stage exists but one of its own imports is missing
        return None


for _module in STAGES:
    if (_stage := _optional(_module)) is not None:
        _stage.register(app)


def main() -> None:
    """Console-script entry point: one readable line and an exit code for every known failure."""
    try:
        app(standalone_mode=False)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        console.print("aborted")
        sys.exit(130)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:
        sys.exit(_report(exc))


def _report(exc: BaseException) -> int:
    if isinstance(exc, typer.TyperException):  # usage errors: bad option, missing argument
        message = getattr(exc, "format_message", lambda: str(exc))()
        if type(exc).__name__ == "NoArgsIsHelpError":
            console.print(message, highlight=False)
            return 0
        console.print(f"error: {message}", highlight=False, soft_wrap=True)
        return 2
    codes: list[tuple[type[BaseException], int]] = [
        (ConfigError, 2),
        (InfraError, 69),
        (TransientError, 75),
        (FlinktradeError, 1),
    ]
    for kind, code in codes:
        if isinstance(exc, kind):
            console.print(f"error: {exc}", highlight=False, soft_wrap=True)
            return code
    log.exception("unexpected failure")
    return 1


if __name__ == "__main__":
    main()
