"""Reading what is on the cluster: an app's labelled objects, and which kinds are served."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from appflow import redaction
from appflow.errors import MissingKindError
from appflow.kube.client import KubeCluster
from appflow.model.inventory import Inventory
from appflow.model.objects import LABEL_APP, Manifest, ObjectRef
from appflow.model.redact import content_digest, is_secret

Kind = tuple[str, str]
"""(apiVersion, kind)"""


def secret_content(live: Manifest | None) -> str:
    """What a Secret's fingerprint adds: a keyed digest of its data (see model.ownership)."""
    return content_digest(live, key=redaction.key()) if live is not None and is_secret(live) else ""


def kinds_of(objects: Iterable[Manifest], inventory: Inventory) -> set[Kind]:
    """The kinds of OBJECTS and of the entries of INVENTORY."""
    kinds = {(str(m.get("apiVersion")), str(m.get("kind"))) for m in objects}
    kinds |= {(e.api_version, e.ref.kind) for e in inventory.entries}
    return kinds


def crd_kinds(objects: Iterable[Manifest]) -> dict[tuple[str, str], bool]:
    """(group, kind) -> namespaced, for every CRD among OBJECTS."""
    out: dict[tuple[str, str], bool] = {}
    for m in objects:
        if m.get("kind") == "CustomResourceDefinition":
            spec = m.get("spec") or {}
            kind = str((spec.get("names") or {}).get("kind", ""))
            out[(str(spec.get("group", "")), kind)] = (
                spec.get("scope", "Namespaced") == "Namespaced"
            )
    return out


async def read_live(
    kube: KubeCluster, app: str, kinds: Iterable[Kind]
) -> tuple[dict[ObjectRef, Manifest], dict[Kind, bool]]:
    """Every object of KINDS labelled as APP's (one LIST per kind), and which kinds are namespaced.

    Kinds the cluster does not serve are left out of both results.
    """
    live: dict[ObjectRef, Manifest] = {}
    namespaced: dict[Kind, bool] = {}

    async def one(api_version: str, kind: str) -> None:
        try:
            info = await kube.info(api_version, kind)
        except MissingKindError:
            return
        namespaced[(api_version, kind)] = info.namespaced
        for item in await kube.list_objects(api_version, kind, label_selector=f"{LABEL_APP}={app}"):
            live[ObjectRef.of(item)] = item

    await asyncio.gather(*(one(v, k) for v, k in sorted(kinds)))
    return live, namespaced


async def served_kinds(kube: KubeCluster, kinds: Iterable[Kind]) -> dict[Kind, bool]:
    """Which of KINDS are namespaced, from discovery alone; kinds not served are left out."""
    namespaced: dict[Kind, bool] = {}
    for api_version, kind in sorted(kinds):
        try:
            namespaced[(api_version, kind)] = (await kube.info(api_version, kind)).namespaced
        except MissingKindError:
            continue
    return namespaced
