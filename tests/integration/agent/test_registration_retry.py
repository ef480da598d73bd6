"""A registration whose answer is lost (issue 13, item 2): the hub created the Cluster and minted
the credential, the connection dropped before the agent read the answer, and the agent retries
with the same batch token. It gets its credential again without using up another use of the
token; a different cluster with the used-up token still gets the clear error and nothing is
created.

The answer is cut over real HTTP: a TLS proxy serving the agent API's own certificate (so the
agent's CA pin holds) forwards every request to the real agent API, and for the first
registration reads the hub's whole answer and closes the connection without sending it.
"""

from __future__ import annotations

import base64
import http.client
import http.server
import json
import ssl
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest

from appflow.hub.agent_tls import TLS_SECRET
from appflow.model.hub import SYSTEM_NAMESPACE, cluster_namespace
from appflow.model.registration import AGENT_NAME
from tests.integration.agent.conftest import Hub, free_port, registered_name, token_in, wait_for
from tests.integration.agent.test_registration import hub_snapshot

pytestmark = pytest.mark.cluster


class CuttingProxy(http.server.ThreadingHTTPServer):
    """HTTPS in front of the agent API; the first CUT registrations lose their answer."""

    daemon_threads = True

    def __init__(self, port: int, *, upstream: str, ca: bytes, cut: int) -> None:
        super().__init__(("127.0.0.1", port), _Forward)
        self.upstream = urlparse(upstream)
        self.upstream_tls = ssl.create_default_context(cadata=ca.decode())
        self.cut = cut
        self.registrations = 0
        self.lost: list[int] = []
        """HTTP statuses of the answers the agent never got."""
        self.lock = threading.Lock()


class _Forward(http.server.BaseHTTPRequestHandler):
    server: CuttingProxy
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _forward(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        target = self.server.upstream
        conn = http.client.HTTPSConnection(
            target.hostname or "127.0.0.1", target.port, context=self.server.upstream_tls
        )
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
            conn.request(self.command, self.path, body=body or None, headers=headers)
            answer = conn.getresponse()
            data = answer.read()
        finally:
            conn.close()
        if self.command == "POST" and self.path == "/agent/v1/register":
            real = not json.loads(body or b"{}").get("dryRun")
            with self.server.lock:
                self.server.registrations += int(real)
                cut = real and len(self.server.lost) < self.server.cut
                if cut:
                    self.server.lost.append(answer.status)
            if cut:
                # The hub did everything; the agent hears only a dropped connection.
                self.close_connection = True
                self.connection.close()
                return
        self.send_response(answer.status)
        for key, value in answer.getheaders():
            if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = _forward
    do_POST = _forward


@pytest.fixture
def proxy(hub: Hub) -> Iterator[CuttingProxy]:
    hub.start_agent_api()
    kube = hub.fleet.hub_kube()
    try:
        data = (kube.get_sync("v1", "Secret", TLS_SECRET, SYSTEM_NAMESPACE) or {}).get("data") or {}
    finally:
        kube.close()
    tls = {k: base64.b64decode(v) for k, v in data.items()}
    with tempfile.TemporaryDirectory() as folder:
        cert, key = Path(folder) / "tls.crt", Path(folder) / "tls.key"
        cert.write_bytes(tls["tls.crt"])
        key.write_bytes(tls["tls.key"])
        serving = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        serving.load_cert_chain(cert, key)
    server = CuttingProxy(free_port(), upstream=hub.url, ca=tls["ca.crt"], cut=1)
    server.socket = serving.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def renewed(hub: Hub, cluster: str) -> bool:
    kube = hub.fleet.hub_kube()
    try:
        lease = kube.get_sync(
            "coordination.k8s.io/v1",
            "Lease",
            AGENT_NAME,
            cluster_namespace(hub.workspace, cluster),
        )
    finally:
        kube.close()
    return bool(((lease or {}).get("spec") or {}).get("renewTime"))


def install(hub: Hub, edge: int, token: str, url: str, *, check: bool = True) -> str:
    done = hub.cli(
        "agent",
        "install",
        "--token",
        token,
        "--hub-url",
        url,
        "--hub-ca-pin",
        hub.pin,
        "--kubeconfig",
        str(hub.fleet.edges[edge].kubeconfig),
        "--no-deploy",
        check=check,
    )
    return done.stdout + done.stderr


def test_a_lost_registration_answer_is_retried_without_using_the_token_again(
    hub: Hub, proxy: CuttingProxy
) -> None:
    batch = token_in(
        hub.hub_cli("cluster", "token", "create", "--max-uses", "1", "-l", "env=prod").stdout
    )
    url = f"https://127.0.0.1:{proxy.server_address[1]}"
    install(hub, 0, batch, url)
    agent = hub.start_agent(0)
    name = wait_for(lambda: registered_name(hub, 0), timeout=240, what="edge 0 to register")
    # The first answer was lost after the hub created everything; the retry got the credential.
    assert proxy.lost == [200]
    assert proxy.registrations == 2
    snapshot = hub_snapshot(hub)
    assert list(snapshot["tokens"].values()) == ["1"], "the retry used the token again"
    assert [c for c, _ in snapshot["clusters"]] == [name]
    # The credential it got works: its heartbeat renews its Lease on the hub.
    wait_for(lambda: renewed(hub, name), timeout=180, what=f"{name}'s first heartbeat")
    assert agent.alive(), agent.text()

    # Another cluster with the used-up token: the clear error, nothing created.
    before = hub_snapshot(hub)
    refused = install(hub, 1, batch, url, check=False)
    assert "was already used" in refused, refused
    after = hub_snapshot(hub)
    assert (after["namespaces"], after["tokens"], [c for c, _ in after["clusters"]]) == (
        before["namespaces"],
        before["tokens"],
        [c for c, _ in before["clusters"]],
    )


def test_concurrent_registrations_with_one_batch_token_never_exceed_its_uses(hub: Hub) -> None:
    # Twelve devices at once on a token for eight, in one agent API process: the uses they
    # claim together are granted in a few writes (registration._Claims), and never more than
    # eight, the others told why; every granted one has its Cluster, the others none.
    import asyncio
    import uuid
    from datetime import timedelta

    from appflow.errors import AuthError
    from appflow.hub.registration import RegistrationOptions, create_token, register
    from appflow.model.registration import ClusterFacts

    async def scenario() -> tuple[list[str], list[str], str]:
        kube = hub.fleet.hub_kube(timeout=60)
        try:
            text, made = await create_token(
                kube, workspace=hub.workspace, ttl=timedelta(hours=1), max_uses=8, labels={}
            )
            options = RegistrationOptions(
                workspace=hub.workspace, server="https://hub.invalid", server_ca=b"ca"
            )

            async def one() -> str:
                facts = ClusterFacts(
                    identity=str(uuid.uuid4()),
                    kubernetes_version="v1.31.2+k3s1",
                    distribution="k3s",
                    topology="single-node",
                    node_count=1,
                    architecture="arm64",
                    gpus=0,
                )
                try:
                    return (await register(kube, options, token=text, facts=facts)).cluster
                except AuthError as err:
                    return f"refused: {err.message}"

            outcomes = await asyncio.gather(*(one() for _ in range(12)))
            secret = await kube.get(
                "v1", "Secret", f"appflow-registration-{made.id}", hub.workspace
            )
            uses = base64.b64decode((secret or {})["data"]["uses"]).decode()
            return (
                [o for o in outcomes if not o.startswith("refused")],
                [o for o in outcomes if o.startswith("refused")],
                uses,
            )
        finally:
            kube.close()

    granted, refused, uses = asyncio.run(scenario())
    assert len(granted) == 8, refused
    assert uses == "8"
    assert len(refused) == 4
    assert all("was used 8 times, its limit" in r for r in refused), refused
    assert sorted(c for c, _ in hub_snapshot(hub)["clusters"]) == sorted(granted)
