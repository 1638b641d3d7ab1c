"""``flinktrade testing``: the loopback fakes of the SaaS we cannot reach, runnable by hand.

Each command starts a fake on 127.0.0.1, prints the environment variables that point flinktrade at
it, and runs until Ctrl-C. Nothing here is needed in production.
"""

from __future__ import annotations

import threading
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from flinktrade.testing.fake_slack import FakeSlack, Received

console = Console(stderr=True, highlight=False)
out = Console(highlight=False, soft_wrap=True)

app = typer.Typer(
    help="Loopback fakes of Alpaca and Slack, for trying flinktrade without accounts.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _wait_for_ctrl_c() -> None:
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        console.print("stopped")


@app.command("fake-slack")
def fake_slack(
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port on 127.0.0.1.")] = 8091,
    channel: Annotated[str, typer.Option(help="Channel the printed webhook posts to.")] = "#alerts",
    min_interval_s: Annotated[
        float | None,
        typer.Option(help="Answer 429 to a second message within this many seconds per channel."),
    ] = None,
) -> None:
    """A fake Slack (incoming webhooks and chat.postMessage) that prints what it receives."""

    def show(request: Received) -> None:
        verdict = "[green]accepted[/]" if request.accepted else f"[red]{request.error}[/]"
        out.print(f"{request.api} {request.channel or '?'} {verdict}: {escape(request.text)}")

    with FakeSlack(port=port, min_interval_s=min_interval_s, on_request=show) as slack:
        out.print("# point flinktrade at the fake with either of:")
        out.print(f"export SLACK_WEBHOOK_URL={slack.webhook_url(channel)}")
        out.print(
            f"export SLACK_API_URL={slack.api_url} SLACK_BOT_TOKEN={slack.token} "
            f"SLACK_CHANNEL={channel}"
        )
        console.print(f"fake Slack listening on {slack.url}; Ctrl-C to stop")
        _wait_for_ctrl_c()


@app.command("fake-alpaca")
def fake_alpaca(
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port on 127.0.0.1.")] = 8765,
    tick_s: Annotated[
        float, typer.Option(min=0.01, help="Wall-clock seconds per simulated market minute.")
    ] = 1.0,
    seed: Annotated[int, typer.Option(help="Seed of the generated market.")] = 7,
) -> None:
    """A fake of Alpaca's market data (REST history, live and news streams), one minute per tick."""
    from flinktrade.testing.fake_alpaca_data import FakeAlpacaData, serve

    def ready(fake: FakeAlpacaData) -> None:
        out.print("# point flinktrade at the fake:")
        out.print(
            f"export APCA_API_KEY_ID={fake.key_id} APCA_API_SECRET_KEY={fake.secret_key} "
            f"APCA_API_DATA_URL={fake.rest_url} "
            f"APCA_API_STREAM_URL={fake.stream_url('iex')} "
            f"APCA_API_NEWS_STREAM_URL={fake.news_stream_url}"
        )
        console.print(f"fake Alpaca market data on {fake.rest_url}; Ctrl-C to stop")

    serve(port=port, seed=seed, tick_s=tick_s, ready=ready)


@app.command("fake-alpaca-trading")
def fake_alpaca_trading(
    port: Annotated[int, typer.Option(min=0, max=65535, help="REST port on 127.0.0.1.")] = 8766,
    stream_port: Annotated[
        int, typer.Option(min=0, max=65535, help="trade_updates WebSocket port.")
    ] = 8767,
    fill_price: Annotated[str, typer.Option(help="Price market orders fill at.")] = "100",
) -> None:
    """A fake of Alpaca's trading API (orders, positions, trade_updates stream), paper-like."""
    from decimal import Decimal, InvalidOperation

    from flinktrade.errors import ConfigError
    from flinktrade.testing.fake_alpaca_trading import FakeAlpacaTrading, serve

    try:
        price = Decimal(fill_price)
    except InvalidOperation:
        raise ConfigError(f"--fill-price {fill_price!r} is not a number") from None

    def ready(fake: FakeAlpacaTrading) -> None:
        out.print("# point flinktrade at the fake:")
        out.print(
            f"export APCA_API_KEY_ID={fake.key_id} APCA_API_SECRET_KEY={fake.secret_key} "
            f"APCA_API_BASE_URL={fake.base_url} APCA_API_TRADING_STREAM_URL={fake.stream_url}"
        )
        console.print(f"fake Alpaca trading on {fake.base_url}; Ctrl-C to stop")

    serve(port=port, stream_port=stream_port, fill_price=price, on_ready=ready)


def register(root: typer.Typer) -> None:
    """Add ``flinktrade testing`` to the main CLI."""
    root.add_typer(app, name="testing")
