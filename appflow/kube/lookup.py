"""A read-only view of a cluster's API, confined to some namespaces, for helm's ``lookup``.

``helm template --dry-run=server`` needs a kubeconfig. Given appflow's own, a
chart could read any object of the cluster with appflow's credentials (a Secret
of another namespace copied into a ConfigMap). Helm gets a kubeconfig for this
view instead: an HTTP server on 127.0.0.1, alive for one render, reachable only
under a random path (the server URL in helm's kubeconfig ends with it, as
Rancher's cluster proxy URLs do; client-go sends no bearer token over plain
HTTP), that forwards GETs of discovery and of the allowed namespaces' objects
to the API server with the cluster's real credentials, and refuses the rest:

- writes and watches: 405 / 403;
- a list outside the namespaces: 403, with a message that names the rule (helm
  reports it as the template's error);
- one object outside the namespaces: 404, as if it did not exist. Helm itself
  GETs every object of the render before a server-side dry run, and a chart's
  cluster-scoped objects must not fail the render; a lookup of them sees
  nothing, which is what confinement means.

The namespaces are names or shell-style patterns; ``*`` lets everything through.
"""

from __future__ import annotations

import hmac
import json
import logging
import secrets
import shutil
import tempfile
import threading
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

from kubernetes import client as k8s

from appflow.model.policy import ANY_NAMESPACE, namespace_allowed

log = logging.getLogger("appflow.kube.lookup")

Decision = Literal["allow", "not-found", "forbidden"]
_DISCOVERY = ("/version", "/api", "/apis")


def classify_read(path: str, query: str, namespaces: frozenset[str]) -> Decision:
    """What the view does with a GET of PATH?QUERY when NAMESPACES may be read. Pure."""
    if any(v.lower() in ("true", "1") for v in parse_qs(query).get("watch", [])):
        return "forbidden"
    if path in _DISCOVERY or path.startswith("/openapi/"):
        return "allow"
    parts = path.split("/")[1:]
    if not parts or any(p in ("", ".", "..") or "%" in p for p in parts):
        return "forbidden"
    if parts[0] == "api" and len(parts) >= 2:
        rest = parts[2:]
    elif parts[0] == "apis" and len(parts) >= 3:
        rest = parts[3:]
    elif parts[0] == "apis" and len(parts) == 2:
        return "allow"  # /apis/GROUP: discovery
    else:
        return "forbidden"
    if not rest:
        return "allow"  # /api/v1, /apis/GROUP/VERSION: discovery
    everything = ANY_NAMESPACE in namespaces
    if rest[0] == "namespaces" and len(rest) >= 2:
        allowed = everything or namespace_allowed(rest[1], namespaces)
        if len(rest) == 2:  # the Namespace object itself
            return "allow" if allowed else "not-found"
        if len(rest) == 3:  # a list in that namespace
            return "allow" if allowed else "forbidden"
        if len(rest) == 4:  # one object in that namespace
            return "allow" if allowed else "not-found"
        return "forbidden"  # subresources: lookup never reads them
    if len(rest) == 1:  # a cluster-scoped list, or a list across namespaces
        return "allow" if everything else "forbidden"
    if len(rest) == 2:  # one cluster-scoped object
        return "allow" if everything else "not-found"
    return "forbidden"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    view: LookupView


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.server.view.answer(self)

    def _refuse_write(self) -> None:
        self.server.view.reply(self, 405, _status(405, "MethodNotAllowed", "lookup only reads"))

    do_POST = do_PUT = do_PATCH = do_DELETE = _refuse_write

    def log_message(self, format: str, *args: Any) -> None:
        return None  # refusals are logged by the view, once each


def _status(code: int, reason: str, message: str) -> bytes:
    return json.dumps(
        {
            "kind": "Status",
            "apiVersion": "v1",
            "status": "Failure",
            "reason": reason,
            "message": message,
            "code": code,
        }
    ).encode()


class LookupView:
    """The view of one cluster for one render: start it, hand ``kubeconfig`` to helm, close it."""

    def __init__(
        self,
        api: k8s.ApiClient,
        *,
        cluster: str,
        namespaces: Iterable[str],
        timeout: float,
    ) -> None:
        self._api = api
        self.cluster = cluster
        self.namespaces = frozenset(namespaces)
        self.timeout = timeout
        self.refused: list[str] = []
        """What was refused, as 'GET path (why)' lines."""
        self._prefix = "/view-" + secrets.token_urlsafe(32)
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.view = self
        self._folder = Path(tempfile.mkdtemp(prefix="appflow-lookup-"))  # 0700
        self.kubeconfig = self._folder / "kubeconfig"
        self.kubeconfig.write_text(self._kubeconfig_text(), encoding="utf-8")
        self.kubeconfig.chmod(0o600)
        # A short poll: close() waits for the serving loop to notice.
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"lookup-{cluster}",
            daemon=True,
        )
        self._thread.start()

    def _kubeconfig_text(self) -> str:
        port = self._server.server_address[1]
        namespace = sorted(self.namespaces - {ANY_NAMESPACE})[:1] or ["default"]
        server = f"http://127.0.0.1:{port}{self._prefix}"
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "view", "cluster": {"server": server}}],
            "users": [{"name": "view", "user": {}}],
            "contexts": [
                {
                    "name": "view",
                    "context": {"cluster": "view", "user": "view", "namespace": namespace[0]},
                }
            ],
            "current-context": "view",
        }
        return json.dumps(config)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        shutil.rmtree(self._folder, ignore_errors=True)

    # -- serving (in the server's threads) ---------------------------------------------------

    def reply(
        self,
        handler: BaseHTTPRequestHandler,
        code: int,
        body: bytes,
        content_type: str = "application/json",
    ) -> None:
        handler.send_response(code)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def answer(self, handler: BaseHTTPRequestHandler) -> None:
        given = handler.path[: len(self._prefix)]
        rest = handler.path[len(self._prefix) :]
        if not hmac.compare_digest(given.encode(), self._prefix.encode()) or not (
            rest.startswith("/")
        ):
            self.reply(handler, 404, _status(404, "NotFound", "not found"))
            return
        handler.path = rest
        url = urlsplit(rest)
        decision = classify_read(url.path, url.query, self.namespaces)
        if decision != "allow":
            allowed = ", ".join(sorted(self.namespaces))
            with self._lock:
                self.refused.append(f"GET {handler.path} ({decision})")
            log.info(
                "helm lookup on cluster %s: refused GET %s (%s; readable namespaces: %s)",
                self.cluster,
                handler.path,
                decision,
                allowed,
            )
            if decision == "not-found":
                self.reply(handler, 404, _status(404, "NotFound", "not found"))
            else:
                message = (
                    f"appflow: helm lookup may read only namespaces {allowed} on cluster "
                    f"{self.cluster}, not {url.path} (an operator widens this with "
                    "`appflow policy set ... --read-namespace NS`)"
                )
                self.reply(handler, 403, _status(403, "Forbidden", message))
            return
        self._forward(handler, url.path + (f"?{url.query}" if url.query else ""))

    def _forward(self, handler: BaseHTTPRequestHandler, target: str) -> None:
        headers = {"Accept": handler.headers.get("Accept", "application/json")}
        try:
            self._api.update_params_for_auth(headers, [], ["BearerToken"], target, "GET", None)
            response = self._api.call_api(
                "GET",
                self._api.configuration.host + target,
                header_params=headers,
                _request_timeout=self.timeout,
            )
            body = response.read() or b""
            content_type = response.headers.get("Content-Type", "application/json")
        except Exception as err:  # the API server did not answer: helm reports it
            log.info("helm lookup on cluster %s: GET %s failed: %s", self.cluster, target, err)
            self.reply(handler, 502, _status(502, "BadGateway", f"the API server: {err}"))
            return
        self.reply(handler, int(response.status), body, content_type)
