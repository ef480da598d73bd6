"""The agent's connections to the hub: its Kubernetes API (with the agent's own credential) and
the hub's agent API (registration, content), both over TLS with the CA pinned at registration.

Asynchronous HTTP (httpx) rather than the kubernetes client: an agent needs six calls (list and
watch its Deployments, patch their status, renew its Lease, renew its token), and with no
thread per watch one process can hold a thousand agents' connections (bench/agents.py).

Errors are appflow's: ``ClusterUnreachableError`` (retry with backoff), ``AuthError`` (the hub
does not accept the credential: the cluster was removed or its credential revoked),
``ForbiddenError``, ``NotFoundError``, ``ConflictError``, ``WatchExpired`` (410: list again).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx

from appflow.errors import (
    AppflowError,
    AuthError,
    ClusterError,
    ClusterUnreachableError,
    ConfigError,
    ConflictError,
    ContentError,
    ForbiddenError,
    NotFoundError,
    Where,
)
from appflow.model import content as fmt
from appflow.model.hub import API_VERSION
from appflow.model.registration import AGENT_KEEPALIVE_SECONDS, AGENT_NAME, ca_pin

LEASE_PATH = "/apis/coordination.k8s.io/v1"
USER_AGENT = "appflow-agent"


class WatchExpired(ClusterError):
    """The watch's resourceVersion is too old (HTTP 410 Gone): list again."""


def ssl_context(ca: bytes) -> ssl.SSLContext:
    """Trust exactly CA: no system roots, so only the pinned hub verifies."""
    context = ssl.create_default_context(cadata=ca.decode())
    return context


def _tls_failure(err: BaseException) -> bool:
    text = f"{err} {err.__cause__ or ''} {err.__context__ or ''}"
    return "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text


def _translate(err: BaseException, *, what: str, where: Where) -> AppflowError:
    if isinstance(err, AppflowError):
        return err
    if isinstance(
        err, httpx.ConnectError | httpx.ReadError | httpx.RemoteProtocolError
    ) and _tls_failure(err):
        return AuthError(
            f"{what}: the hub's certificate is not signed by the CA pinned at registration",
            where=where,
            hint="someone else answers at this address, or the hub's CA changed; check the"
            " hub URL, or register again with the hub's current CA pin",
        )
    if isinstance(err, httpx.TransportError):
        return ClusterUnreachableError(f"{what}: the hub did not answer: {err!s:.200}", where=where)
    return ClusterError(f"{what}: {type(err).__name__}: {err!s:.200}", where=where)


def _error_text(response: httpx.Response) -> tuple[str, str | None]:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300], None
    if isinstance(body, dict):
        return str(body.get("error") or body.get("message") or body)[:600], body.get("hint")
    return str(body)[:300], None


def _raise_for(response: httpx.Response, *, what: str, where: Where) -> None:
    code = response.status_code
    if code < 400:
        return
    message, hint = _error_text(response)
    text = f"{what}: {message}"
    if code == 401:
        raise AuthError(
            text,
            where=where,
            hint=hint
            or "the hub does not accept this agent's credential: the cluster was removed or its"
            " credential revoked; register it again with a new token",
        )
    if code == 403:
        raise ForbiddenError(text, where=where, hint=hint)
    if code == 404:
        raise NotFoundError(text, where=where, hint=hint)
    if code == 409:
        raise ConflictError(text, where=where, hint=hint)
    if code == 410:
        raise WatchExpired(text, where=where)
    if code == 400 or code == 422:
        raise ConfigError(text, where=where, hint=hint)
    raise ClusterError(f"{text} (HTTP {code})", where=where, hint=hint)


# -- the agent API: registration and content -----------------------------------------------


async def fetch_pinned_ca(url: str, pin: str, *, timeout: float = 10.0) -> bytes:
    """The agent API's CA, fetched without trusting anyone, then checked against PIN.

    Only a CA whose key hashes to PIN is accepted, so whoever answers cannot substitute their
    own; from then on every connection verifies against it (kubeadm's discovery, the same way).
    """
    where = Where(object=url)
    try:
        async with httpx.AsyncClient(verify=False, timeout=timeout) as client:
            response = await client.get(f"{url.rstrip('/')}/agent/v1/ca")
    except httpx.HTTPError as err:
        raise _translate(err, what="fetching the hub's CA", where=where) from err
    _raise_for(response, what="fetching the hub's CA", where=where)
    ca = response.content
    try:
        found = ca_pin(ca)
    except ConfigError as err:
        raise AuthError(f"the hub at {url} sent no valid CA certificate", where=where) from err
    if found != pin:
        raise AuthError(
            f"the hub at {url} presents CA {found}, not the pinned {pin}",
            where=where,
            hint="check --hub-url and --hub-ca-pin: copy both from the install command the hub"
            " printed; nothing was sent to this server",
        )
    return ca


class AgentApi:
    """The hub's agent API, over TLS verified against the pinned CA."""

    def __init__(self, url: str, ca: bytes, *, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self._client = httpx.AsyncClient(
            base_url=self.url,
            verify=ssl_context(ca),
            timeout=timeout,
            headers={"User-Agent": USER_AGENT},
            # Shorter than the agent API's keep-alive (``server.agent_api``): a connection is
            # never reused just as the server closes it.
            limits=httpx.Limits(keepalive_expiry=AGENT_KEEPALIVE_SECONDS),
        )
        self.downloaded = 0
        """Bytes of content received, as sent (compressed)."""

    async def close(self) -> None:
        await self._client.aclose()

    async def _call(self, method: str, path: str, *, what: str, **kwargs: Any) -> httpx.Response:
        where = Where(object=f"{self.url}{path.split('?')[0]}")
        try:
            response = await self._client.request(method, path, **kwargs)
        except httpx.HTTPError as err:
            raise _translate(err, what=what, where=where) from err
        _raise_for(response, what=what, where=where)
        return response

    async def register(self, *, token: str, facts: dict[str, Any], dry_run: bool) -> dict[str, Any]:
        response = await self._call(
            "POST",
            "/agent/v1/register",
            what="registering with the hub",
            json={"token": token, "facts": facts, "dryRun": dry_run},
        )
        answer = response.json()
        if not isinstance(answer, dict):
            raise ClusterError("the hub's answer to the registration is not an object")
        return answer

    async def switched(self, generation: int, *, credential: str) -> None:
        """Tell the hub this agent uses credential GENERATION now (with a token of it), so
        that the older ones are revoked."""
        await self._call(
            "POST",
            f"/agent/v1/credential/{generation}",
            what="retiring the old credential",
            headers={"Authorization": f"Bearer {credential}"},
        )

    async def content(self, digest: str, *, credential: str) -> bytes:
        """The bytes of content DIGEST (uncompressed, verified)."""
        response = await self._call(
            "GET",
            f"/agent/v1/content/{digest}",
            what=f"fetching content {digest[:19]}",
            headers={"Authorization": f"Bearer {credential}"},
        )
        self.downloaded += len(response.content)
        try:
            data = gzip.decompress(response.content)
        except (OSError, EOFError) as err:
            raise ContentError(f"content {digest} arrived damaged: {err}") from err
        if fmt.digest_of(data) != digest:
            raise ContentError(f"content {digest} arrived with other bytes (digest mismatch)")
        return data


# -- the hub's Kubernetes API, as the agent ----------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Credential:
    """The agent's own identity on the hub (from its registration)."""

    server: str
    ca: bytes
    token: str
    namespace: str
    cluster: str
    generation: int


class HubSession:
    """The hub's Kubernetes API with the agent's credential: its namespace only."""

    def __init__(
        self, credential: Credential, *, timeout: float = 15.0, keepalive: float = 300.0
    ) -> None:
        self.credential = credential
        self.namespace = credential.namespace
        self.where = Where(cluster=credential.cluster)
        self._client = httpx.AsyncClient(
            base_url=credential.server.rstrip("/"),
            verify=ssl_context(credential.ca),
            timeout=httpx.Timeout(timeout),
            headers={"Authorization": f"Bearer {credential.token}", "User-Agent": USER_AGENT},
            # A heartbeat a minute must not pay a TLS handshake each time (httpx's default
            # keeps an idle connection 5 s): that handshake was most of the hub's cost of it.
            limits=httpx.Limits(max_keepalive_connections=4, keepalive_expiry=keepalive),
        )
        self._deployments = f"/apis/{API_VERSION}/namespaces/{self.namespace}/appflowdeployments"

    async def close(self) -> None:
        await self._client.aclose()

    async def _call(self, method: str, path: str, *, what: str, **kwargs: Any) -> Any:
        try:
            response = await self._client.request(method, path, **kwargs)
        except httpx.HTTPError as err:
            raise _translate(err, what=what, where=self.where) from err
        _raise_for(response, what=what, where=self.where)
        return response.json()

    async def list_deployments(self) -> tuple[list[dict[str, Any]], str]:
        """The Deployments of this cluster, and the list's resourceVersion to watch from."""
        body = await self._call("GET", self._deployments, what="listing this cluster's deployments")
        items = list(body.get("items") or [])
        return items, str((body.get("metadata") or {}).get("resourceVersion", ""))

    async def watch_deployments(
        self, resource_version: str, *, timeout: int = 300
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """(type, object) events after RESOURCE_VERSION, bookmarks included (they carry the
        newest resourceVersion, so a resumed watch starts late enough); ends after TIMEOUT
        seconds, and raises WatchExpired when the version is too old."""
        params = {
            "watch": "1",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(timeout),
        }
        request = self._client.build_request(
            "GET", self._deployments, params=params, timeout=httpx.Timeout(15.0, read=timeout + 30)
        )
        try:
            response = await self._client.send(request, stream=True)
        except httpx.HTTPError as err:
            raise _translate(
                err, what="watching this cluster's deployments", where=self.where
            ) from err
        try:
            if response.status_code >= 400:
                await response.aread()
                _raise_for(response, what="watching this cluster's deployments", where=self.where)
            async for line in response.aiter_lines():
                if not line.strip():
                    continue
                event = json.loads(line)
                kind = str(event.get("type", ""))
                obj = event.get("object") or {}
                if kind == "ERROR":
                    if int(obj.get("code") or 0) == 410:
                        raise WatchExpired("the watch's resourceVersion expired", where=self.where)
                    raise ClusterError(f"watch error: {obj.get('message')}", where=self.where)
                yield kind, obj
        except httpx.HTTPError as err:
            raise _translate(
                err, what="watching this cluster's deployments", where=self.where
            ) from err
        finally:
            await response.aclose()

    async def patch_status(self, name: str, status: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = await self._call(
            "PATCH",
            f"{self._deployments}/{name}/status",
            what=f"reporting the status of {name}",
            content=json.dumps({"status": status}),
            headers={"Content-Type": "application/merge-patch+json"},
        )
        return result

    async def renew_lease(self, patch: dict[str, Any]) -> dict[str, Any]:
        """Merge PATCH into the heartbeat Lease; the Lease as stored (the hub's requests in its
        annotations come back with it)."""
        result: dict[str, Any] = await self._call(
            "PATCH",
            f"{LEASE_PATH}/namespaces/{self.namespace}/leases/{AGENT_NAME}",
            what="sending a heartbeat",
            content=json.dumps(patch),
            headers={"Content-Type": "application/merge-patch+json"},
        )
        return result

    async def request_token(self, *, generation: int, seconds: int) -> tuple[str, str]:
        """A new token for this agent bound to credential GENERATION: (token, expiry)."""
        body = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {
                "expirationSeconds": seconds,
                "boundObjectRef": {
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "name": f"appflow-agent-credential-{generation}",
                },
            },
        }
        answer = await self._call(
            "POST",
            f"/api/v1/namespaces/{self.namespace}/serviceaccounts/{AGENT_NAME}/token",
            what="renewing this agent's credential",
            json=body,
        )
        status = answer.get("status") or {}
        return str(status["token"]), str(status.get("expirationTimestamp", ""))


def token_fingerprint(token: str) -> str:
    """A short, non-secret name for a token in logs."""
    return hashlib.sha256(token.encode()).hexdigest()[:12]
