"""Whose failure is it: one object's, or the cluster's?

A request about one object can fail the way a dead cluster fails: the API server drops
the connection of a body too large to read, or answers HTTP 500 for an object it cannot
decode. Such a failure is the object's (ErrApplied for its app, with the reason) when
the cluster still answers its health probe; only when the probe fails too is the
cluster unreachable. One probe per stage settles every failure of that stage.
"""

from __future__ import annotations

import json

from appflow.errors import AppflowError, ClusterError, ObjectFailedError
from appflow.kube.client import KubeCluster
from appflow.model.objects import Manifest

REQUEST_LIMIT = 3 * 1024 * 1024
"""The API server's limit on a request body (kube-apiserver --max-request-bytes)."""


class Blame:
    """Decides, with at most one health probe of KUBE, who failed."""

    def __init__(self, kube: KubeCluster) -> None:
        self.kube = kube
        self._answers: bool | None = None

    async def cluster_answers(self) -> bool:
        """The cluster's health probe (GET /version), once."""
        if self._answers is None:
            try:
                await self.kube.version()
            except AppflowError:
                self._answers = False
            else:
                self._answers = True
        return self._answers

    async def of(self, err: ClusterError, manifest: Manifest | None) -> AppflowError:
        """ERR, raised by a request about MANIFEST: the object's failure when the cluster
        answers its probe, else ERR itself (the caller raises it: the cluster is down)."""
        if not await self.cluster_answers():
            return err
        size = len(json.dumps(manifest, separators=(",", ":"))) if manifest is not None else 0
        if size > REQUEST_LIMIT:
            return ObjectFailedError(
                f"the object is {size / 1048576:.1f} MiB, more than the API server reads in "
                f"one request ({REQUEST_LIMIT // 1048576} MiB); it dropped the connection",
                where=err.where,
                hint="make it smaller (a ConfigMap or Secret holds at most 1 MiB of data)",
            )
        return ObjectFailedError(
            f"the API server failed on this object while it answers otherwise: {err.message}",
            where=err.where,
            hint="fix the object (the API server could not read or store it); "
            "the cluster's other objects sync",
        )
