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
    summary="Readiness: store and broker usable, store's disk above its watermark, not draining",
    responses={503: ResponseSpec(dict[str, bool], description="not ready: the checks, false where one failed")},
)
async def readyz(request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
    node = request.app.state.node
    checks = await node.ready()
    # A store that cannot write makes every send fail: out of rotation before its disk is full.
    checks["store_disk"] = request.app.state.store_disk.ok(fresh=True)
    ok = all(checks.values())
    return Response({"ready": ok, **checks}, status_code=200 if ok else 503)


@get("/metrics", summary="Prometheus text (OpenMetrics when the Accept header asks for it)", media_type=MediaType.TEXT)
async def metrics(request: Request[Any, Any, Any]) -> Response[bytes]:
    body, content_type = request.app.state.node.metrics.exposition(request.headers.get("accept", ""))
    # litestar adds the charset to text types itself; the library's own would make it appear twice.
    return Response(body, media_type=content_type.replace("; charset=utf-8", ""))


ops_handlers = [healthz, readyz, metrics]
