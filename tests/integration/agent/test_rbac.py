"""Zero trust: an agent's credential reads its own namespace's desired state and writes its
status and heartbeat, nothing else (SubjectAccessReview, then real requests with its token);
rotation switches it to a new credential without downtime and revokes the old one."""

from __future__ import annotations

import json

import httpx
import pytest

from appflow.kube.auth import access_allowed, service_account_user
from appflow.model.hub import cluster_namespace
from appflow.model.registration import AGENT_NAME
from tests.integration.agent.conftest import Hub, registration, token_in, wait_for

pytestmark = pytest.mark.cluster


def register_two(hub: Hub) -> tuple[str, str]:
    hub.start_agent_api()
    for name, edge in (("rbac-a", 0), ("rbac-b", 1)):
        token = token_in(hub.hub_cli("cluster", "add", name, "--mode", "pull").stdout)
        hub.install(edge, token)
        hub.start_agent(edge)
    for edge in (0, 1):
        wait_for(lambda e=edge: registration(hub, e), timeout=240, what=f"edge {edge} to register")
    return cluster_namespace(hub.workspace, "rbac-a"), cluster_namespace(hub.workspace, "rbac-b")


def test_agent_credential_reaches_only_its_own_namespace(hub: Hub) -> None:
    own, other = register_two(hub)
    user, groups = service_account_user(own, AGENT_NAME)
    ws = hub.workspace
    allowed = [
        {
            "verb": "list",
            "group": "appflow.dev",
            "resource": "appflowdeployments",
            "namespace": own,
        },
        {
            "verb": "watch",
            "group": "appflow.dev",
            "resource": "appflowdeployments",
            "namespace": own,
        },
        {
            "verb": "get",
            "group": "appflow.dev",
            "resource": "appflowdeployments",
            "namespace": own,
            "name": "x",
        },
        {
            "verb": "patch",
            "group": "appflow.dev",
            "resource": "appflowdeployments",
            "subresource": "status",
            "namespace": own,
            "name": "x",
        },
        {
            "verb": "patch",
            "group": "coordination.k8s.io",
            "resource": "leases",
            "namespace": own,
            "name": AGENT_NAME,
        },
        {
            "verb": "create",
            "group": "",
            "resource": "serviceaccounts",
            "subresource": "token",
            "namespace": own,
            "name": AGENT_NAME,
        },
    ]
    refused = [
        # another cluster's namespace: nothing at all
        *(
            {
                "verb": verb,
                "group": "appflow.dev",
                "resource": "appflowdeployments",
                "namespace": other,
            }
            for verb in ("get", "list", "watch")
        ),
        {
            "verb": "patch",
            "group": "appflow.dev",
            "resource": "appflowdeployments",
            "subresource": "status",
            "namespace": other,
            "name": "x",
        },
        {
            "verb": "patch",
            "group": "coordination.k8s.io",
            "resource": "leases",
            "namespace": other,
            "name": AGENT_NAME,
        },
        {
            "verb": "create",
            "group": "",
            "resource": "serviceaccounts",
            "subresource": "token",
            "namespace": other,
            "name": AGENT_NAME,
        },
        # Secrets, even its own namespace's (the credential anchors)
        *(
            {"verb": verb, "group": "", "resource": "secrets", "namespace": ns}
            for verb in ("get", "list")
            for ns in (own, other, ws)
        ),
        # content: only through the agent API
        *(
            {"verb": verb, "group": "appflow.dev", "resource": "appflowcontents", "namespace": ws}
            for verb in ("get", "list")
        ),
        # desired state it may not write
        *(
            {
                "verb": verb,
                "group": "appflow.dev",
                "resource": "appflowdeployments",
                "namespace": own,
                "name": "x",
            }
            for verb in ("update", "patch", "delete", "create")
        ),
        # no AppFlow, no Cluster, no labels of its own
        *(
            {"verb": verb, "group": "appflow.dev", "resource": "appflows", "namespace": ws}
            for verb in ("create", "update", "patch", "delete", "get", "list")
        ),
        *(
            {
                "verb": verb,
                "group": "appflow.dev",
                "resource": "clusters",
                "namespace": ws,
                "name": "rbac-a",
            }
            for verb in ("update", "patch", "get")
        ),
        {
            "verb": "patch",
            "group": "appflow.dev",
            "resource": "clusters",
            "subresource": "status",
            "namespace": ws,
            "name": "rbac-a",
        },
        # other Leases, other tokens, namespaces, RBAC
        {"verb": "create", "group": "coordination.k8s.io", "resource": "leases", "namespace": own},
        {
            "verb": "patch",
            "group": "coordination.k8s.io",
            "resource": "leases",
            "namespace": own,
            "name": "other",
        },
        {
            "verb": "create",
            "group": "",
            "resource": "serviceaccounts",
            "subresource": "token",
            "namespace": own,
            "name": "default",
        },
        {"verb": "list", "group": "", "resource": "namespaces"},
        {
            "verb": "update",
            "group": "rbac.authorization.k8s.io",
            "resource": "roles",
            "namespace": own,
            "name": AGENT_NAME,
        },
    ]
    kube = hub.fleet.hub_kube()
    try:
        for attributes in allowed:
            assert access_allowed(kube, user=user, groups=groups, attributes=attributes), attributes
        for attributes in refused:
            assert not access_allowed(kube, user=user, groups=groups, attributes=attributes), (
                attributes
            )
    finally:
        kube.close()

    # And for real, with the agent's own token.
    reg = registration(hub, 0)
    ca = str(reg["serverCA"]).encode()
    import ssl

    context = ssl.create_default_context(cadata=ca.decode())
    with httpx.Client(
        base_url=str(reg["server"]),
        verify=context,
        headers={"Authorization": f"Bearer {reg['token']}"},
    ) as client:
        assert (
            client.get(
                f"/apis/appflow.dev/v1alpha1/namespaces/{own}/appflowdeployments"
            ).status_code
            == 200
        )
        for path in (
            f"/apis/appflow.dev/v1alpha1/namespaces/{other}/appflowdeployments",
            f"/api/v1/namespaces/{own}/secrets",
            f"/apis/appflow.dev/v1alpha1/namespaces/{ws}/appflowcontents",
            f"/apis/appflow.dev/v1alpha1/namespaces/{ws}/appflows",
            "/api/v1/namespaces",
        ):
            assert client.get(path).status_code == 403, path
        relabel = client.patch(
            f"/apis/appflow.dev/v1alpha1/namespaces/{ws}/clusters/rbac-a",
            content=json.dumps({"metadata": {"labels": {"env": "prod"}}}),
            headers={"Content-Type": "application/merge-patch+json"},
        )
        assert relabel.status_code == 403
    assert hub.cluster("rbac-a")["metadata"].get("labels", {}) == {}  # type: ignore[index]


def test_rotation_switches_without_downtime_and_revokes_the_old_credential(hub: Hub) -> None:
    register_two(hub)
    old = registration(hub, 0)
    rotated = hub.hub_cli("cluster", "rotate-credentials", "rbac-a", "--timeout", "60")
    assert "generation 2 in use; older ones revoked" in rotated.stdout, rotated.stdout
    new = registration(hub, 0)
    assert new["generation"] == 2
    assert new["token"] != old["token"]
    kube = hub.fleet.hub_kube()
    try:
        from appflow.kube.auth import _review_token_sync

        wait_for(
            lambda: not _review_token_sync(kube, str(old["token"])).authenticated,
            timeout=30,
            what="the old token to be refused",
        )
        assert _review_token_sync(kube, str(new["token"])).authenticated
    finally:
        kube.close()
    # The agent kept its heartbeat going with the new credential.
    lease_before = lease_renewed(hub, "rbac-a")
    wait_for(
        lambda: lease_renewed(hub, "rbac-a") != lease_before,
        timeout=30,
        what="a heartbeat after the rotation",
    )


def lease_renewed(hub: Hub, cluster: str) -> str:
    kube = hub.fleet.hub_kube()
    try:
        lease = (
            kube.get_sync(
                "coordination.k8s.io/v1",
                "Lease",
                AGENT_NAME,
                cluster_namespace(hub.workspace, cluster),
            )
            or {}
        )
    finally:
        kube.close()
    return str((lease.get("spec") or {}).get("renewTime", ""))
