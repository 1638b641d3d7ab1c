"""Running the API: the token rule, a blocking ``serve`` for the CLI and ``start_in_thread`` for
the demo and tests.

uvicorn's access log is off: the dashboard's first request carries ``?token=``. uvicorn's other
lines (WebSocket handshakes are logged with their query string) pass through
``security.TokenRedaction``, installed by ``create_app``.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from dataclasses import dataclass
from types import TracebackType

import uvicorn
from pydantic import SecretStr

from flinktrade.api.app import create_app
from flinktrade.api.metrics import SlackStats
from flinktrade.config import Settings
from flinktrade.errors import ConfigError, InfraError
from flinktrade.infra.process import is_loopback

log = logging.getLogger(__name__)


def resolve_token(settings: Settings, host: str) -> tuple[SecretStr, bool]:
    """The configured token, or a new random one when none is set and ``host`` is loopback;
    the flag says it was generated. Without a token a non-loopback bind is a ``ConfigError``."""
    configured = settings.api.token
    if configured is not None and configured.get_secret_value():
        return configured, False
    if not is_loopback(host):
        raise ConfigError(
            f"refusing to serve on {host} without a token: set FLINKTRADE_API_TOKEN "
            "(or bind to 127.0.0.1)"
        )
    return SecretStr(secrets.token_urlsafe(24)), True


def _config(
    settings: Settings, host: str, port: int, token: SecretStr, slack_stats: SlackStats | None
) -> uvicorn.Config:
    app = create_app(settings, token=token, slack_stats=slack_stats)
    # uvicorn only mutes its access log when it configures logging itself; we keep ours.
    logging.getLogger("uvicorn.access").disabled = True
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,  # flinktrade's logging, configured once by the CLI
        access_log=False,
        timeout_graceful_shutdown=3,
        ws_ping_interval=20,
    )


def serve(settings: Settings, host: str, port: int, token: SecretStr) -> None:
    """Serve until Ctrl-C (blocking, in the calling thread)."""
    uvicorn.Server(_config(settings, host, port, token, None)).run()


@dataclass
class ApiServer:
    """A running API server: its base ``url`` (``http://host:port/``), its ``token`` and
    whether the token was ``generated`` here (then show it to the user once)."""

    url: str
    host: str
    port: int
    token: SecretStr
    generated: bool
    _server: uvicorn.Server
    _thread: threading.Thread

    @property
    def alive(self) -> bool:
        """Whether the server thread still runs (the demo supervises it)."""
        return self._thread.is_alive()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop serving and wait for the server thread to end."""
        self._server.should_exit = True
        self._thread.join(timeout_s)

    def __enter__(self) -> ApiServer:
        return self

    def __exit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self.stop()


def start_in_thread(
    settings: Settings,
    host: str | None = None,
    port: int | None = None,
    *,
    token: SecretStr | None = None,
    slack_stats: SlackStats | None = None,
    timeout_s: float = 30.0,
) -> ApiServer:
    """Start the API on a daemon thread and return once it accepts connections.

    ``host``/``port`` default to ``settings.api``; port 0 picks a free port (see ``.port``).
    ``token`` defaults to the configured one, else a generated one (loopback only).
    """
    host = host or settings.api.host
    port = settings.api.port if port is None else port
    if token is None:
        token, generated = resolve_token(settings, host)
    else:
        generated = False
    server = uvicorn.Server(_config(settings, host, port, token, slack_stats))
    thread = threading.Thread(target=server.run, name="api-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout_s
    while not server.started:
        if not thread.is_alive():
            raise InfraError(f"the API server could not start on {host}:{port} (see the log)")
        if time.monotonic() > deadline:
            server.should_exit = True
            raise InfraError(f"the API server did not start on {host}:{port} in {timeout_s:.0f}s")
        time.sleep(0.02)
    bound = port
    for listener in server.servers:
        for sock in listener.sockets:
            bound = int(sock.getsockname()[1])
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{bound}/"
    log.info("API serving on %s", url)
    return ApiServer(url, host, bound, token, generated, server, thread)
