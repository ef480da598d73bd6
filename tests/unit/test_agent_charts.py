"""The agent's chart, and the hub chart's agent API: lint-clean with helm, every verb listed."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from tests.helpers import built_tool

CHARTS = Path(__file__).resolve().parents[2] / "appflow" / "charts"
AGENT_API = [
    "--set",
    "agentApi.enabled=true",
    "--set",
    "agentApi.advertiseUrl=https://hub.example.com:8443",
]


def helm(*args: str) -> str:
    done = subprocess.run(
        [str(built_tool("helm")), *args], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "[WARNING]" not in done.stdout
    return done.stdout


@pytest.mark.tools
def test_the_charts_are_lint_clean() -> None:
    helm("lint", "--strict", str(CHARTS / "appflow-agent"))
    helm(
        "lint",
        "--strict",
        str(CHARTS / "appflow-agent"),
        "--set",
        "hub.token=t",
        "--set",
        "hub.url=https://h",
        "--set",
        "hub.caPin=sha256:00",
    )
    helm("lint", "--strict", str(CHARTS / "appflow-hub"), *AGENT_API)


@pytest.mark.tools
def test_the_agent_chart_writes_its_secret_only_when_given_a_token() -> None:
    bare = [
        d for d in yaml.safe_load_all(helm("template", "a", str(CHARTS / "appflow-agent"))) if d
    ]
    assert sorted(d["kind"] for d in bare) == ["ClusterRoleBinding", "Deployment", "ServiceAccount"]
    (deployment,) = [d for d in bare if d["kind"] == "Deployment"]
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args == ["agent", "run", "--heartbeat=60", "--drift-interval=30", "--backoff-max=300"]
    given = helm(
        "template",
        "a",
        str(CHARTS / "appflow-agent"),
        "--set",
        "hub.token=aft_x",
        "--set",
        "hub.url=https://h",
        "--set",
        "hub.caPin=sha256:00",
    )
    (secret,) = [d for d in yaml.safe_load_all(given) if d and d["kind"] == "Secret"]
    assert secret["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
    assert secret["stringData"] == {"hubUrl": "https://h", "caPin": "sha256:00", "token": "aft_x"}


@pytest.mark.tools
def test_the_hub_charts_agent_api_lists_every_verb() -> None:
    objects = [
        d
        for d in yaml.safe_load_all(helm("template", "h", str(CHARTS / "appflow-hub"), *AGENT_API))
        if d
    ]
    (role,) = [
        d for d in objects if d["kind"] == "ClusterRole" and d["metadata"]["name"] == "h-agent-api"
    ]
    assert all("*" not in r["verbs"] and "*" not in r.get("resources", []) for r in role["rules"])
    token = next(r for r in role["rules"] if r.get("resources") == ["serviceaccounts/token"])
    assert token["resourceNames"] == ["appflow-agent"]
    (deployment,) = [
        d for d in objects if d["kind"] == "Deployment" and d["metadata"]["name"] == "h-agent-api"
    ]
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--advertise-url=https://hub.example.com:8443" in args
    without = [
        d for d in yaml.safe_load_all(helm("template", "h", str(CHARTS / "appflow-hub"))) if d
    ]
    assert not any(d["metadata"]["name"] == "h-agent-api" for d in without)
