"""What a render takes and gives: the request for one app on one cluster, and its result.

Pure data. The engine builds a ``RenderRequest`` with values already merged
(inline < target customization, cluster templating done); the render adapters
turn it into ``Rendered`` objects whose ``revision`` is a content digest, so two
renders of the same desired state carry the same Revision wherever they ran.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from appflow.model.capabilities import (
    Capabilities as Capabilities,  # re-exported for render callers
)
from appflow.model.objects import Manifest, ObjectRef

RenderKind = Literal["helm", "kustomize", "yaml"]

SHORT_REVISION_LEN = 12


def canonical_json(data: Any) -> str:
    """JSON with sorted keys and no spaces: equal data gives equal text, hence equal digests."""
    # default=str: values read by YAML loaders that make dates of dates still key the cache.
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def sha256_hex(text: str | bytes) -> str:
    raw = text.encode() if isinstance(text, str) else text
    return hashlib.sha256(raw).hexdigest()


@dataclass(frozen=True, kw_only=True)
class HelmChartRef:
    """Where a chart comes from: a folder or archive of the checkout, a Helm HTTP
    repository, OCI, or the URL of a chart archive.

    ``path`` wins when set (a chart folder, or a ``.tgz``). Then ``url``, an
    ``http(s)://`` chart archive that render downloads and keeps by digest.
    Otherwise ``repo`` is an ``https://`` repository URL (with ``name`` the
    chart in its index) or an ``oci://`` reference (``name`` appended when the
    reference does not already end with it). ``version`` is an exact version or
    a constraint such as ``2.x`` or ``^1.4.0``. ``dependency_update`` False
    renders with what ``charts/`` vendors, fetching nothing (fleet.yaml's
    disableDependencyUpdate).
    """

    path: Path | None = None
    url: str | None = None
    repo: str | None = None
    name: str | None = None
    version: str | None = None
    dependency_update: bool = True

    @property
    def is_oci(self) -> bool:
        return bool(
            (self.repo and self.repo.startswith("oci://"))
            or (self.name and self.name.startswith("oci://"))
        )

    def describe(self) -> str:
        if self.path is not None:
            return str(self.path)
        if self.url is not None:
            return self.url
        where = self.repo or ""
        if self.name and not where.endswith(f"/{self.name}"):
            where = f"{where}/{self.name}" if where else self.name
        return f"{where}@{self.version}" if self.version else where


@dataclass(frozen=True, kw_only=True)
class RenderRequest:
    """Render one AppFlow for one Cluster.

    ``values`` are the inline values already merged with the target
    customization; helm applies them last, after ``values_files`` (absolute
    paths, lowest precedence first), so chart defaults < files < values.
    ``source_digest`` identifies the source content (commit + path, or a folder
    hash for local sources); the render cache trusts it.
    ``server_render_kubeconfig`` opts a chart into helm's ``--dry-run=server``
    so that ``lookup`` sees the target: it is the kubeconfig of a read-only view
    confined to what the operator's policies let the app read
    (``KubeCluster.lookup_view``), never appflow's own. Such renders depend on
    live state and are never cached.

    ``source_root`` is the root of the source (the repository checkout or the
    registered folder; ``source_dir`` when None): nothing outside it is read.
    ``kustomize_dir`` is the kustomization to build, or for a chart the one that
    post-renders helm's output (Fleet's helm + kustomize). ``force_namespace``
    puts every namespaced object into ``namespace`` and refuses cluster-scoped
    ones (fleet.yaml ``namespace``). ``object_annotations`` are set on every
    rendered object (what helm.force and helm.takeOwnership ask of the sync).
    """

    app: str
    cluster: str
    kind: RenderKind
    source_dir: Path
    source_digest: str
    capabilities: Capabilities
    namespace: str | None = None
    helm: HelmChartRef | None = None
    release_name: str | None = None
    values: Mapping[str, Any] = field(default_factory=dict)
    values_files: tuple[Path, ...] = ()
    kustomize_dir: str | None = None
    yaml_overlays: tuple[str, ...] = ()
    server_render_kubeconfig: Path | None = None
    include_crds: bool = True
    source_root: Path | None = None
    force_namespace: bool = False
    skip_schema_validation: bool = False
    object_annotations: Mapping[str, str] = field(default_factory=dict)

    @property
    def root(self) -> Path:
        """The folder nothing of this render may be read from outside of."""
        return self.source_root or self.source_dir

    @property
    def effective_release_name(self) -> str:
        return self.release_name or self.app


def revision_of(objects: Iterable[Manifest]) -> str:
    """The full sha256 Revision of a set of objects.

    Objects are sorted by identity first: the same desired state written in a
    different file order is the same Revision.
    """
    ordered = sorted(objects, key=lambda m: (ObjectRef.of(m), canonical_json(m)))
    return sha256_hex(canonical_json(ordered))


@dataclass(frozen=True, kw_only=True)
class Rendered:
    """The desired objects of one AppFlow on one Cluster, and their Revision."""

    objects: tuple[Manifest, ...]
    revision: str
    notes: tuple[str, ...] = ()
    chart_version: str | None = None
    """The exact chart version rendered, when the app is a chart from a repository."""

    @property
    def short_revision(self) -> str:
        return self.revision[:SHORT_REVISION_LEN]

    @classmethod
    def of(
        cls,
        objects: Iterable[Manifest],
        *,
        notes: Iterable[str] = (),
        chart_version: str | None = None,
    ) -> Rendered:
        objs = tuple(objects)
        return cls(
            objects=objs,
            revision=revision_of(objs),
            notes=tuple(notes),
            chart_version=chart_version,
        )
