"""dependsOn across controller replicas: an app held on a push cluster until what it depends on
is Ready there is synced there again once it is, when another replica owns the dependency.

Each replica watches the Deployments of its own apps and of the apps they depend on; who waits
is read from the waiting app's own Deployment (`WaitApplied`), not from a replica's memory.
Before, only a replica that owned both apps woke the waiting one; another left it to the
10-minute resync, far beyond this test's wait.
"""

from __future__ import annotations

import itertools
import secrets
from pathlib import Path
from typing import Any

import pytest

from appflow.hub.controller import app_key
from appflow.model.membership import assign
from tests.helpers import Sandbox, eventually, label_nodes, write_held_app
from tests.integration.hub.controllers import HubFleet

pytestmark = pytest.mark.cluster

LEASE = 15
"""The default lease: on a loaded machine a shorter one can fence a replica for a moment, and
its apps change hands (what this test needs is two owners that stay put)."""


def _on(fleet: HubFleet, app: str, cluster: str) -> dict[str, Any]:
    """APP's AppFlowDeployment status on CLUSTER ({} when there is none)."""
    for d in fleet.deployments(app):
        if d["spec"]["cluster"] == cluster:
            return dict(d.get("status") or {})
    return {}


def test_a_dependency_another_replica_owns_wakes_the_app_held_for_it(
    fleet: HubFleet, sandbox: Sandbox, tmp_path: Path
) -> None:
    members = [fleet.start(lease_duration=LEASE).identity for _ in range(2)]

    def owners(suffix: str) -> list[str]:
        keys = [app_key(fleet.workspace, f"{n}-{suffix}") for n in ("base", "top")]
        assigned = assign(keys, members)
        return [assigned[k] for k in keys]

    # Names the membership gives to different replicas: base to the first, top to the second.
    suffix = next(
        s for s in (secrets.token_hex(3) for _ in itertools.count()) if owners(s) == members
    )
    base, top = f"base-{suffix}", f"top-{suffix}"
    fleet.wait_owned([])  # both are members before there is anything to share
    label = f"deps-{suffix}.test/ready"
    source = tmp_path / "apps"
    write_held_app(source / base, app=base, ns=base, node_label=label)
    write_held_app(source / top, app=top, ns=top, node_label=None, dependsOn=[{"name": base}])
    try:
        assert fleet.cli("cluster", "add", "--from-sandbox").exit_code == 0
        added = fleet.cli("repo", "add", "deps", str(source))
        assert added.exit_code == 0, added.output
        fleet.wait_owned([base, top])
        held = {members[0]: {base}, members[1]: {top}}
        eventually(
            lambda: {r.identity: r.held() & {base, top} for r in fleet.replicas} == held,
            timeout=60,
            what=f"{base} held by {members[0]} and {top} by {members[1]}",
        )

        eventually(
            lambda: len(fleet.deployments(base)) == 3, timeout=180, what=f"{base} on the 3 clusters"
        )
        clusters = sorted(d["spec"]["cluster"] for d in fleet.deployments(base))
        for cluster in clusters:
            eventually(
                lambda c=cluster: (
                    _on(fleet, base, c).get("state") == "NotReady"
                    and _on(fleet, top, c).get("state") == "WaitApplied"
                ),
                timeout=180,
                what=f"{base} NotReady (its pod has no node) and {top} waiting for it on {cluster}",
            )
        assert base in str(_on(fleet, top, clusters[0]).get("message"))

        # base's nodes on the first cluster get the label: base becomes Ready there, and top's
        # owner, which does not own base, syncs top there.
        kube = sandbox.kube(0)
        try:
            label_nodes(kube, label)
        finally:
            kube.close()
        eventually(
            lambda: any(_on(fleet, base, c).get("state") == "Ready" for c in clusters),
            timeout=180,
            what=f"{base} Ready on the cluster whose nodes carry {label}",
        )
        first = next(c for c in clusters if _on(fleet, base, c).get("state") == "Ready")
        eventually(
            lambda: _on(fleet, top, first).get("state") == "Ready",
            timeout=180,
            what=f"{top} synced and Ready on {first} once {base} is Ready there",
        )
        # The wake-up came from base's state, seen by a replica that does not own base.
        assert {r.identity: r.held() & {base, top} for r in fleet.replicas} == held
        entries = _on(fleet, top, first).get("history") or []
        assert (entries[-1]["outcome"], entries[-1]["writer"]) == ("succeeded", members[1]), entries
        for cluster in clusters:
            if cluster != first:
                assert _on(fleet, top, cluster).get("state") == "WaitApplied", cluster
    finally:
        # The sandbox is shared: the next tests find its clusters as they were.
        for name in (top, base):
            fleet.cli("app", "delete", name)
        kube = sandbox.kube(0)
        try:
            label_nodes(kube, label, None)
        finally:
            kube.close()
