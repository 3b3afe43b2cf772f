"""What every REST handler takes from its request and the app: the node, and a client_id when none was given."""

from __future__ import annotations

import secrets
from typing import Any

from litestar import Request

from chatd.core.node import Node
from chatd.gateway.auth import client_ip


def node_of(request: Request[Any, Any, Any]) -> Node:
    node: Node = request.app.state.node
    return node


def client_id_or_new(given: str | None) -> str:
    """A REST call may leave out client_id: it gets one of its own (so it is not idempotent across retries)."""
    return given or f"rest-{secrets.token_hex(8)}"


def request_ip(request: Request[Any, Any, Any]) -> str:
    """The client's address, through the proxies ``server.trusted_proxies`` names (for throttles and logs)."""
    return client_ip(
        request.client.host if request.client else None, request.headers, node_of(request).cfg.server.trusted_proxies
    )
