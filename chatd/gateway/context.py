"""What every REST handler takes from its request and the app: the node, and a client_id when none was given."""

from __future__ import annotations

import secrets
from typing import Any

from litestar import Request

from chatd.node import Node


def node_of(request: Request[Any, Any, Any]) -> Node:
    node: Node = request.app.state.node
    return node


def client_id_or_new(given: str | None) -> str:
    """A REST call may leave out client_id: it gets one of its own (so it is not idempotent across retries)."""
    return given or f"rest-{secrets.token_hex(8)}"
