"""The open-files limit: every WebSocket is a file descriptor, and a default soft limit caps connections early."""

from __future__ import annotations

import logging
import resource

log = logging.getLogger("chatd")


def raise_open_files(wanted: int | None = None) -> int:
    """Raise the soft RLIMIT_NOFILE to ``wanted`` (default: the hard limit); return the limit now in force.

    The hard limit is raised too when ``wanted`` exceeds it and the process may (root); otherwise the soft limit
    stops at the hard one. Processes started afterwards inherit the result."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if wanted is None else wanted
    if hard != resource.RLIM_INFINITY and target > hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, target))
            return target
        except (ValueError, OSError):
            target = hard
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as e:
            log.warning("could not raise the open-files limit from %d to %d: %s", soft, target, e)
            return soft
        return target
    return soft
