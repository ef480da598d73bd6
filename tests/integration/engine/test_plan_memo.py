"""A warm engine (the daemon's) plans a steady state once and reuses the plan only while the
LISTs prove that every object it read still has the same resourceVersion: a hand edit, a
label added by hand, a deletion, or the same content written again by hand all bring the
full plan back, and the edit is undone, never answered "unchanged"."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from appflow.engine.report import AppSyncReport
from tests.integration.engine.conftest import Fleet
from tests.integration.engine.support import (
    Space,
    configmap,
    kubectl,
    live,
    register_local,
    write_files,
)

pytestmark = pytest.mark.cluster


def counts(report: AppSyncReport) -> dict[str, tuple[int, int, int]]:
    """Per cluster: how many objects the sync created, configured, left unchanged."""
    assert report.ok, report.summary()
    return {
        c.cluster: (
            c.counts.get("created", 0),
            c.counts.get("configured", 0),
            c.counts.get("unchanged", 0),
        )
        for c in report.summary().clusters
    }


async def test_a_steady_plan_is_reused_only_while_every_object_keeps_its_version(
    fleet: Fleet, space: Space, tmp_path: Path
) -> None:
    ns, app = space.namespace, space.app("memo")

    def objects(value: str) -> dict[str, str | list[dict[str, Any]] | None]:
        # ConfigMaps only: no controller writes their status, so versions move only by hand.
        return {
            "objects.yaml": [configmap("settings", ns, {"a": value}), configmap("other", ns, {})]
        }

    folder = write_files(tmp_path / "memo", objects("b"))
    register_local(fleet, app, folder)
    engine = fleet.engine
    memo = engine.parts.connections.plans
    clusters = fleet.cluster_names
    first = clusters[0]
    steady = dict.fromkeys(clusters, (0, 0, 2))

    async def sync(expected: dict[str, tuple[int, int, int]], *, answered: int) -> None:
        """A sync whose counts are EXPECTED, of which ANSWERED clusters by the memo."""
        before = memo.answered
        assert counts(await engine.sync(app)) == expected
        assert memo.answered - before == answered

    async def settle() -> None:
        """Syncs until the memo answers on every cluster (the sync after one that wrote
        plans in full and remembers; the next is answered)."""
        for _ in range(3):
            before = memo.answered
            assert counts(await engine.sync(app)) == steady
            if memo.answered - before == len(clusters):
                return
        pytest.fail("three syncs of an unchanged app and the memo never answered on every cluster")

    await engine.sync(app)  # creates
    await settle()

    # A hand edit of a field appflow applied: planned in full, configured, undone.
    kubectl(
        fleet.sandbox, 0, "-n", ns, "patch", "configmap", "settings", "-p", '{"data": {"a": "x"}}'
    )
    await sync({**steady, first: (0, 1, 1)}, answered=len(clusters) - 1)
    assert live(fleet.sandbox, 0, "v1", "ConfigMap", "settings", ns)["data"] == {"a": "b"}
    await settle()

    # Fields appflow does not own move the version too: planned in full (unchanged).
    kubectl(fleet.sandbox, 0, "-n", ns, "label", "configmap", "settings", "team=edge")
    await sync(steady, answered=len(clusters) - 1)
    await settle()

    # The same content written again by hand is a new version: no proof, planned in full.
    kubectl(fleet.sandbox, 0, "-n", ns, "annotate", "configmap", "settings", "note=x")
    kubectl(fleet.sandbox, 0, "-n", ns, "annotate", "configmap", "settings", "note-")
    await sync(steady, answered=len(clusters) - 1)
    await settle()

    # Deleted by hand: created again.
    kubectl(fleet.sandbox, 0, "-n", ns, "delete", "configmap", "settings")
    await sync({**steady, first: (1, 0, 1)}, answered=len(clusters) - 1)
    assert live(fleet.sandbox, 0, "v1", "ConfigMap", "settings", ns)["data"] == {"a": "b"}
    await settle()

    # A new desired state is planned in full everywhere.
    write_files(folder, objects("c"))
    await sync(dict.fromkeys(clusters, (0, 1, 1)), answered=0)
