"""SOPS in pull mode: the hub ships ciphertext only, each agent decrypts with the age key it made
on its own cluster; a cluster without the key rejects the revision, and it is applied nowhere;
the secret never appears on the hub or in the agents' logs, even with --debug."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
from typing import Any

import pytest
import yaml

from appflow.kube.client import KubeCluster
from appflow.kube.content import ContentStore
from appflow.model import content as fmt
from appflow.model.agent import release_decision
from appflow.model.hub import API_VERSION
from appflow.secrets import sops
from tests.helpers import built_tool
from tests.integration.agent.conftest import Hub, register_fleet, wait_for
from tests.integration.agent.publish import deployment, write_deployment
from tests.integration.agent.test_sync import status_of

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
