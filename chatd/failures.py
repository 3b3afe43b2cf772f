"""Failures an operator can fix, said in one or two lines: what failed, where, and what to do.

A database that is down, a broker that refuses connections, a directory that does not exist or a file chatd may not
write are not bugs; a traceback there hides the one fact that matters (which address, which path) under frames of
library code. Stores and brokers raise their start-up failures through :func:`unreachable` and :func:`path_problem`,
and the ``chatd`` command turns anything else that escapes a command into :func:`explain` (the traceback only with
``chatd --debug``). URLs and DSNs pass through :func:`chatd.config.safe_url`, so no password reaches a terminal.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from chatd.config import safe_url

_PATH_ADVICE = {
    errno.ENOENT: "create the directory, or choose another path",
    errno.ENOTDIR: "a part of the path is a file, not a directory: choose another path",
    errno.EISDIR: "that is a directory: give a file name inside it",
    errno.EACCES: "run as the user that owns it, or change its owner or mode",
    errno.EPERM: "run as the user that owns it, or change its owner or mode",
    errno.EROFS: "that file system is read-only: choose a writable path",
    errno.ENOSPC: "the disk is full: free space, or choose a path on another disk",
    errno.EEXIST: "it exists already: remove it, or choose another path",
}


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = str(exc).strip() or type(exc).__name__
    return text.rstrip(".")


def path_problem(exc: OSError, path: str | os.PathLike[str] | None = None, what: str = "") -> str:
    """``exc`` about a file or directory as one line: ``what`` (say, "the backup"), the path, why, and what to do.

    A missing directory is named rather than the file inside it, since the directory is what must be made."""
    target = Path(path if path is not None else exc.filename or "")
    head = f"{what} at {target}" if what else str(target)
    if exc.errno == errno.ENOENT:
        missing = next((p for p in reversed(target.parents) if not p.exists()), None)
        if missing is not None:
            return f"{head}: the directory {missing} does not exist: create it, or choose another path"
    return f"{head}: {_reason(exc)}: {_PATH_ADVICE.get(exc.errno or 0, 'check the path')}"


def unreachable(service: str, where: str, exc: BaseException, setting: str) -> str:
    """A service that could not be reached at start-up: ``cannot reach the <service> at <where>: <why>``, and what
    to check (``setting``, the config key that names it)."""
    # Refused or timed out (OSError, TimeoutError, the clients' own ConnectionErrors): most likely not running.
    down = isinstance(exc, OSError | TimeoutError) or "Connection" in type(exc).__name__
    running = "Is it running? " if down else ""
    return f"cannot reach the {service} at {safe_url(where)}: {safe_url(_reason(exc))}. {running}Check {setting}"


def explain(exc: BaseException) -> str:
    """What the ``chatd`` command says about an exception no command caught: a path or connection problem in its
    own words, anything else as a fault of chatd's with the way to its traceback."""
    if isinstance(exc, OSError) and exc.filename:
        return path_problem(exc)
    if isinstance(exc, ConnectionError | TimeoutError) or (isinstance(exc, OSError) and exc.errno):
        return f"a connection failed: {_reason(exc)}. Is the service chatd talks to running? (chatd --debug: where)"
    return (
        f"unexpected {type(exc).__name__}: {safe_url(_reason(exc))}. This is a bug in chatd: run the command again "
        "as chatd --debug … for the traceback, and report it"
    )
