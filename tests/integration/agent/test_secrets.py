"""SOPS in pull mode: the hub ships ciphertext only, each agent decrypts with the age key it made
on its own cluster; a cluster without the key rejects the revision, and it is applied nowhere;
the secret never appears on the hub or in the agents' logs, even with --debug."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import secrets
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from appflow.kube.client import KubeCluster
from appflow.kube.content import ContentStore
from appflow.model import content as fmt
from appflow.model.agent import release_decision
from appflow.model.hub import API_VERSION
from appflow.secrets import age, sops
from tests.helpers import built_tool
from tests.integration.agent.conftest import (
    Hub,
    free_port,
    register_fleet,
    spec_of,
    status_of,
    wait_for,
)
from tests.integration.agent.publish import deployment, write_deployment

pytestmark = pytest.mark.cluster

FILE = "secrets/mqtt.yaml"


def secret_manifest(namespace: str, password: str) -> bytes:
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "mqtt-auth", "namespace": namespace},
            "type": "Opaque",
            "stringData": {"username": "edge", "password": password},
        }
    ).encode()


def encrypt(plain: bytes, recipients: list[str]) -> bytes:
    return asyncio.run(
        sops.encrypt(
            plain,
            file=FILE,
            fmt="yaml",
            recipients=recipients,
            encrypted_regex="^(data|stringData)$",
        )
    )


def publish(
    kube: KubeCluster,
    hub: Hub,
    cluster: str,
    app: str,
    objects: list[dict[str, Any]],
    ciphertext: bytes,
    revision: int,
) -> dict[str, Any]:
    """What the hub controller writes for a plain-YAML app with an encrypted file: the render
    (from the ciphertext, as the engine renders it) and the file itself, as content."""

    async def put() -> dict[str, Any]:
        store = ContentStore(kube, hub.workspace)
        stored = await store.put_render(objects)
        bundle = await store.put(fmt.secrets_bundle([(FILE, ciphertext)]))
        return {
            "revision": revision,
            "renderDigest": stored.index.render_digest,
            "index": stored.digest,
            "secrets": bundle,
            "options": {"prune": True, "selfHeal": True},
        }

    state = asyncio.run(put())
    current = deployment(kube, workspace=hub.workspace, cluster=cluster, app=app).get("spec") or {}
    write_deployment(
        kube,
        workspace=hub.workspace,
        cluster=cluster,
        app=app,
        staged=state,
        released=current.get("released"),
    )
    return state


def recipients_of(hub: Hub, cluster: str) -> list[str]:
    return list(((hub.cluster(cluster) or {}).get("status") or {}).get("ageRecipients") or [])


def staged_result(hub: Hub, cluster: str, app: str, revision: int) -> dict[str, Any] | None:
    staged = status_of(hub, cluster, app).get("staged") or {}
    return staged if staged.get("revision") == revision else None


def live_password(hub: Hub, edge: int, namespace: str) -> str | None:
    kube = hub.fleet.edge_kube(edge)
    try:
        found = kube.get_sync("v1", "Secret", "mqtt-auth", namespace)
    finally:
        kube.close()
    if found is None:
        return None
    return base64.b64decode(found["data"]["password"]).decode()


def test_pull_clusters_decrypt_with_their_own_keys_and_a_missing_key_blocks_everyone(
    hub: Hub,
) -> None:
    built_tool("sops")
    names = register_fleet(hub, debug=True)
    recipients = {name: recipients_of(hub, name) for name in names}
    for name in names:
        assert len(recipients[name]) == 1
        assert recipients[name][0].startswith("age1")
    password = f"pw-{secrets.token_hex(8)}"
    namespace = f"mqtt-{secrets.token_hex(3)}"
    app = f"mqtt-{secrets.token_hex(3)}"
    plain = secret_manifest(namespace, password)
    namespace_object = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}

    # r1: encrypted for the first two clusters only.
    two = encrypt(plain, recipients[names[0]] + recipients[names[1]])
    kube = hub.fleet.hub_kube()
    try:
        for name in names:
            publish(kube, hub, name, app, [namespace_object, yaml.safe_load(two)], two, 1)
        results = {
            n: wait_for(lambda n=n: staged_result(hub, n, app, 1), timeout=90, what="r1 judged")
            for n in names
        }
        assert results[names[0]]["result"] == results[names[1]]["result"] == "Validated"
        refused = results[names[2]]
        assert refused["result"] == "Rejected"
        assert FILE in refused["message"]
        assert recipients[names[0]][0] in refused["message"]
        decision = release_decision(
            {n: (r["result"], r["message"]) for n, r in results.items()}, online=set(names)
        )
        assert decision.release == frozenset()
        for edge in range(3):
            assert live_password(hub, edge, namespace) is None

        # r2: encrypted for all three; released once validated everywhere.
        three = encrypt(plain, [r for n in names for r in recipients[n]])
        states = {
            n: publish(kube, hub, n, app, [namespace_object, yaml.safe_load(three)], three, 2)
            for n in names
        }
        results = {
            n: wait_for(lambda n=n: staged_result(hub, n, app, 2), timeout=90, what="r2 judged")
            for n in names
        }
        assert {r["result"] for r in results.values()} == {"Validated"}
        for name in names:
            write_deployment(
                kube,
                workspace=hub.workspace,
                cluster=name,
                app=app,
                staged=states[name],
                released=states[name],
            )
        for edge, name in enumerate(names):
            wait_for(
                lambda e=edge: live_password(hub, e, namespace) == password,
                timeout=90,
                what=f"the Secret on {name}",
            )
            wait_for(
                lambda n=name: status_of(hub, n, app).get("appliedRevision") == 2,
                timeout=60,
                what=f"r2 reported by {name}",
            )

        # The hub holds ciphertext only; nothing the agents said or logged holds the value.
        for content in kube.list_sync(API_VERSION, "AppFlowContent", namespace=hub.workspace):
            data = fmt.decompress(content["spec"]["data"], digest=content["metadata"]["name"])
            assert password.encode() not in data
            assert base64.b64encode(password.encode()) not in data
        for name in names:
            assert password not in json.dumps(status_of(hub, name, app))
            assert password not in json.dumps(hub.cluster(name))
    finally:
        kube.close()
    for process in hub.processes:
        assert password not in process.text(), process.log
        assert base64.b64encode(password.encode()).decode() not in process.text()
    assert any("DEBUG" in p.text() for p in hub.processes if p.log.name.startswith("agent-"))

    # Drift of the Secret is taken back without the value leaving the cluster.
    edge_kube = hub.fleet.edge_kube(0)
    try:
        edge_kube.patch_sync(
            "v1", "Secret", "mqtt-auth", namespace, {"stringData": {"password": "changed"}}
        )
    finally:
        edge_kube.close()
    wait_for(
        lambda: live_password(hub, 0, namespace) == password,
        timeout=60,
        what="the Secret's drift reverted",
    )


# -- repos-example/secure-mqtt through the hub controller: rendered on the agents ----------------

EXAMPLES = Path(__file__).resolve().parents[3] / "repos-example"
TEST_KEY = EXAMPLES / "secure-mqtt" / "TEST-ONLY-age-key.txt"
BRIDGE_PASSWORD = "bridge-pw-TESTONLY-5b1c9e"
"""In values-cloud.sops.yaml (encrypted Helm values); TESTONLY marks every secret of the app."""
ENCRYPTED = {
    "broker/passwords.sops.yaml": "^(data|stringData)$",
    "bridge/values-cloud.sops.yaml": None,
}
APPS = ("secure-broker", "secure-bridge")


def encrypt_for(folder: Path, recipients: list[str]) -> None:
    """The example's SOPS files encrypted again, for exactly RECIPIENTS (pull clusters' keys
    are made on the edge: the committed test key is none of theirs)."""
    test_key = age.parse_identities(TEST_KEY.read_text())

    async def again(name: str, regex: str | None) -> None:
        path = folder / name
        plain = await sops.decrypt(
            (EXAMPLES / "secure-mqtt" / name).read_bytes(),
            file=name,
            fmt="yaml",
            identities=test_key,
            recipients=[i.recipient for i in test_key],
            holder="the test",
        )
        path.write_bytes(
            await sops.encrypt(
                plain, file=name, fmt="yaml", recipients=recipients, encrypted_regex=regex
            )
        )

    async def every() -> None:
        await asyncio.gather(*(again(n, r) for n, r in ENCRYPTED.items()))

    asyncio.run(every())


def edge_secret(hub: Hub, edge: int, name: str, namespace: str, key: str) -> str | None:
    kube = hub.fleet.edge_kube(edge)
    try:
        found = kube.get_sync("v1", "Secret", name, namespace)
    finally:
        kube.close()
    if found is None:
        return None
    return base64.b64decode(found["data"][key]).decode()


def hub_objects_text(hub: Hub) -> str:
    """Every object of the test's workspace on the hub, content decompressed, and the hub's
    Events, as one text to search."""
    kube = hub.fleet.hub_kube()
    try:
        parts: list[str] = []
        for kind in ("AppFlow", "AppFlowDeployment", "Cluster", "AppFlowContent"):
            for obj in kube.list_sync(API_VERSION, kind):
                parts.append(json.dumps(obj))
                if kind == "AppFlowContent":
                    data = fmt.decompress(obj["spec"]["data"], digest=obj["metadata"]["name"])
                    parts.append(data.decode(errors="replace"))
        parts += [json.dumps(e) for e in kube.list_sync("v1", "Event")]
        return "\n".join(parts)
    finally:
        kube.close()


def without_the_example(hub: Hub) -> None:
    """The edges without secure-mqtt's namespaces (an earlier run on kept clusters left them),
    so that "applied nowhere" is seen, not remembered."""
    namespaces = ("secure-mqtt", "secure-mqtt-bridge")
    for edge in range(len(hub.fleet.edges)):
        kube = hub.fleet.edge_kube(edge)
        try:
            for namespace in namespaces:
                kube.delete_sync("v1", "Namespace", namespace)

            def gone(kube: Any = kube) -> bool:
                return all(kube.get_sync("v1", "Namespace", n) is None for n in namespaces)

            wait_for(gone, timeout=120, what=f"secure-mqtt's namespaces gone from edge {edge}")
        finally:
            kube.close()


def api_answers(hub: Hub, apps: tuple[str, ...]) -> list[str]:
    """What `appflow serve --hub` answers about APPS (and the fleet), as texts."""
    token = hub.hub_cli("token", "create", "secrets-test").stdout.split()[0]
    port = free_port()
    server = hub.process(
        "serve", "serve", "--hub", str(hub.kubeconfig), "--listen", f"127.0.0.1:{port}"
    )
    paths = [
        "/api/v1/status",
        "/api/v1/deployments",
        "/api/v1/clusters",
        *(f"/api/v1/apps/{a}" for a in apps),
        *(f"/api/v1/apps/{a}/history" for a in apps),
    ]
    with httpx.Client(
        base_url=f"http://127.0.0.1:{port}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    ) as client:

        def answers() -> bool:
            assert server.alive(), server.text()
            with contextlib.suppress(httpx.HTTPError):
                return client.get("/api/v1/status").status_code == 200
            return False

        wait_for(answers, timeout=90, what="serve --hub to answer")
        texts = []
        for path in paths:
            answer = client.get(path)
            assert answer.status_code == 200, (path, answer.text)
            texts.append(answer.text)
    assert any("secure-bridge" in t for t in texts)
    return texts


def test_secure_mqtt_is_rendered_by_the_agents_that_hold_the_keys(hub: Hub, tmp_path: Path) -> None:
    built_tool("sops")
    built_tool("helm")
    repo = tmp_path / "repo"
    shutil.copytree(EXAMPLES / "secure-mqtt", repo / "secure-mqtt")
    (repo / "secure-mqtt" / "TEST-ONLY-age-key.txt").unlink()  # the hub holds no key at all
    folder = repo / "secure-mqtt"
    without_the_example(hub)
    names = register_fleet(hub, debug=True)
    recipients = {n: recipients_of(hub, n)[0] for n in names}
    hub.start_controller(debug=True)

    # r1 is encrypted for two of the three clusters: the third rejects it, naming the file
    # and whom it was encrypted for, and it is applied nowhere.
    encrypt_for(folder, [recipients[names[0]], recipients[names[1]]])
    hub.hub_cli("repo", "add", "examples", str(repo), "--path", "secure-mqtt")
    for app in APPS:
        refusal = hub.hub_cli("sync", app, check=False)
        said = refusal.stdout + refusal.stderr
        if refusal.returncode != 0:
            # The agents judged before the controller answered: the sync says why.
            assert "refused before any change" in said
            assert names[2] in said
            assert ".sops.yaml" in said
        assert "TESTONLY" not in said
    for app in APPS:
        for name in names:
            wait_for(
                lambda a=app, n=name: staged_result(hub, n, a, 1),
                timeout=180,
                what=f"{app} r1 judged on {name}",
            )
            # The hub decided: an app with encrypted inputs is rendered by the pull cluster.
            assert spec_of(hub, name, app)["staged"]["renderOn"] == "agent"
        refused = staged_result(hub, names[2], app, 1) or {}
        assert refused["result"] == "Rejected", refused
        assert ".sops.yaml" in refused["message"]
        assert recipients[names[0]] in refused["message"]
        for name in names[:2]:
            assert (staged_result(hub, name, app, 1) or {})["result"] == "Validated"
            assert not spec_of(hub, name, app).get("released")
    for edge in range(3):
        assert edge_secret(hub, edge, "mosquitto-passwords", "secure-mqtt", "passwords") is None
        assert (
            edge_secret(hub, edge, "secure-bridge-config", "secure-mqtt-bridge", "mosquitto.conf")
            is None
        )

    # r2 is encrypted for the three: every agent renders it, it is released and applied.
    encrypt_for(folder, list(recipients.values()))
    for app in APPS:
        hub.hub_cli("sync", app)
    for edge, name in enumerate(names):
        wait_for(
            lambda e=edge: (
                (
                    edge_secret(
                        hub, e, "secure-bridge-config", "secure-mqtt-bridge", "mosquitto.conf"
                    )
                    or ""
                ).find(f"remote_password {BRIDGE_PASSWORD}")
                >= 0
            ),
            timeout=180,
            what=f"the bridge's Secret on {name}",
        )
        passwords = edge_secret(hub, edge, "mosquitto-passwords", "secure-mqtt", "passwords")
        assert (passwords or "").startswith("sensor-01:$7$101$TESTONLYsalt0001$")
        for app in APPS:
            wait_for(
                lambda a=app, n=name: status_of(hub, n, a).get("appliedRevision") == 2,
                timeout=120,
                what=f"{app} r2 reported by {name}",
            )

    # What the hub, its CLI, its HTTP API and every process's --debug log hold: ciphertext
    # and digests.
    shown = [
        hub_objects_text(hub),
        *api_answers(hub, APPS),
        *(hub.hub_cli("app", "show", app, "-o", "json").stdout for app in APPS),
        *(hub.hub_cli("app", "diff", app, check=False).stdout for app in APPS),
        *(hub.hub_cli("app", "history", app, "-o", "json").stdout for app in APPS),
        hub.hub_cli("status", "-o", "json").stdout,
        *(p.text() for p in hub.processes),
    ]
    for text in shown:
        assert "TESTONLY" not in text
        assert base64.b64encode(BRIDGE_PASSWORD.encode()).decode() not in text
    assert any("DEBUG" in p.text() for p in hub.processes if p.log.name.startswith("agent-"))
    assert "DEBUG" in next(p for p in hub.processes if p.log.name.startswith("controller")).text()

    # A tampered ciphertext (another value's in the password's place) is refused by every
    # agent, naming the file, and the clusters keep r2.
    values = folder / "bridge" / "values-cloud.sops.yaml"
    doc = yaml.safe_load(values.read_text())
    doc["cloud"]["password"] = doc["cloud"]["username"]
    values.write_text(yaml.safe_dump(doc, sort_keys=False))
    assert "TESTONLY" not in hub.hub_cli("sync", "secure-bridge", check=False).stdout
    for name in names:
        refused = wait_for(
            lambda n=name: staged_result(hub, n, "secure-bridge", 3),
            timeout=180,
            what=f"r3 judged on {name}",
        )
        assert refused["result"] == "Rejected"
        assert "values-cloud.sops.yaml" in refused["message"]
        assert "TESTONLY" not in refused["message"]
        assert status_of(hub, name, "secure-bridge").get("appliedRevision") == 2
