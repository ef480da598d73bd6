"""The HTTP side of the daemon: one FastAPI app with webhooks, the API, health and metrics.

``appflow serve`` builds it with ``create_app`` and serves it with uvicorn on the event
loop its workers run on. The app does no git or cluster I/O itself: it reads the store
and enqueues work through ``Triggers``.

Errors are answered as JSON ``{"error": ..., "hint": ...}``: 404 for a record that does
not exist, 400 for bad input, 401 for a missing or wrong credential, 422 for a
malformed parameter, 503 when the store is busy. A 500 means a bug in appflow.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CollectorRegistry
from starlette.exceptions import HTTPException as StarletteHTTPException

from appflow import __version__
from appflow.errors import (
    AppflowError,
    AuthError,
    ConfigError,
    ForbiddenError,
    NotFoundError,
    StoreError,
)
from appflow.server.api import api_router
from appflow.server.api_actions import actions_router
from appflow.server.bodies import DEFAULT_BODY_TIMEOUT_SECONDS
from appflow.server.metrics import Metrics
from appflow.server.schemas import ErrorBody, Health, Readiness
from appflow.server.service import FleetService
from appflow.server.triggers import Triggers
from appflow.server.ui import mount_dashboard
from appflow.server.webhooks import WebhookReceiver, webhook_router
from appflow.store import Store

if TYPE_CHECKING:
    from appflow.engine.engine import Engine

log = logging.getLogger("appflow.server")

DEFAULT_MAX_BODY_BYTES = 1_048_576
"""1 MiB: GitHub caps push payloads at 25 MB, but a push that big names thousands of
commits, and appflow reads only the repository, the ref and the head commit."""


def _status_of(err: AppflowError) -> int:
    if isinstance(err, NotFoundError):
        return 404
    if isinstance(err, ConfigError):
        return 400
    if isinstance(err, AuthError):
        return 401
    if isinstance(err, ForbiddenError):
        return 403
    if isinstance(err, StoreError):
        return 503
    return 500


def _error(status: int, error: str, hint: str | None = None) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(
        ErrorBody(error=error, hint=hint).model_dump(), status_code=status, headers=headers
    )


def create_app(
    *,
    store: Store,
    triggers: Triggers,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    require_token: bool = True,
    registry: CollectorRegistry | None = None,
    metrics: Metrics | None = None,
    engine: Engine | None = None,
    catalog_dir: Path | None = None,
    body_timeout_seconds: float = DEFAULT_BODY_TIMEOUT_SECONDS,
    read_secret: Callable[[str], bytes] | None = None,
) -> FastAPI:
    """The appflow HTTP app over STORE, queuing work on TRIGGERS.

    METRICS is the object the daemon also feeds (``observe_sync``...); without it one is
    made on REGISTRY (or a fresh registry) with the queue depth read from TRIGGERS. It is
    available as ``app.state.metrics`` either way. REQUIRE_TOKEN=False serves the API
    without bearer tokens (only for a server bound to loopback, or tests). ENGINE, when
    given, lets the API and the dashboard diff, roll back and install (``appflow serve``).
    BODY_TIMEOUT_SECONDS bounds how long a webhook body may take to arrive. READ_SECRET reads
    a repository's webhook secret reference (the hub's are Secrets).
    """
    if max_body_bytes <= 0:
        raise ConfigError("the webhook body limit must be positive")
    if body_timeout_seconds <= 0:
        raise ConfigError("the webhook body timeout must be positive")
    metrics = metrics or Metrics(registry=registry)
    if not metrics.queue_depth_bound:
        metrics.watch_queue(triggers.queue_depth)
    app = FastAPI(
        title="appflow",
        version=__version__,
        summary="GitOps and Helm app flows for edge Kubernetes fleets.",
        description=(
            "Webhooks under /hooks (authenticated by signature), the API under /api/v1 "
            "(authenticated by bearer token), /healthz, /readyz and /metrics."
        ),
    )
    app.state.metrics = metrics
    app.state.store = store

    @app.exception_handler(AppflowError)
    async def appflow_error(request: Request, err: AppflowError) -> JSONResponse:
        status = _status_of(err)
        if status >= 500:
            log.error("%s %s failed: %s", request.method, request.url.path, err)
        elif status == 401:
            client = request.client.host if request.client else "?"
            log.warning("%s %s from %s refused: %s", request.method, request.url.path, client, err)
        place = err.where.describe()
        return _error(status, f"{place}: {err.message}" if place else err.message, err.hint)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, err: RequestValidationError) -> JSONResponse:
        problems = []
        for e in err.errors():
            where = ".".join(str(p) for p in e.get("loc", ()))
            problems.append(f"{where}: {e.get('msg', 'invalid')}")
        return _error(422, "; ".join(problems) or "invalid request", "see /docs for parameters")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, err: StarletteHTTPException) -> JSONResponse:
        return _error(err.status_code, str(err.detail))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, err: Exception) -> JSONResponse:
        log.exception("%s %s failed", request.method, request.url.path)
        return _error(500, "internal error in appflow", "see the appflow server's log")

    @app.get("/healthz", tags=["health"], summary="The process answers")
    async def healthz() -> Health:
        return Health(status="ok")

    @app.get(
        "/readyz",
        tags=["health"],
        summary="The daemon has loaded its state and its workers run",
        responses={503: {"model": Readiness, "description": "Not ready yet."}},
    )
    async def readyz() -> JSONResponse:
        ready = triggers.ready()
        return JSONResponse(Readiness(ready=ready).model_dump(), status_code=200 if ready else 503)

    @app.get(
        "/metrics",
        tags=["health"],
        summary="Prometheus metrics",
        response_class=Response,
        responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text."}},
    )
    async def prometheus_metrics() -> Response:
        return Response(metrics.render(), media_type=metrics.content_type)

    receiver = WebhookReceiver(
        store=store,
        triggers=triggers,
        metrics=metrics,
        max_body_bytes=max_body_bytes,
        body_timeout_seconds=body_timeout_seconds,
    )
    if read_secret is not None:
        receiver.read_secret = read_secret
    app.include_router(webhook_router(receiver))
    service = FleetService(store=store, triggers=triggers, engine=engine, catalog_dir=catalog_dir)
    app.state.service = service
    app.include_router(api_router(service=service, require_token=require_token))
    app.include_router(actions_router(service=service, require_token=require_token))
    mount_dashboard(app, service=service, require_token=require_token)
    return app
