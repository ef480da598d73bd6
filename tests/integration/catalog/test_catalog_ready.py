"""Every starter catalog chart, installed with its defaults, turns Ready on a real API server.

The namespace enforces the Pod Security "restricted" level, so a chart whose pod
template falls short of it is refused rather than merely warned about.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from appflow.tools import find_tool
from tests.helpers import Sandbox

CATALOG = Path(__file__).resolve().parents[3] / "catalog"
ENTRIES = sorted(p.name for p in CATALOG.iterdir() if (p / "app.yaml").is_file())

pytestmark = [pytest.mark.cluster, pytest.mark.tools]


@pytest.mark.parametrize("entry", ENTRIES)
def test_chart_defaults_become_ready_under_restricted_pod_security(
    sandbox: Sandbox, namespace: str, entry: str
) -> None:
    kubeconfig = str(sandbox.clusters[0].kubeconfig)
    env = {**os.environ, "KUBECONFIG": kubeconfig}
    kubectl = str(find_tool("kubectl"))
    subprocess.run(
        [
            kubectl,
            "label",
            "namespace",
            namespace,
            "--overwrite",
            "pod-security.kubernetes.io/enforce=restricted",
            "pod-security.kubernetes.io/warn=restricted",
        ],
        env=env,
        check=True,
        capture_output=True,
        timeout=60,
    )
    install = subprocess.run(
        [
            str(find_tool("helm")),
            "install",
            entry,
            str(CATALOG / entry / "chart"),
            "--namespace",
            namespace,
            "--wait",
            "--timeout",
            "120s",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert install.returncode == 0, install.stderr
    assert "would violate PodSecurity" not in install.stderr
    ready = subprocess.run(
        [
            kubectl,
            "get",
            "deployments",
            "-n",
            namespace,
            "-l",
            f"app.kubernetes.io/name={entry}",
            "-o",
            "jsonpath={.items[*].status.readyReplicas}/{.items[*].spec.replicas}",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert ready.stdout == "1/1"
