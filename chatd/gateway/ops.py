"""Operational endpoints: liveness, readiness, Prometheus metrics."""

from __future__ import annotations

from typing import Any

from litestar import MediaType, Request, Response, get
from litestar.openapi.datastructures import ResponseSpec


@get("/healthz", summary="Liveness: the process answers", media_type=MediaType.TEXT)
async def healthz() -> str:
    return "ok"


@get(
    "/readyz",
    summary="Readiness: store and broker usable, store's disk above its watermark, background tasks up, not draining",
    responses={
        503: ResponseSpec(
            dict[str, bool | list[str]],
            description='not ready: the checks, false where one failed; "down" names the background tasks that '
            "crashed and wait to be restarted",
        )
    },
)
async def readyz(request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
    node = request.app.state.node
    checks = await node.ready()
    # A store that cannot write makes every send fail: out of rotation before its disk is full.
    checks["store_disk"] = node.store_disk.ok(fresh=True)
    ok = all(checks.values())
    body: dict[str, Any] = {"ready": ok, **checks}
    if down := node.down_tasks():
        body["down"] = down
    return Response(body, status_code=200 if ok else 503)


@get("/metrics", summary="Prometheus text (OpenMetrics when the Accept header asks for it)", media_type=MediaType.TEXT)
async def metrics(request: Request[Any, Any, Any]) -> Response[bytes]:
    body, content_type = request.app.state.node.metrics.exposition(request.headers.get("accept", ""))
    # litestar adds the charset to text types itself; the library's own would make it appear twice.
    return Response(body, media_type=content_type.replace("; charset=utf-8", ""))


ops_handlers = [healthz, readyz, metrics]
