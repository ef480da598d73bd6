"""What a user watching `appflow serve` sees: `appflow events` (and `--follow` as things
happen) with each event's trigger, cluster and outcome, and the daemon's `/metrics`."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from appflow.store import open_store
from tests.e2e.support import LineReader, appflow_env, serving, until
from tests.integration.engine.conftest import Fleet
from tests.integration.engine.support import (
    Space,
    cli,
    configmap,
    deployment,
    kubectl,
    write_files,
)

pytestmark = pytest.mark.cluster


def _app_folder(folder: Path, app: str, ns: str) -> Path:
    return write_files(
        folder,
        {
            "appflow.yaml": f"name: {app}\nnamespace: {ns}\n"
            "targets:\n  - name: dev\n    clusterSelector:\n      matchLabels: {env: dev}\n"
            "syncPolicy:\n  selfHeal: true\n",
            "config.yaml": [configmap("settings", ns, {"mode": "blue"})],
            "web.yaml": [deployment("web", ns, replicas=2)],
        },
    )


def _ready(app: str, cluster: str) -> bool:
    store = open_store()
    try:
        return any(d.state == "Ready" for d in store.list_deployments(app=app, cluster=cluster))
    finally:
        store.close()


def _metric(text: str, name: str, labels: dict[str, str]) -> float | None:
    """The value of sample NAME whose labels include LABELS, or None."""
    for line in text.splitlines():
        found = re.fullmatch(r"(\w+)\{(.*)\} (\S+)", line)
        if found is None or found.group(1) != name:
            continue
        have = dict(re.findall(r'(\w+)="([^"]*)"', found.group(2)))
        if all(have.get(k) == v for k, v in labels.items()):
            return float(found.group(3))
    return None


def test_events_show_syncs_drift_and_failures_as_they_happen(
    fleet: Fleet, space: Space, tmp_path: Path
) -> None:
    ns, app = space.namespace, space.app("observed")
    dev = fleet.sandbox.by_env("dev").name
    index = fleet.cluster_names.index(dev)
    folder = _app_folder(tmp_path / "app", app, ns)
    assert cli("app", "add", app, "--local", str(folder)).exit_code == 0
    log = tmp_path / "serve.log"
    with serving(fleet, log) as (_, base):
        until(lambda: _ready(app, dev), timeout=90, what="the daemon's first sync", log=log)

        # Metrics of that sync, read as Prometheus would.
        text = httpx.get(f"{base}/metrics", timeout=5).text
        labels = {"app": app, "cluster": dev}
        assert (_metric(text, "appflow_reconcile_duration_seconds_count", labels) or 0) >= 1, text
        assert _metric(text, "appflow_cluster_reachable", {"cluster": dev}) == 1.0, text

        follow = subprocess.Popen(
            [sys.executable, "-m", "appflow", "events", "--app", app, "--follow", "-o", "json"],
            env=appflow_env(fleet),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            out = LineReader(follow)
            first = json.loads(
                out.wait_for(lambda line: '"kind": "sync"' in line, timeout=120, what="a sync")
            )
            assert (first["cluster"], first["trigger"]) == (dev, "poll"), first

            # Drift: a hand edit of a field appflow owns. The watch may open a moment
            # after the first sync, so the edit is repeated (bounded) until it is seen.
            replicas = iter(range(3, 30))

            def drift_seen() -> bool:
                scale = f"--replicas={next(replicas)}"
                kubectl(fleet.sandbox, index, "-n", ns, "scale", "deployment/web", scale)
                try:
                    out.wait_for(lambda line: '"kind": "drift"' in line, timeout=4, what="drift")
                except pytest.fail.Exception:
                    return False
                return True

            until(drift_seen, timeout=60, what="a drift event in `events --follow`")

            # A failure: a file that is not YAML, synced by the user.
            write_files(folder, {"config.yaml": "data: [unclosed\n"})
            assert cli("sync", app).exit_code != 0
            failure = json.loads(
                out.wait_for(
                    lambda line: '"kind": "failure"' in line, timeout=120, what="the failure"
                )
            )
            assert failure["trigger"] == "user", failure
        finally:
            follow.terminate()
            follow.wait(timeout=120)

    listed = cli("events", "--app", app, "-o", "json")
    assert listed.exit_code == 0, listed.output
    events: list[dict[str, Any]] = json.loads(listed.stdout)
    by_kind = {e["kind"]: e for e in events}
    assert {"sync", "drift", "failure"} <= set(by_kind), [e["kind"] for e in events]
    for kind in ("sync", "drift", "failure"):
        event = by_kind[kind]
        assert event["cluster"] == dev, event
        assert event["trigger"], event
        assert event["outcome"], event
    assert by_kind["drift"]["trigger"] == "selfHeal"
    assert "spec.replicas" in by_kind["drift"]["message"]
    assert by_kind["failure"]["outcome"] == "blocked"
    assert "config.yaml" in by_kind["failure"]["message"]
