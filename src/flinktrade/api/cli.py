"""``flinktrade serve``: the live API and dashboard (registered as a top-level command)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from flinktrade.config import load_settings

console = Console(stderr=True, highlight=False, soft_wrap=True)


def serve(
    host: Annotated[
        str | None,
        typer.Option(help="Address to bind (default 127.0.0.1; others need FLINKTRADE_API_TOKEN)."),
    ] = None,
    port: Annotated[int | None, typer.Option(min=0, max=65535, help="Port (default 8000).")] = None,
) -> None:
    """Serve the REST API, the WebSocket stream and the dashboard until Ctrl-C."""
    from flinktrade.api.server import resolve_token
    from flinktrade.api.server import serve as run

    settings = load_settings()
    host = host or settings.api.host
    port = settings.api.port if port is None else port
    token, generated = resolve_token(settings, host)
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}/"
    if generated:  # the one place a token is ever shown: the user needs it to log in
        console.print(
            f"API token (generated; set FLINKTRADE_API_TOKEN to choose one): "
            f"{token.get_secret_value()}\ndashboard: {url}?token={token.get_secret_value()}"
        )
    else:
        console.print(f"dashboard: {url} (token from FLINKTRADE_API_TOKEN)")
    console.print(f"API docs: {url}docs; Ctrl-C to stop")
    run(settings, host, port, token)


def register(app: typer.Typer) -> None:
    """Add ``serve`` to the main CLI."""
    app.command("serve")(serve)
