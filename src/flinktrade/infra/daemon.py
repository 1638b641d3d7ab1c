"""What every daemon flinktrade starts shares: a scrubbed environment, private state, loopback.

The Kafka broker and the Flink JobManager/TaskManagers outlive the CLI that starts them, so they
must not carry its secrets: they get an environment built from an allow-list (``daemon_env``), not
a copy of ours minus a deny-list, so an ``APCA_*``, ``SLACK_*``, ``FLINKTRADE_API_TOKEN`` or any
other credential in the caller's environment never reaches ``/proc/<pid>/environ`` of a JVM that
runs for days. Their state (configuration, pid files, logs, data) is private to the user: folders
0700, files 0600 (``private_dir``, ``write_private``), and the daemons themselves run with umask 077
(``DAEMON_UMASK``) so what they write is private too.

Neither the embedded broker nor Flink's REST API authenticates anyone, so both listen on loopback
(``infra.process.is_loopback``; the settings refuse a remote broker without an acknowledgement).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from flinktrade.errors import InfraError

DAEMON_UMASK = 0o077
"""Files a daemon creates are 0600, folders 0700."""

ALLOWED_ENV = frozenset(
    {
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "LANG",
        "LANGUAGE",
        "TZ",
        "TMPDIR",
        "HOSTNAME",
        "JAVA_HOME",
        "LD_LIBRARY_PATH",
        "PYTHONPATH",
        "PYTHONHOME",
        "VIRTUAL_ENV",
        "OPENBLAS_CORETYPE",
        "OPENBLAS_L2_SIZE",
    }
)
"""Variables a daemon inherits: what the JVM, Flink's shell scripts and the Python workers inside
a TaskManager need to find their tools, locale and packages. Nothing else is passed on."""

ALLOWED_ENV_PREFIXES = ("LC_",)


def daemon_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a daemon: the allow-listed part of ours, plus ``extra`` (which wins)."""
    env = {
        name: value
        for name, value in os.environ.items()
        if name in ALLOWED_ENV or name.startswith(ALLOWED_ENV_PREFIXES)
    }
    env.update(extra or {})
    return env


def private_dir(path: Path) -> Path:
    """Create ``path`` and its missing parents as 0700 folders, make ``path`` 0700; return it.

    Parents that exist keep their mode: the state folder may sit in a shared place on purpose.
    A folder that cannot be made is an ``InfraError`` naming it (not a traceback)."""
    try:
        for folder in [*reversed(path.parents), path]:
            if not folder.exists():
                folder.mkdir(mode=0o700, exist_ok=True)
                folder.chmod(0o700)  # mkdir's mode is filtered by the umask
        path.chmod(0o700)
    except OSError as exc:
        raise InfraError(
            f"cannot create the state folder {path}: {exc.strerror} (see FLINKTRADE_STATE_DIR)"
        ) from None
    return path


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` as a 0600 file (also when it existed with a wider mode)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        os.fchmod(file.fileno(), 0o600)
        file.write(text)


def open_private_log(path: Path) -> int:
    """Open ``path`` for appending as a 0600 file; return the descriptor (the caller closes it)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.fchmod(fd, 0o600)
    return fd
