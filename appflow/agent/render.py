"""Rendering on the edge (``renderOn: agent``): an app whose inputs are SOPS-encrypted is
rendered by the agent that decrypts them (issue 15, docs/hub.md §4).

The hub ships the app's render inputs (``appflow.engine.render_inputs``: the request it would
have rendered and the app's files, ciphertext as committed). The agent writes the files into a
private folder (0700, removed after the render: it holds only what the hub holds), rebuilds the
request and renders with the push engine's ``render_request_for``: the same secrets stage
(marks checked, each file decrypted in memory with this cluster's age identity, MAC checked by
sops), the same helm, kustomize and plain renders, the same reveal. Plaintext exists in this
process's memory only: the render is never cached on disk, and the DesiredState's redactor
keeps it out of what the agent reports and logs.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from appflow.agent.secrets import Revealed
from appflow.engine.desired import render_request_for
from appflow.engine.render_inputs import read_inputs, request_of
from appflow.engine.secrets import SecretsStage
from appflow.errors import AppflowError, Where
from appflow.kube.client import KubeCluster
from appflow.model.objects import Manifest
from appflow.model.records import ClusterRecord
from appflow.model.targeting import ClusterGroup
from appflow.secrets.age import Identity


class EdgeSecrets(SecretsStage):
    """The secrets stage with one identity: the one this agent made on its cluster."""

    def __init__(self, identity: Identity | None) -> None:
        super().__init__()
        self.identity = identity

    def identities(
        self, cluster: ClusterRecord, groups: Mapping[str, ClusterGroup]
    ) -> list[Identity]:
        return [self.identity] if self.identity is not None else []


def _write(root: Path, files: Sequence[tuple[str, bytes]]) -> None:
    os.chmod(root, 0o700)
    for name, data in files:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


async def render_on_edge(
    inputs: Sequence[Manifest],
    *,
    secrets: EdgeSecrets,
    cluster: str,
    app: str,
) -> Revealed:
    """The objects INPUTS (an app's render inputs) render to on this cluster, decrypted with
    what SECRETS holds; AppflowErrors (a file that cannot be decrypted, a template error)
    name the app, this cluster and the file."""
    header, files = read_inputs(inputs)
    root = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="appflow-render-"))
    try:
        await asyncio.to_thread(_write, root, files)
        shipped = request_of(header, root, app=app)
        record = ClusterRecord(name=cluster, kind="imported")
        try:
            _, desired = await render_request_for(
                shipped.definition,
                shipped.request,
                record,
                groups={},
                kube=_no_lookup,
                cache=None,
                secrets=secrets,
            )
        except AppflowError as err:
            raise err.located(app=app, cluster=cluster) from None
    finally:
        await asyncio.to_thread(shutil.rmtree, root, True)
    return Revealed(objects=desired.objects, redactor=desired.redactor)


def _no_lookup() -> KubeCluster:
    # The hub refuses agent rendering for charts that use helm lookup (publish.py), so this is
    # never asked for; were it asked, the error says so rather than reading the cluster.
    raise AppflowError(
        "helm lookup is not available when the agent renders an app",
        where=Where(field="helm.lookup"),
    )
