"""How the admin CLI reaches running nodes: a signed request to one node, which applies it on every node.

``chatd users disable``, ``chatd users rename`` and ``chatd users revoke`` change the store, which new sessions and
requests follow at once; the sockets already open, and what nodes cache, live in server processes. The CLI
therefore posts the matching control events to one node (``POST /api/admin/control``), which applies them and
broadcasts them to the others (``chatd.core.cluster``), so sockets close (or hear of a rename) wherever they are, and no
node keeps a cached answer about the user.

The request is signed (a key derived from the deployment's, a timestamp, a one-use id); its contract, signature and
the checks a node makes are in ``chatd.signing``, which the node's side (``chatd.gateway.control``) imports too.
"""

from __future__ import annotations

import secrets

import msgspec

from chatd.signing import HEADER, PATH, ControlRequest, sign


def node_url(host: str, port: int) -> str:
    """Where a CLI on the node's machine reaches it: a wildcard listen address is reached through loopback."""
    if host in ("", "0.0.0.0"):  # noqa: S104 - reading the setting, not binding
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def post_events(url: str, key: bytes, events: list[list[str]], timeout: float = 5.0) -> str | None:
    """Send events to the node at ``url``; None when it applied them, else what went wrong, in plain words."""
    import urllib.error
    import urllib.request

    body = msgspec.json.encode(ControlRequest(events, secrets.token_urlsafe(16)))
    req = urllib.request.Request(  # noqa: S310 - the URL is the operator's own node
        url.rstrip("/") + PATH,
        data=body,
        method="POST",
        headers={"content-type": "application/json", HEADER: sign(key, body)},
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310
            resp.read()
        return None
    except urllib.error.HTTPError as e:
        return f"{url} answered {e.code}: {e.read()[:200].decode(errors='replace')}"
    except (urllib.error.URLError, OSError) as e:
        return f"no chatd server answered at {url} ({getattr(e, 'reason', e)})"
