"""A sync request resolves its pull targets from the API server, not from the replica's
watches (issue 12): the requester wrote a ClusterGroup or a Cluster a moment before asking,
and the watch that brought the request is not the one that shows those."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

from appflow.hub.reconcile import Reconciler
from appflow.kube.client import KubeCluster
from appflow.model import resources as res
from appflow.model.records import ClusterGroupRecord, ClusterRecord

WORKSPACE = "fleet"


class Listed:
    """What the API server holds: the group and the cluster the requester just wrote."""

    def __init__(self) -> None:
        self.lists = 0

    def cluster_objects(self) -> list[dict[str, Any]]:
        self.lists += 1
        record = ClusterRecord(name="edge-7", kind="eve-k", labels={"site": "north"})
        return [res.cluster_resource(record, workspace=WORKSPACE, secret=None, pull=True)]

    def list_groups(self) -> list[ClusterGroupRecord]:
        self.lists += 1
        return [ClusterGroupRecord(name="north", selector="site=north")]


def reconciler(listed: Listed) -> Reconciler:
    return Reconciler(
        engine=cast(Any, SimpleNamespace(parts=SimpleNamespace(connections=None))),
        store=cast(Any, listed),
        kube=cast(KubeCluster, None),
        identity="replica-1",
        # The watches have not shown the new objects yet.
        seen_clusters=list,
        seen_groups=list,
    )


async def test_a_request_reads_the_clusters_and_groups_its_requester_just_wrote() -> None:
    listed = Listed()
    fleet = await reconciler(listed)._pull_fleet(listed=True)
    assert fleet is not None
    assert list(fleet.clusters) == ["edge-7"]
    assert list(fleet.groups) == ["north"]
    assert listed.lists == 2


async def test_other_syncs_follow_the_watches_whose_events_queue_them_again() -> None:
    listed = Listed()
    assert await reconciler(listed)._pull_fleet() is None
    assert listed.lists == 0
