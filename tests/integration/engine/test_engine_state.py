"""What a long-running engine remembers between syncs, and when it forgets it:
capabilities are read again after a CRD was applied; other apps are known by their records."""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path

import pytest
import yaml

from tests.helpers import widget_crd
from tests.integration.engine.conftest import Fleet
from tests.integration.engine.support import (
    Space,
    configmap,
    exists,
    register_local,
    write_files,
)

pytestmark = pytest.mark.cluster


def test_a_chart_sees_an_api_that_a_crd_applied_since_its_last_render(
    fleet: Fleet, space: Space, tmp_path: Path
) -> None:
    ns, group = space.namespace, f"w{space.suffix}.example.com"
    crds, chart = space.app("crds"), space.app("uses")
    write_files(tmp_path / "crds", {"crd.yaml": [widget_crd(group)]})
    # Helm's documented way to render a resource only where its API is served.
    write_files(
        tmp_path / "uses",
        {
            "Chart.yaml": yaml.safe_dump({"apiVersion": "v2", "name": "uses", "version": "0.1.0"}),
            "templates/cm.yaml": yaml.safe_dump(configmap("plain", ns, {"a": "b"})),
            "templates/widget.yaml": f'{{{{- if .Capabilities.APIVersions.Has "{group}/v1" }}}}\n'
            f"apiVersion: {group}/v1\nkind: Widget\nmetadata:\n  name: w1\n  namespace: {ns}\n"
            "{{- end }}\n",
            "appflow.yaml": yaml.safe_dump({"name": chart, "namespace": ns}),
        },
    )
    register_local(fleet, crds, tmp_path / "crds")
    register_local(fleet, chart, tmp_path / "uses")
    try:
        before = asyncio.run(fleet.engine.sync(chart))
        assert before.ok, before
        # No cluster serves the API yet: the chart left the Widget out.
        assert not [c for r in before.results for c in r.plan.changes if c.ref.kind == "Widget"]

        applied = asyncio.run(fleet.engine.sync(crds))
        assert applied.ok, applied
        # The same engine, as the daemon's. A just-created CRD's storage may answer
        # 429 for a moment ("storage is (re)initializing"): that is retryable.
        deadline = time.monotonic() + 60
        after = asyncio.run(fleet.engine.sync(chart))
        while after.retry and time.monotonic() < deadline:
            after = asyncio.run(fleet.engine.sync(chart))
        assert after.ok, after
        for index in range(len(fleet.cluster_names)):
            assert exists(fleet.sandbox, index, f"{group}/v1", "Widget", "w1", ns), index
    finally:
        asyncio.run(fleet.engine.uninstall(chart))
        asyncio.run(fleet.engine.uninstall(crds))


def test_depends_on_reads_the_dependency_from_the_store_not_from_its_source(
    fleet: Fleet, space: Space, tmp_path: Path
) -> None:
    ns = space.namespace
    db, api = space.app("db"), space.app("api")
    write_files(
        tmp_path / "db",
        {
            "appflow.yaml": yaml.safe_dump({"name": db, "namespace": ns, "labels": {"tier": "db"}}),
            "db.yaml": [configmap("db-config", ns, {"port": "5432"})],
        },
    )
    write_files(
        tmp_path / "api",
        {
            "appflow.yaml": yaml.safe_dump(
                {
                    "name": api,
                    "namespace": ns,
                    "dependsOn": [{"selector": {"matchLabels": {"tier": "db"}}}],
                }
            ),
            "api.yaml": [configmap("api-config", ns, {"db": "db:5432"})],
        },
    )
    register_local(fleet, db, tmp_path / "db")
    register_local(fleet, api, tmp_path / "api")
    first = asyncio.run(fleet.engine.sync(db))
    assert first.ok, first
    # db's source is gone: its record (labels as last read, Ready Deployments) is enough.
    shutil.rmtree(tmp_path / "db")

    report = asyncio.run(fleet.engine.sync(api))

    assert report.ok, report
    assert not report.waiting, report.waiting
    assert {r.state for r in report.results} == {"Ready"}
