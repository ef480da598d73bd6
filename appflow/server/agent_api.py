"""The hub's agent API: what pull agents call besides the hub's Kubernetes API (docs/hub.md §11).

- ``GET /agent/v1/ca``: the CA of this endpoint (public; the agent checks it against the pin it
  was given before it sends anything secret);
- ``POST /agent/v1/register``: a registration token and the cluster's facts in, the cluster's
  own credential out (``dryRun: true`` checks the token and writes nothing: ``appflow agent
  install`` asks before it touches the edge cluster);
- ``GET /agent/v1/content/{digest}``: content, to an agent whose Deployments reference it.

Errors are ``{"error": ..., "hint": ...}`` with 400 (bad input), 401 (token or credential not
accepted), 403 (not an agent, or content it may not read), 404.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import tempfile
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Header, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, Field

from appflow import __version__
from appflow.errors import AppflowError, AuthError, ConfigError, ForbiddenError, NotFoundError
from appflow.hub.agent_content import AgentContent
from appflow.hub.agent_tls import ensure_tls, host_of, publish_endpoint
from appflow.hub.registration import (
    DEFAULT_CREDENTIAL_TTL,
    RegistrationOptions,
    check_registration,
    collect_tokens,
    finish_rotation,
    register,
)
from appflow.kube.client import Connection, KubeCluster
from appflow.model.hub import DEFAULT_WORKSPACE, SYSTEM_NAMESPACE
from appflow.model.registration import AGENT_KEEPALIVE_SECONDS, ClusterFacts
from appflow.paths import data_dir

log = logging.getLogger("appflow.agent_api")


class RegisterBody(BaseModel):
    token: str = Field(description="The registration token (aft_<id>.<secret>).")
    facts: dict[str, Any] = Field(description="What the agent reports about its cluster.")
    dryRun: bool = Field(default=False, description="Check only; create nothing.")


def _status_of(err: AppflowError) -> int:
    if isinstance(err, AuthError):
        return 401
    if isinstance(err, ForbiddenError):
        return 403
    if isinstance(err, NotFoundError):
        return 404
    if isinstance(err, ConfigError):
        return 400
    return 503 if err.retryable else 500


def _bearer(authorization: str) -> str:
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError("no agent credential", hint="send Authorization: Bearer <token>")
    return token.strip()


def create_agent_app(*, kube: KubeCluster, options: RegistrationOptions, ca: bytes) -> FastAPI:
    """The agent API over the hub KUBE (with rights to register clusters and read content)."""
    app = FastAPI(title="appflow agent API", version=__version__, docs_url=None, redoc_url=None)
    content = AgentContent(kube, workspace=options.workspace)
    app.state.content = content

    @app.exception_handler(AppflowError)
    async def appflow_error(request: Request, err: AppflowError) -> JSONResponse:
        status = _status_of(err)
        if status >= 500:
            log.error("%s %s failed: %s", request.method, request.url.path, err)
        else:
            log.info("%s %s refused: %s", request.method, request.url.path, err)
        place = err.where.describe()
        return JSONResponse(
            {"error": f"{place}: {err.message}" if place else err.message, "hint": err.hint},
            status_code=status,
        )

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/agent/v1/ca", response_class=PlainTextResponse)
    async def get_ca() -> PlainTextResponse:
        return PlainTextResponse(ca.decode(), media_type="application/x-pem-file")

    @app.post("/agent/v1/register")
    async def post_register(body: RegisterBody) -> dict[str, Any]:
        facts = ClusterFacts.from_data(body.facts)
        if body.dryRun:
            name = await check_registration(kube, options, token=body.token, facts=facts)
            return {"cluster": name, "dryRun": True}
        done = await register(kube, options, token=body.token, facts=facts)
        return done.to_data()

    @app.post("/agent/v1/credential/{generation}")
    async def post_credential(
        generation: int, authorization: str = Header(default="")
    ) -> dict[str, Any]:
        """The calling agent switched to GENERATION (it calls with a token of it): the older
        generations are revoked."""
        namespace = await content.namespace_of(_bearer(authorization))
        retired = await finish_rotation(kube, namespace=namespace, generation=generation)
        return {"generation": generation, "revoked": retired}

    @app.get("/agent/v1/content/{digest}")
    async def get_content(digest: str, authorization: str = Header(default="")) -> Response:
        namespace = await content.namespace_of(_bearer(authorization))
        data = await content.fetch(namespace, digest)
        return Response(
            data,
            media_type="application/octet-stream",
            headers={"X-Appflow-Encoding": "gzip", "Cache-Control": "private, immutable"},
        )

    return app


@dataclass(frozen=True, kw_only=True)
class AgentApiOptions:
    kubeconfig: Path | None
    """The hub's kubeconfig (None: the pod's ServiceAccount)."""
    context: str | None = None
    workspace: str = DEFAULT_WORKSPACE
    namespace: str = SYSTEM_NAMESPACE
    listen: str = "0.0.0.0:8443"
    advertise_url: str
    """The URL agents use to reach this API (its host goes into the serving certificate)."""
    server: str | None = None
    """The hub API server's URL as agents reach it (default: the kubeconfig's)."""
    server_ca: Path | None = None
    """Its CA (default: the kubeconfig's, or the pod's)."""
    credential_ttl: timedelta = DEFAULT_CREDENTIAL_TTL


def _server_ca(kube: KubeCluster, given: Path | None) -> bytes:
    path = given or kube.api_client.configuration.ssl_ca_cert
    if not path:
        raise ConfigError(
            "the hub API server's CA is unknown: its kubeconfig names none",
            hint="pass --hub-server-ca FILE",
        )
    return Path(path).read_bytes()


async def serve_agent_api(options: AgentApiOptions, *, stop: asyncio.Event | None = None) -> None:
    """Serve the agent API over HTTPS until STOP is set (or SIGTERM/SIGINT)."""
    import uvicorn

    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    host, _, port = options.listen.rpartition(":")
    if not port.isdigit():
        raise ConfigError(f"--listen {options.listen!r}: expected HOST:PORT")
    kube = KubeCluster(
        Connection(name="hub", kubeconfig=options.kubeconfig, context=options.context)
    )
    try:
        advertised = host_of(options.advertise_url)
        tls = await ensure_tls(
            kube, hosts=[advertised, "127.0.0.1", "localhost"], namespace=options.namespace
        )
        registration = RegistrationOptions(
            workspace=options.workspace,
            server=options.server or kube.server,
            server_ca=options.server_ca.read_bytes()
            if options.server_ca
            else _server_ca(kube, None),
            credential_ttl=options.credential_ttl,
        )
        endpoint = await publish_endpoint(
            kube, url=options.advertise_url, ca=tls.ca, namespace=options.namespace
        )
        app = create_agent_app(kube=kube, options=registration, ca=tls.ca)
        with tempfile.TemporaryDirectory(dir=_private_dir()) as folder:
            cert, key = Path(folder) / "tls.crt", Path(folder) / "tls.key"
            cert.write_bytes(tls.cert + tls.ca)
            fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(tls.key)

            class Server(uvicorn.Server):
                def install_signal_handlers(self) -> None:
                    return None

            server = Server(
                uvicorn.Config(
                    app,
                    host=host or "0.0.0.0",
                    port=int(port),
                    log_level="warning",
                    lifespan="off",
                    ssl_certfile=str(cert),
                    ssl_keyfile=str(key),
                    timeout_graceful_shutdown=5,
                    backlog=4096,
                    # uvicorn's 5 s default also times the first request of a new connection:
                    # a thousand agents fetching a commit's content at once, over TLS on a
                    # busy machine, lost theirs to it ("disconnected without a response").
                    # Longer than the agents' own keep-alive, so they never reuse a connection
                    # the server is closing.
                    timeout_keep_alive=int(AGENT_KEEPALIVE_SECONDS * 2),
                )
            )
            log.info(
                "agent API on %s (advertised %s, CA %s), workspace %s",
                options.listen,
                endpoint.url,
                endpoint.pin,
                options.workspace,
            )
            task = asyncio.create_task(server.serve())
            collector = asyncio.create_task(_collect_tokens(kube, options.workspace, stop))
            await stop.wait()
            collector.cancel()
            server.should_exit = True
            await task
    finally:
        kube.close()


TOKENS_EVERY = 600.0


async def _collect_tokens(kube: KubeCluster, workspace: str, stop: asyncio.Event) -> None:
    """Delete registration tokens long expired (every replica may: it is idempotent)."""
    while not stop.is_set():
        with contextlib.suppress(AppflowError):
            gone = await collect_tokens(kube, workspace=workspace)
            if gone:
                log.info("collected %d expired registration token(s)", gone)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), TOKENS_EVERY)


def _private_dir() -> Path:
    folder = data_dir() / "run"
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    return folder
