"""Kubernetes objects as plain data: references, identities and ownership labels.

Pure: no I/O. Everything else in appflow speaks of objects through these names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Manifest = dict[str, Any]
"""One Kubernetes object as parsed YAML/JSON (apiVersion, kind, metadata, ...)."""

FIELD_MANAGER = "appflow"
LABEL_APP = "appflow.dev/app"
"""Label on every applied object: the AppFlow that owns it."""
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
ANNOTATION_OWNER = "appflow.dev/owner"
"""Annotation on every applied object: '<appflow>/<inventory-id>', checked before prune."""
ANNOTATION_SYNC_WAVE = "appflow.dev/sync-wave"
ANNOTATION_ARGO_SYNC_WAVE = "argocd.argoproj.io/sync-wave"
"""Argo CD's sync wave: read as an alias of appflow.dev/sync-wave, so Argo CD repos keep their order."""
ANNOTATION_PRUNE = "appflow.dev/prune"
"""Set to 'false' to keep an object on the cluster when it leaves the desired state."""
ANNOTATION_REPLACE = "appflow.dev/replace-on-immutable"
"""Set to 'true' to allow delete-and-recreate when an immutable field changes."""
ANNOTATION_TAKE_OWNERSHIP = "appflow.dev/take-ownership"
"""Set to 'true' in an app's source to move the object to that app from the app owning it."""
ANNOTATION_SHARED = "appflow.dev/shared"
"""'true' on an object several apps may declare alike, such as the namespace appflow creates
for an app's objects: applied, but owned by no app (no ownership marks, in no inventory),
so never pruned and never a conflict."""
INVENTORY_NAMESPACE = "appflow-system"


def split_api_version(api_version: str) -> tuple[str, str]:
    """'apps/v1' -> ('apps', 'v1'); 'v1' -> ('', 'v1')."""
    if "/" in api_version:
        group, version = api_version.split("/", 1)
        return group, version
    return "", api_version


@dataclass(frozen=True, order=True)
class ObjectRef:
    """The identity of an object: group, kind, namespace and name (version-free)."""

    group: str
    kind: str
    namespace: str
    name: str

    @classmethod
    def of(cls, manifest: Manifest) -> ObjectRef:
        """The identity of MANIFEST. A hook the API server names (``metadata.generateName``,
        no ``metadata.name``) is identified by its name prefix, e.g. ``Job.batch/ns/migrate-``."""
        group, _ = split_api_version(str(manifest.get("apiVersion", "")))
        meta = manifest.get("metadata") or {}
        return cls(
            group=group,
            kind=str(manifest.get("kind", "")),
            namespace=str(meta.get("namespace") or ""),
            name=str(meta.get("name") or meta.get("generateName") or ""),
        )

    @property
    def group_kind(self) -> str:
        return f"{self.kind}.{self.group}" if self.group else self.kind

    def __str__(self) -> str:
        if self.namespace:
            return f"{self.group_kind}/{self.namespace}/{self.name}"
        return f"{self.group_kind}/{self.name}"

    def encode(self) -> str:
        """The inventory id: '<namespace>_<name>_<group>_<kind>', as Flux writes it, with
        '%' and '_' inside a field escaped as '%25' and '%5F'.

        RBAC objects and custom resources may have '_' (and almost anything else but '/'
        and '%') in their names, so the fields alone cannot be told apart by '_'; escaped,
        every id has exactly three separators and reads back to its ObjectRef. Names
        without '_' get the same id as before (see :meth:`decode` for older ids).
        """
        return "_".join(
            _escape(part) for part in (self.namespace, self.name, self.group, self.kind)
        )

    @classmethod
    def decode(cls, text: str) -> ObjectRef:
        """Read an id written by :meth:`encode`, or by appflow before ids were escaped.

        An id with more than three '_' is the older form, where only a name could hold
        '_' (Kubernetes allows none in namespaces, groups and kinds): the namespace is
        before the first '_', the group and kind after the last two, the name between.
        """
        parts = text.split("_")
        if len(parts) == 4:
            namespace, name, group, kind = (_unescape(part, text) for part in parts)
        elif len(parts) > 4 and "%" not in text:
            namespace, group, kind = parts[0], parts[-2], parts[-1]
            name = "_".join(parts[1:-2])
        else:
            raise ValueError(f"not an inventory id: {text!r}")
        return cls(group=group, kind=kind, namespace=namespace, name=name)


_ESCAPES = {"%": "%25", "_": "%5F"}
_UNESCAPES = {"25": "%", "5F": "_"}


def _escape(part: str) -> str:
    if "%" not in part and "_" not in part:
        return part
    return "".join(_ESCAPES.get(char, char) for char in part)


def _unescape(part: str, text: str) -> str:
    if "%" not in part:
        return part
    out: list[str] = []
    index = 0
    while index < len(part):
        char = part[index]
        if char != "%":
            out.append(char)
            index += 1
            continue
        found = _UNESCAPES.get(part[index + 1 : index + 3])
        if found is None:
            raise ValueError(
                f"not an inventory id (bad escape at {part[index : index + 3]!r}): {text!r}"
            )
        out.append(found)
        index += 3
    return "".join(out)


def is_shared(manifest: Manifest) -> bool:
    """True when MANIFEST is annotated ``appflow.dev/shared: "true"``."""
    annotations = (manifest.get("metadata") or {}).get("annotations") or {}
    value = annotations.get(ANNOTATION_SHARED)
    return str(value).strip().lower() == "true" if value is not None else False
