"""A thin HTTP client for the API server: discovery, GET, LIST, create and server-side apply.

Why it exists: importing the kubernetes package costs a fresh process about 0.4 s of
CPU, more than everything else a no-op `appflow sync` or a live `appflow status`
does. Those read (the kinds' discovery, one LIST per kind, a few GETs) and dry-run
the objects they cannot vouch for (a shared Namespace), so ``KubeCluster`` does
these through this client, and applies with it too (one request, one code path for
dry run and apply); it imports the kubernetes package only for the other writes and
watches, or for a kubeconfig this client does not speak.

It sends the requests the kubernetes package would send (the same paths and
selectors, consistent reads, the same credentials from the same kubeconfig), so it
makes them cheaper, not different. What it speaks: a kubeconfig's server with
its certificate authority (file or data) or insecure-skip-tls-verify, and a client
certificate and key (file or data) or a bearer token (inline or tokenFile). Anything
else (exec plugins, auth providers, basic auth, impersonation, tls-server-name, a
proxy from the kubeconfig or the environment, in-cluster credentials) makes
``rest_client_for`` answer None, and the kubernetes package does everything, as before.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import ssl
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from appflow.model.objects import Manifest

_CLUSTER_KEYS = frozenset(
    {"server", "certificate-authority", "certificate-authority-data", "insecure-skip-tls-verify"}
)
_USER_KEYS = frozenset(
    {"client-certificate", "client-certificate-data", "client-key", "client-key-data"}
    | {"token", "tokenFile"}
)
_IGNORED_KEYS = frozenset({"extensions"})
"""Kubeconfig fields that change nothing about a request."""
DISCOVERY_TTL = 600.0
"""Seconds an API version's discovery, kept on disk, is used by new processes (kubectl keeps
its own for as long); a kind it does not list is read again at once."""


class ApiStatusError(Exception):
    """The API server answered a request with an error status (kube.errors translates it)."""

    def __init__(self, status: int, reason: str, body: bytes) -> None:
        super().__init__(f"HTTP {status} {reason}")
        self.status = status
        self.reason = reason
        self.body = body


class KindNotServedError(Exception):
    """The API server does not serve this kind in this API version."""


@dataclass(frozen=True, kw_only=True)
class Endpoint:
    """Where an API server is and how to prove who we are to it."""

    scheme: str
    host: str
    port: int
    prefix: str
    """The server URL's path (a proxy in front of the API server may add one)."""
    context: ssl.SSLContext | None = field(default=None, repr=False)
    headers: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def server(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}{self.prefix}"


def rest_client_for(
    *, kubeconfig: Path | None, data: dict[str, Any] | None, context: str | None, pool: int
) -> RestClient | None:
    """A client for the context of a kubeconfig (the file, or DATA), or None when the
    kubeconfig needs what only the kubernetes package speaks, or is not readable: the
    kubernetes package then reports what is wrong with it, in its own words."""
    try:
        if data is None:
            if kubeconfig is None:
                return None  # in-cluster credentials
            data = yaml.safe_load(kubeconfig.read_text())
        base = kubeconfig.parent if kubeconfig is not None else None
        endpoint = _endpoint(data, context=context, base=base)
    except (OSError, ValueError, TypeError, KeyError, AttributeError, yaml.YAMLError, ssl.SSLError):
        return None
    return None if endpoint is None else RestClient(endpoint, pool=pool)


def _named(entries: Any, name: str, what: str) -> dict[str, Any]:
    for entry in entries or []:
        if entry.get("name") == name:
            return dict(entry.get(what) or {})
    raise KeyError(name)


def _endpoint(config: Any, *, context: str | None, base: Path | None) -> Endpoint | None:
    chosen = _named(config.get("contexts"), context or config["current-context"], "context")
    cluster = _named(config.get("clusters"), chosen["cluster"], "cluster")
    user = _named(config.get("users"), chosen["user"], "user") if chosen.get("user") else {}
    if set(cluster) - _CLUSTER_KEYS - _IGNORED_KEYS or set(user) - _USER_KEYS - _IGNORED_KEYS:
        return None
    url = urllib.parse.urlsplit(str(cluster["server"]))
    if url.scheme not in ("https", "http") or not url.hostname:
        return None
    if urllib.request.getproxies().get(url.scheme) and not urllib.request.proxy_bypass(
        url.hostname
    ):
        return None
    headers = {"Accept": "application/json", "User-Agent": "appflow"}
    token = user.get("token") or (
        _file(user["tokenFile"], base).read_text().strip() if user.get("tokenFile") else None
    )
    if token:
        headers["Authorization"] = f"Bearer {token}"
    context_ = _tls(cluster, user, base) if url.scheme == "https" else None
    return Endpoint(
        scheme=url.scheme,
        host=url.hostname,
        port=url.port or (443 if url.scheme == "https" else 80),
        prefix=url.path.rstrip("/"),
        context=context_,
        headers=headers,
    )


def _file(name: str, base: Path | None) -> Path:
    # Relative paths in a kubeconfig are relative to the kubeconfig's folder.
    path = Path(name).expanduser()
    return path if path.is_absolute() or base is None else base / path


def _pem(entry: dict[str, Any], key: str, base: Path | None) -> bytes | None:
    if entry.get(f"{key}-data"):
        return base64.b64decode(str(entry[f"{key}-data"]))
    if entry.get(key):
        return _file(str(entry[key]), base).read_bytes()
    return None


def _tls(cluster: dict[str, Any], user: dict[str, Any], base: Path | None) -> ssl.SSLContext:
    authority = _pem(cluster, "certificate-authority", base)
    context = ssl.create_default_context(cadata=authority.decode() if authority else None)
    if cluster.get("insecure-skip-tls-verify"):
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    certificate = _pem(user, "client-certificate", base)
    key = _pem(user, "client-key", base)
    if certificate and key:
        # ssl loads a certificate chain only from files: they live in a private folder
        # (0700, files 0600) for the moment of the load and are removed at once.
        with tempfile.TemporaryDirectory(prefix="appflow-tls-") as folder:
            cert_file, key_file = Path(folder) / "cert.pem", Path(folder) / "key.pem"
            for path, content in ((cert_file, certificate), (key_file, key)):
                descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(descriptor, "wb") as out:
                    out.write(content)
            context.load_cert_chain(str(cert_file), str(key_file))
    return context


class RestClient:
    """Requests to one API server, from many threads at once (a pool of keep-alive
    connections, at most POOL of them kept idle).

    What discovery read is kept in ``discovery_file`` too (when set before the first
    request), for the next processes: a fresh CLI
    then lists at once instead of first asking for each API version (a round trip each,
    seconds on a loaded cluster). An entry older than ``DISCOVERY_TTL``, or one that does
    not list the kind asked for, is read again."""

    def __init__(self, endpoint: Endpoint, *, pool: int) -> None:
        self.endpoint = endpoint
        self._pool = pool
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()
        self.discovery_file: Path | None = None
        self._kinds: dict[str, dict[str, tuple[str, bool]]] = {}
        """Per API version (as read by discovery): kind -> (plural, namespaced)."""
        self._read_at: dict[str, float] = {}
        """Per API version: when it was read (epoch seconds)."""
        self._loaded = False

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

    # -- discovery --------------------------------------------------------

    def resource(self, api_version: str, kind: str, *, timeout: float) -> tuple[str, bool]:
        """(plural, namespaced) of KIND in API_VERSION; KindNotServedError when not served.

        Each API version is read once and remembered until ``invalidate``; a kind it
        does not list sends one more read (a CRD may have just been created)."""
        with self._lock:
            if not self._loaded:
                self._load_discovery()
            known = self._kinds.get(api_version)
            fresh = time.time() - self._read_at.get(api_version, 0.0) < DISCOVERY_TTL
        if known is None or kind not in known or not fresh:
            path = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
            listed = self.get(path, timeout=timeout)
            known = {
                str(r["kind"]): (str(r["name"]), bool(r.get("namespaced")))
                for r in (listed or {}).get("resources") or []
                if "/" not in str(r.get("name", ""))  # subresources (deployments/scale)
            }
            with self._lock:
                self._kinds[api_version] = known
                self._read_at[api_version] = time.time()
                self._save_discovery()
        if kind not in known:
            raise KindNotServedError(f"the cluster does not serve {kind} in {api_version}")
        return known[kind]

    def invalidate(self) -> None:
        """Forget what discovery read (after CRDs were created), here and on disk."""
        with self._lock:
            self._kinds.clear()
            self._read_at.clear()
            self._save_discovery()

    def _load_discovery(self) -> None:
        self._loaded = True
        if self.discovery_file is None:
            return
        try:
            saved = json.loads(self.discovery_file.read_text())
            for api_version, entry in saved.items():
                kinds = {str(k): (str(v[0]), bool(v[1])) for k, v in entry["kinds"].items()}
                self._kinds[str(api_version)] = kinds
                self._read_at[str(api_version)] = float(entry["at"])
        except (OSError, ValueError, TypeError, KeyError, IndexError, AttributeError):
            # Missing or damaged: discovery is read from the server, as without a file.
            self._kinds.clear()
            self._read_at.clear()

    def _save_discovery(self) -> None:
        if self.discovery_file is None:
            return
        saved = {
            v: {"at": self._read_at[v], "kinds": {k: list(p) for k, p in kinds.items()}}
            for v, kinds in self._kinds.items()
        }
        folder = self.discovery_file.parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
            # Written aside and renamed: a process reading it meanwhile sees one whole file.
            with tempfile.NamedTemporaryFile("w", dir=folder, delete=False, suffix=".tmp") as out:
                json.dump(saved, out)
            os.replace(out.name, self.discovery_file)
        except OSError:
            pass  # a cache that cannot be written only costs the next process a round trip

    def path(
        self, api_version: str, kind: str, *, namespace: str, name: str = "", timeout: float
    ) -> str:
        """The URL path of KIND's objects (in NAMESPACE when it is namespaced), or of one."""
        plural, namespaced = self.resource(api_version, kind, timeout=timeout)
        root = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
        scope = f"/namespaces/{urllib.parse.quote(namespace)}" if namespaced and namespace else ""
        one = f"/{urllib.parse.quote(name)}" if name else ""
        return f"{root}{scope}/{plural}{one}"

    # -- requests ---------------------------------------------------------

    def get(self, path: str, *, query: dict[str, str] | None = None, timeout: float) -> Any:
        """The decoded JSON at PATH; None when the server answers 404."""
        url = self.endpoint.prefix + path
        if query:
            url += "?" + urllib.parse.urlencode(query)
        status, reason, body = self._request(url, timeout=timeout)
        if status == 404:
            return None
        if status != 200:
            raise ApiStatusError(status, reason, body)
        return json.loads(body)

    def apply(self, path: str, body: Manifest, *, query: dict[str, str], timeout: float) -> Any:
        """Server-side apply BODY at PATH (the object's own path) with QUERY (fieldManager,
        force, dryRun); the object as the server stored it (or, dry run, would store it)."""
        url = self.endpoint.prefix + path + "?" + urllib.parse.urlencode(query)
        status, reason, answer = self._request(
            url,
            timeout=timeout,
            method="PATCH",
            body=json.dumps(body).encode(),
            content_type="application/apply-patch+yaml",  # JSON is YAML
        )
        if status not in (200, 201):
            raise ApiStatusError(status, reason, answer)
        return json.loads(answer)

    def create(self, path: str, body: Manifest, *, query: dict[str, str], timeout: float) -> Any:
        """POST BODY to PATH (its kind's collection) with QUERY (fieldManager, dryRun); the
        object as the server stored it, or None when one of that name exists (409).

        Not sent twice on a dropped kept connection (a create is not idempotent: the first
        may have been stored); the caller sees ConnectionError and decides."""
        url = self.endpoint.prefix + path + "?" + urllib.parse.urlencode(query)
        status, reason, answer = self._request(
            url,
            timeout=timeout,
            method="POST",
            body=json.dumps(body, separators=(",", ":")).encode(),
            content_type="application/json",
        )
        if status == 409:
            return None
        if status not in (200, 201):
            raise ApiStatusError(status, reason, answer)
        return json.loads(answer)

    def list(
        self, path: str, *, label_selector: str | None, cached: bool = False, timeout: float
    ) -> tuple[list[Manifest], str | None]:
        """The items at PATH (none when the server answers 404) and the list's resourceVersion.
        CACHED: the API server's watch cache (resourceVersion 0) instead of a read of etcd."""
        query = {"labelSelector": label_selector} if label_selector else {}
        if cached:
            query["resourceVersion"] = "0"
        listed = self.get(path, query=query or None, timeout=timeout) or {}
        version = (listed.get("metadata") or {}).get("resourceVersion")
        return list(listed.get("items") or []), str(version) if version else None

    def _request(
        self,
        url: str,
        *,
        timeout: float,
        method: str = "GET",
        body: bytes | None = None,
        content_type: str | None = None,
    ) -> tuple[int, str, bytes]:
        headers = dict(self.endpoint.headers)
        if content_type:
            headers["Content-Type"] = content_type
        reused = True
        connection = self._take()
        if connection is None:
            reused, connection = False, self._connect(timeout)
        try:
            return self._send(connection, method, url, body, headers, timeout=timeout)
        except (ConnectionError, http.client.HTTPException) as err:
            connection.close()
            if not reused or method == "POST":
                raise ConnectionError(f"{self.endpoint.server}: {err}") from err
        # A kept connection the server had closed meanwhile: GET and server-side apply may
        # be sent again (an apply is idempotent); a create is not (see ``create``).
        connection = self._connect(timeout)
        try:
            return self._send(connection, method, url, body, headers, timeout=timeout)
        except (ConnectionError, http.client.HTTPException) as err:
            connection.close()
            raise ConnectionError(f"{self.endpoint.server}: {err}") from err

    def _send(
        self,
        connection: http.client.HTTPConnection,
        method: str,
        url: str,
        body: bytes | None,
        headers: dict[str, str],
        *,
        timeout: float,
    ) -> tuple[int, str, bytes]:
        connection.timeout = timeout
        if connection.sock is not None:
            connection.sock.settimeout(timeout)
        try:
            connection.request(method, url, body=body, headers=headers)
            response = connection.getresponse()
            body = response.read()
        except BaseException:
            connection.close()
            raise
        if response.will_close:
            connection.close()
        else:
            self._give_back(connection)
        return response.status, response.reason, body

    def _connect(self, timeout: float) -> http.client.HTTPConnection:
        e = self.endpoint
        if e.scheme == "https":
            return http.client.HTTPSConnection(e.host, e.port, timeout=timeout, context=e.context)
        return http.client.HTTPConnection(e.host, e.port, timeout=timeout)

    def _take(self) -> http.client.HTTPConnection | None:
        with self._lock:
            return self._idle.pop() if self._idle else None

    def _give_back(self, connection: http.client.HTTPConnection) -> None:
        with self._lock:
            if len(self._idle) < self._pool:
                self._idle.append(connection)
                return
        connection.close()
