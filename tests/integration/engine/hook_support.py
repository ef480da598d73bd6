"""What the hook tests look at on the clusters and in the CLI's output."""

from __future__ import annotations

import json

from appflow.model.objects import INVENTORY_NAMESPACE
from tests.helpers import Sandbox
from tests.integration.engine.support import live


def job_state(sandbox: Sandbox, index: int, name: str, namespace: str) -> str | None:
    """'Complete', 'Failed' or 'Running' for a Job on the cluster; None when there is none."""
    kube = sandbox.kube(index)
    try:
        job = kube.get_sync("batch/v1", "Job", name, namespace)
    finally:
        kube.close()
    if job is None or job["metadata"].get("deletionTimestamp"):
        return None
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition["type"] in ("Complete", "Failed") and condition["status"] == "True":
            return str(condition["type"])
    return "Running"


def uid(sandbox: Sandbox, index: int, api_version: str, kind: str, name: str, ns: str) -> str:
    return str(live(sandbox, index, api_version, kind, name, ns)["metadata"]["uid"])


def inventory_names(sandbox: Sandbox, index: int, app: str) -> list[str]:
    """The names of the objects in APP's inventory on the cluster."""
    cm = live(sandbox, index, "v1", "ConfigMap", f"appflow-inventory-{app}", INVENTORY_NAMESPACE)
    return sorted(e["id"].split("_")[1] for e in json.loads(cm["data"]["entries"]))


def lines_with(output: str, *texts: str) -> list[int]:
    """For each of TEXTS, the first line of OUTPUT that contains it (fails when one is missing)."""
    lines = output.splitlines()
    found = []
    for text in texts:
        hits = [i for i, line in enumerate(lines) if text in line]
        assert hits, f"{text!r} is not in the output:\n{output}"
        found.append(hits[0])
    return found
