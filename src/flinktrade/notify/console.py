"""The console sink: messages printed with rich, for running without Slack (``make demo``)."""

from __future__ import annotations

import re
import threading
from typing import IO

from rich.console import Console
from rich.text import Text

from flinktrade.notify.format import Message

_LINK = re.compile(r"<([^|>]+)\|([^>]+)>")
_EMOJI = {
    ":rotating_light:": "🚨",
    ":warning:": "⚠️",
    ":information_source:": "ℹ️",
    ":bell:": "🔔",
    ":octagonal_sign:": "🛑",
    ":chart_with_upwards_trend:": "📈",
    ":chart_with_downwards_trend:": "📉",
    ":moneybag:": "💰",
    ":memo:": "📝",
    ":white_check_mark:": "✅",
    ":hourglass_flowing_sand:": "⏳",
    ":x:": "❌",
    ":no_entry:": "⛔",
}


def plain(mrkdwn: str) -> str:
    """mrkdwn as terminal text: links as ``label (url)``, no bold markers, entities unescaped."""
    text = _LINK.sub(r"\2 (\1)", mrkdwn).replace("*", "").replace("`", "")
    for code, emoji in _EMOJI.items():
        text = text.replace(code, emoji)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


class ConsoleSink:
    """Writes each message as a few lines to ``file`` (stdout by default); never fails."""

    key = "console"
    description = "console"
    min_interval_s = 0.0

    def __init__(self, file: IO[str] | None = None, color: bool | None = None) -> None:
        self._console = Console(
            file=file,
            highlight=False,
            soft_wrap=True,
            no_color=color is False,
            force_terminal=color,
        )
        self._lock = threading.Lock()
        self.posted = 0

    def post(self, message: Message) -> None:
        lines: list[Text] = []
        for block in message.blocks:
            kind = block.get("type")
            if kind == "header":
                lines.append(Text(plain(str(block["text"]["text"])), style="bold"))
            elif kind == "section":
                if "text" in block:
                    lines.append(
                        Text("  " + plain(str(block["text"]["text"])).replace("\n", "\n  "))
                    )
                fields = [
                    plain(str(f["text"])).replace("\n", ": ", 1) for f in block.get("fields", [])
                ]
                if fields:
                    lines.append(Text("  " + "  ".join(f.replace("\n", ", ") for f in fields)))
            elif kind == "context":
                texts = [plain(str(e.get("text", ""))) for e in block["elements"]]
                lines.append(Text("  " + " · ".join(texts), style="dim"))
        if not lines:
            lines.append(Text(plain(message.text)))
        with self._lock:
            for line in lines:
                self._console.print(line)
            self._console.file.flush()  # one notice at a time, also through a pipe
            self.posted += 1

    def close(self) -> None:
        with self._lock:
            self._console.file.flush()
