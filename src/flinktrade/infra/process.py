"""Small process and address helpers every launcher and settings check shares (stdlib only).

``is_loopback`` decides what counts as "this machine only" for the broker, Flink, the API and
Slack URLs alike. The pid helpers read the pid files the launchers write and tell a live process
from a gone one (a zombie child counts as gone); ``command_line`` lets a launcher check that a live
pid is really the daemon it started and not an unrelated process that reused the number.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
import time
from pathlib import Path


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address, IPv6 with or without brackets) is this machine only.

    Only ``localhost`` and loopback addresses count: other names are not resolved, since what a
    name resolves to can change after the check."""
    host = host.strip().strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def alive(pid: int) -> bool:
    """Whether process ``pid`` exists (one of another user counts; a zombie child of ours not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    return True


def read_pid(path: Path) -> int | None:
    """The pid in ``path`` if that process is alive; None if the file is missing, bad or stale."""
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if alive(pid) else None


def wait_gone(pid: int, timeout_s: float) -> bool:
    """Wait until ``pid`` is gone or ``timeout_s`` passed; whether it is gone."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.1)
    return not alive(pid)


def command_line(pid: int) -> list[str] | None:
    """The arguments process ``pid`` was started with, or None where that cannot be read (no
    ``/proc``, the process is gone)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def command_lines() -> list[list[str]]:
    """The command lines of every process this one can read (none without ``/proc``)."""
    try:
        pids = [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()]
    except OSError:
        return []
    found = (command_line(pid) for pid in pids)
    return [args for args in found if args is not None]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(host: str, port: int) -> bool:
    """Whether something accepts TCP connections on ``host:port`` (half a second at most)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0
