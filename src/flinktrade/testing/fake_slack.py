"""A loopback fake of Slack: incoming webhooks and the Web API's ``chat.postMessage``.

It speaks Slack's wire protocol, so the real slack_sdk clients work against it unchanged::

    with FakeSlack(channels={"alerts"}) as slack:
        WebClient(token=slack.token, base_url=slack.api_url).chat_postMessage(channel="#alerts", ...)
        WebhookClient(slack.webhook_url("#alerts")).send(text="...")
        slack.wait_for(lambda s: len(s.messages()) == 2, timeout_s=5)

It records every request (``requests``; accepted ones in ``messages()``), checks each payload the
way Slack does (a ``text`` fallback, at most 50 blocks, header and section text limits, ...), and
answers with Slack's errors on demand: ``rate_limit`` (HTTP 429 with ``Retry-After``),
``server_error`` (5xx), ``fail`` (any Slack error code, e.g. ``invalid_blocks``), and permanent
states: ``remove_channel`` (``channel_not_found``), ``archive`` (``is_archived`` /
``channel_is_archived``), ``revoke`` (the token or webhooks stop working). With
``min_interval_s`` it also enforces a per-channel rate limit like Slack's.

Success answers follow Slack: a webhook gets HTTP 200 with body ``ok``; ``chat.postMessage`` HTTP
200 with ``{"ok": true, "channel", "ts", "message"}``. Web API errors are HTTP 200 with
``{"ok": false, "error"}`` except 429 and 5xx; webhook errors are HTTP 4xx with the code as body.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qs

from flinktrade.testing._loopback import FaultPlan, Loopback

WEBHOOK_STATUS = {
    "invalid_payload": 400,
    "invalid_blocks": 400,
    "no_text": 400,
    "too_many_attachments": 400,
    "msg_too_long": 400,
    "user_not_found": 404,
    "channel_not_found": 404,
    "no_service": 404,
    "no_team": 404,
    "channel_is_archived": 410,
    "action_prohibited": 403,
    "posting_to_general_channel_denied": 403,
    "team_disabled": 403,
    "invalid_token": 403,
    "ratelimited": 429,
}
"""HTTP status of each error code on an incoming webhook (Slack's documented answers)."""

BLOCK_TYPES = frozenset(
    {"header", "section", "context", "divider", "actions", "image", "rich_text", "input", "file",
     "video", "markdown"}
)  # fmt: skip
MAX_BLOCKS = 50
MAX_TEXT = 40_000
MAX_HEADER = 150
MAX_SECTION_TEXT = 3000
MAX_FIELDS = 10
MAX_FIELD_TEXT = 2000
MAX_CONTEXT_ELEMENTS = 10


def normalize_channel(channel: str) -> str:
    return channel.strip().lstrip("#").lower()


@dataclass(frozen=True)
class Fault:
    """A prepared answer: an HTTP status and/or a Slack error code, optionally ``Retry-After``."""

    error: str
    status: int | None = None
    retry_after: int | None = None


@dataclass(frozen=True)
class Received:
    """One request as the fake saw it and what it answered."""

    api: Literal["webhook", "chat.postMessage", "other"]
    channel: str | None
    body: dict[str, Any]
    status: int
    error: str | None
    at: float
    """``time.monotonic()`` when the request arrived."""
    problems: tuple[str, ...] = ()
    token: str | None = None

    @property
    def accepted(self) -> bool:
        return self.error is None

    @property
    def text(self) -> str:
        return str(self.body.get("text", ""))

    @property
    def blocks(self) -> list[dict[str, Any]]:
        blocks = self.body.get("blocks") or []
        return blocks if isinstance(blocks, list) else []


@dataclass
class _State:
    channels: set[str] | None
    archived: set[str] = field(default_factory=set)
    removed: set[str] = field(default_factory=set)
    hooks: dict[str, str] = field(default_factory=dict)
    revoked: bool = False
    last_accepted: dict[str, float] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)


def check_payload(body: dict[str, Any]) -> list[str]:
    """What Slack would object to in a message payload (empty: fine)."""
    problems: list[str] = []
    text = body.get("text")
    blocks = body.get("blocks")
    if isinstance(blocks, str):  # form-encoded requests carry blocks as a JSON string
        try:
            blocks = json.loads(blocks)
        except ValueError:
            return ["blocks: not JSON"]
    if not isinstance(text, str) or not text.strip():
        problems.append("text: a plain-text fallback is required")
    elif len(text) > MAX_TEXT:
        problems.append(f"text: longer than {MAX_TEXT}")
    if blocks is None:
        return problems
    if not isinstance(blocks, list):
        return [*problems, "blocks: must be a list"]
    if len(blocks) > MAX_BLOCKS:
        problems.append(f"blocks: {len(blocks)} > {MAX_BLOCKS}")
    block_ids: set[str] = set()
    for i, block in enumerate(blocks):
        problems += [f"blocks[{i}]: {p}" for p in _check_block(block, block_ids)]
    return problems


def _check_block(block: Any, block_ids: set[str]) -> list[str]:
    if not isinstance(block, dict) or block.get("type") not in BLOCK_TYPES:
        return ["unknown block type"]
    problems: list[str] = []
    block_id = block.get("block_id")
    if block_id is not None:
        if block_id in block_ids or len(str(block_id)) > 255:
            problems.append("block_id repeated or too long")
        block_ids.add(str(block_id))
    kind = block["type"]
    if kind == "header":
        problems += _check_text(block.get("text"), MAX_HEADER, plain_only=True)
    elif kind == "section":
        if "text" not in block and "fields" not in block:
            problems.append("section needs text or fields")
        if "text" in block:
            problems += _check_text(block["text"], MAX_SECTION_TEXT)
        fields = block.get("fields", [])
        if not isinstance(fields, list) or len(fields) > MAX_FIELDS:
            problems.append(f"fields: at most {MAX_FIELDS}")
        else:
            for item in fields:
                problems += _check_text(item, MAX_FIELD_TEXT)
    elif kind == "context":
        elements = block.get("elements")
        if not isinstance(elements, list) or not 1 <= len(elements) <= MAX_CONTEXT_ELEMENTS:
            problems.append(f"context: 1 to {MAX_CONTEXT_ELEMENTS} elements")
        else:
            for element in elements:
                if not (isinstance(element, dict) and element.get("type") == "image"):
                    problems += _check_text(element, MAX_SECTION_TEXT)
    return problems


def _check_text(obj: Any, limit: int, plain_only: bool = False) -> list[str]:
    allowed = ("plain_text",) if plain_only else ("plain_text", "mrkdwn")
    if not isinstance(obj, dict) or obj.get("type") not in allowed:
        return [f"text object must be one of {', '.join(allowed)}"]
    text = obj.get("text")
    if not isinstance(text, str) or not text:
        return ["text object without text"]
    if len(text) > limit:
        return [f"text longer than {limit}"]
    return []


class FakeSlack(Loopback):
    """The fake server; a context manager. ``channels=None`` accepts every channel name."""

    label = "FakeSlack"

    def __init__(
        self,
        *,
        channels: Iterable[str] | None = None,
        min_interval_s: float | None = None,
        port: int = 0,
        token: str | None = None,
        on_request: Callable[[Received], None] | None = None,
    ) -> None:
        super().__init__()
        self.token = token or "fake-bot-" + secrets.token_hex(12)
        self.min_interval_s = min_interval_s
        self.port = port
        self.on_request = on_request
        self._state = _State(
            channels={normalize_channel(c) for c in channels} if channels is not None else None
        )
        self._faults: FaultPlan[Fault] = FaultPlan()
        self._server: ThreadingHTTPServer | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    def _start(self) -> None:
        self._server = self._serve_http(_Handler, "127.0.0.1", self.port)

    def _stopping_hook(self) -> None:
        self._server = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("FakeSlack is not running")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def api_url(self) -> str:
        """The Web API base URL, for ``WebClient(base_url=...)`` and ``SLACK_API_URL``."""
        return self.url + "/api/"

    def webhook_url(self, channel: str = "#general") -> str:
        """A new incoming webhook that posts to ``channel``."""
        path = f"/services/T{secrets.token_hex(4).upper()}/B{secrets.token_hex(4).upper()}/{secrets.token_urlsafe(18)}"
        with self.lock:
            self._state.hooks[path] = normalize_channel(channel)
        return self.url + path

    # -- fault injection -------------------------------------------------------------------------

    def inject(self, fault: Fault, *, times: int = 1, channel: str | None = None) -> None:
        """Answer the next ``times`` messages (to ``channel``, or any) with ``fault``."""
        target = normalize_channel(channel) if channel else None
        self._faults.arm(fault, times, scope=target)

    def rate_limit(
        self, retry_after: int = 1, *, times: int = 1, channel: str | None = None
    ) -> None:
        self.inject(Fault("ratelimited", 429, retry_after), times=times, channel=channel)

    def server_error(
        self, status: int = 503, *, times: int = 1, channel: str | None = None
    ) -> None:
        self.inject(Fault("service_unavailable", status), times=times, channel=channel)

    def fail(self, error: str, *, times: int = 1, channel: str | None = None) -> None:
        """Answer with Slack error ``error`` (e.g. ``invalid_blocks``, ``invalid_auth``)."""
        self.inject(Fault(error), times=times, channel=channel)

    def clear_faults(self) -> None:
        self._faults.clear()

    def remove_channel(self, channel: str) -> None:
        """From now on the channel does not exist (``channel_not_found``)."""
        with self.lock:
            self._state.removed.add(normalize_channel(channel))

    def add_channel(self, channel: str) -> None:
        name = normalize_channel(channel)
        with self.lock:
            self._state.removed.discard(name)
            self._state.archived.discard(name)
            if self._state.channels is not None:
                self._state.channels.add(name)

    def archive(self, channel: str) -> None:
        """From now on the channel is archived (``is_archived`` / ``channel_is_archived``)."""
        with self.lock:
            self._state.archived.add(normalize_channel(channel))

    def revoke(self) -> None:
        """The token and every webhook stop working (``invalid_auth`` / ``invalid_token``)."""
        with self.lock:
            self._state.revoked = True

    # -- what was received -----------------------------------------------------------------------

    @property
    def requests(self) -> list[Received]:
        with self.lock:
            return list(self._state.received)

    def messages(self, channel: str | None = None) -> list[Received]:
        """Accepted messages, in arrival order, optionally for one channel."""
        name = normalize_channel(channel) if channel else None
        with self.lock:
            return [
                r
                for r in self._state.received
                if r.accepted and (name is None or r.channel == name)
            ]

    # -- request handling (called from the server threads) --------------------------------------

    def _answer(
        self,
        api: Literal["webhook", "chat.postMessage"],
        channel: str | None,
        body: dict[str, Any],
        token: str | None,
    ) -> tuple[int, str | None, int | None, tuple[str, ...]]:
        """(HTTP status, Slack error or None, Retry-After, payload problems) for one message."""
        now = time.monotonic()
        with self.lock:
            state = self._state
            status: int | None = None
            error: str | None = None
            retry_after: int | None = None
            problems: tuple[str, ...] = ()
            if api == "chat.postMessage" and (token != self.token or state.revoked):
                error = "not_authed" if not token else "invalid_auth"
            elif api == "webhook" and state.revoked:
                error = "invalid_token"
            elif not self._exists(channel):
                error = "channel_not_found"
            elif channel in state.archived:
                error = "is_archived" if api == "chat.postMessage" else "channel_is_archived"
            elif (
                fault := self._faults.take(lambda scope: scope is None or scope == channel)
            ) is not None:
                status, error, retry_after = fault.status, fault.error, fault.retry_after
            elif (
                channel is not None
                and self.min_interval_s is not None
                and channel in state.last_accepted
                and now - state.last_accepted[channel] < self.min_interval_s
            ):
                status, error, retry_after = 429, "ratelimited", 1
            else:
                problems = tuple(check_payload(body))
                if problems:
                    error = "invalid_blocks" if "blocks" in body else "no_text"
            if status is None:
                if error is None:
                    status = 200
                elif error == "ratelimited":
                    status = 429
                else:
                    status = WEBHOOK_STATUS.get(error, 400) if api == "webhook" else 200
            if error is None and channel is not None:
                state.last_accepted[channel] = now
            received = Received(api, channel, body, status, error, now, problems, token)
            state.received.append(received)
            self._condition.notify_all()
        if self.on_request is not None:
            self.on_request(received)
        return status, error, retry_after, problems

    def _exists(self, channel: str | None) -> bool:
        state = self._state
        if channel is None or channel in state.removed:
            return False
        return state.channels is None or channel in state.channels

    def _record_other(self, path: str, status: int, error: str) -> None:
        with self.lock:
            self._state.received.append(
                Received("other", None, {"path": path}, status, error, time.monotonic())
            )
            self._condition.notify_all()

    def _hook_channel(self, path: str) -> str | None:
        with self.lock:
            return self._state.hooks.get(path)


class _Handler(BaseHTTPRequestHandler):
    fake: FakeSlack
    server_version = "FakeSlack/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: the request line holds the webhook URL, a secret in real life."""

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        path = self.path.split("?", 1)[0]
        if path.startswith("/services/"):
            self._webhook(path, raw)
        elif path.startswith("/api/"):
            self._api(path[len("/api/") :], raw)
        else:
            self.fake._record_other(path, 404, "not_found")
            self._send(404, "text/plain", b"not_found")

    def _body(self, raw: bytes) -> dict[str, Any] | None:
        content_type = self.headers.get("Content-Type", "")
        try:
            if "application/x-www-form-urlencoded" in content_type:
                form = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
                if isinstance(form.get("blocks"), str):
                    form["blocks"] = json.loads(form["blocks"])
                return form
            parsed = json.loads(raw or b"{}")
        except ValueError:
            return None
        return parsed if isinstance(parsed, dict) else None

    def _webhook(self, path: str, raw: bytes) -> None:
        channel = self.fake._hook_channel(path)
        if channel is None:
            self.fake._record_other(path, 404, "no_service")
            self._send(404, "text/html", b"no_service")
            return
        body = self._body(raw)
        if body is None:
            self.fake._record_other(path, 400, "invalid_payload")
            self._send(400, "text/html", b"invalid_payload")
            return
        status, error, retry_after, _ = self.fake._answer("webhook", channel, body, None)
        self._send(status, "text/html", (error or "ok").encode(), retry_after)

    def _api(self, method: str, raw: bytes) -> None:
        if method != "chat.postMessage":
            self.fake._record_other("/api/" + method, 200, "unknown_method")
            self._json(200, {"ok": False, "error": "unknown_method"})
            return
        body = self._body(raw)
        if body is None:
            self._json(200, {"ok": False, "error": "invalid_json"})
            return
        auth = self.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ").strip() or body.get("token") or None
        raw_channel = body.get("channel")
        channel = (
            normalize_channel(raw_channel) if isinstance(raw_channel, str) and raw_channel else None
        )
        status, error, retry_after, problems = self.fake._answer(
            "chat.postMessage", channel, body, token
        )
        if error is None:
            ts = f"{time.time():.6f}"
            answer: dict[str, Any] = {
                "ok": True,
                "channel": channel,
                "ts": ts,
                "message": {"type": "message", "text": body.get("text"), "ts": ts},
            }
        else:
            answer = {"ok": False, "error": error}
            if problems:
                answer["errors"] = list(problems)
        self._json(status, answer, retry_after)

    def _json(self, status: int, data: dict[str, Any], retry_after: int | None = None) -> None:
        self._send(
            status, "application/json; charset=utf-8", json.dumps(data).encode(), retry_after
        )

    def _send(
        self, status: int, content_type: str, body: bytes, retry_after: int | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if retry_after is not None:
            self.send_header("Retry-After", str(retry_after))
        self.end_headers()
        self.wfile.write(body)
