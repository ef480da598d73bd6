"""Opt-in server render: a chart's `lookup` sees the target's live objects with `helm.lookup: true`."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.engine.conftest import Fleet
from tests.integration.engine.support import Space, cli, live, register_local, write_files

pytestmark = pytest.mark.cluster

TEMPLATE = """{{- $source := lookup "v1" "ConfigMap" .Release.Namespace "source" }}
apiVersion: v1
kind: ConfigMap
metadata:
  name: derived
data:
  copied: {{ if $source }}{{ $source.data.value | quote }}{{ else }}"nothing seen"{{ end }}
"""


def _chart(folder: Path, app: str, namespace: str, *, lookup: bool) -> Path:
    return write_files(
        folder,
        {
            "appflow.yaml": f"name: {app}\nnamespace: {namespace}\nhelm:\n  chart: chart\n  lookup: {str(lookup).lower()}\n",
            "chart/Chart.yaml": "apiVersion: v2\nname: derived\nversion: 0.1.0\n",
            "chart/templates/derived.yaml": TEMPLATE,
        },
    )


@pytest.mark.parametrize(
    ("lookup", "expected"), [(True, "from-the-cluster"), (False, "nothing seen")]
)
def test_lookup_sees_live_objects_only_when_asked(
    fleet: Fleet, space: Space, tmp_path: Path, lookup: bool, expected: str
) -> None:
    ns = space.namespace
    for index in range(len(fleet.cluster_names)):
        kube = fleet.sandbox.kube(index)
        kube.apply_sync(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "source", "namespace": ns},
                "data": {"value": "from-the-cluster"},
            },
            field_manager="someone-else",
        )
        kube.close()
    app = space.app("lookup")
    register_local(fleet, app, _chart(tmp_path / "app", app, ns, lookup=lookup))
    for name in fleet.cluster_names:
        # Only an operator may let a chart look things up (see test_policies.py).
        allowed = cli("policy", "set", "cluster", name, "--helm-lookup", "allow")
        assert allowed.exit_code == 0, allowed.output
    result = cli("sync", app, "--wait")
    assert result.exit_code == 0, result.output
    for index in range(len(fleet.cluster_names)):
        assert (
            live(fleet.sandbox, index, "v1", "ConfigMap", "derived", ns)["data"]["copied"]
            == expected
        )
