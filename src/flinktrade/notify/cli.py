"""``flinktrade notify``: run the notifier; ``flinktrade notify test``: check each route.

Exit codes of ``test`` (mapped by the main CLI from the error raised): 0 when Slack accepted
every test message, 1 when Slack refused one (its error is printed, e.g. ``channel_not_found``),
75 when Slack could not be reached or stayed rate-limited, 2 when Slack is not configured.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from flinktrade import bus, topics
from flinktrade.cli.signals import stop_on_signals
from flinktrade.config import load_settings
from flinktrade.errors import ConfigError, FlinktradeError, TransientError
from flinktrade.notify.console import ConsoleSink
from flinktrade.notify.format import Formatter
from flinktrade.notify.routing import build_routing
from flinktrade.notify.service import Notifier, send_test_messages

console = Console(stderr=True, highlight=False)
out = Console(highlight=False)

app = typer.Typer(
    help="Slack notifications: alerts, signals, orders and fills (console without Slack).",
    invoke_without_command=True,
    no_args_is_help=False,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback(invoke_without_command=True)
def run(
    ctx: typer.Context,
    from_earliest: Annotated[
        bool,
        typer.Option(
            "--from-earliest",
            help="Without committed offsets, start at the topics' beginning (default: new records).",
        ),
    ] = False,
) -> None:
    """Post alerts, signals, orders and fills to Slack (or print them) until Ctrl-C."""
    if ctx.invoked_subcommand is not None:
        return
    settings = load_settings()
    notify = settings.notify
    if from_earliest:
        notify = notify.model_copy(update={"start_from": "earliest"})
    routing = build_routing(notify, console=lambda: ConsoleSink(sys.stdout))
    bus.ensure_topics(settings.kafka, [*notify.topics.by_type(), topics.DEADLETTER.name])
    where = ", ".join(sorted({s.description for s in routing.sinks.values()}))
    console.print(f"[bold]flinktrade notify[/]: posting to {where}; Ctrl-C to stop")

    with stop_on_signals() as stop:
        stats = Notifier(notify, settings.kafka, routing=routing).run(stop)
    posted = sum(d.messages for d in stats.destinations.values())
    console.print(
        f"notify stopped: {stats.records} records, {posted} messages, "
        f"{stats.duplicates} repeats dropped, {stats.rejected} rejected (dead letters)"
    )


@app.command("test")
def test() -> None:
    """Send one test message to each configured route; exit 0 only if Slack accepted them all."""
    notify = load_settings().notify
    if not notify.slack_configured:
        raise ConfigError(
            "Slack is not configured: set SLACK_WEBHOOK_URL, or SLACK_BOT_TOKEN and SLACK_CHANNEL"
        )
    routing = build_routing(notify)
    results = send_test_messages(routing, Formatter(notify.dashboard_url))
    for result in results:
        if result.error is None:
            out.print(f"[green]ok[/]   route {result.route} -> {result.destination}: accepted")
        else:
            out.print(
                f"[red]fail[/] route {result.route} -> {result.destination}: "
                + escape(str(result.error))
            )
    failed = [r for r in results if r.error is not None]
    if failed:
        summary = f"{len(failed)} of {len(results)} test messages were not accepted"
        if all(r.transient for r in failed):
            raise TransientError(summary + " (Slack unreachable or busy: try again)")
        raise FlinktradeError(summary)


def register(root: typer.Typer) -> None:
    """Add ``flinktrade notify`` to the main CLI."""
    root.add_typer(app, name="notify")
