"""What a pull cluster's agent needs to render an app itself (``renderOn: agent``, docs/hub.md §4).

An app whose inputs are SOPS-encrypted (Helm values files, a kustomize or plain YAML folder's
files, a catalog install's values) is rendered where it is decrypted: in pull mode on the
agent, with the age identity it made on its cluster (the hub holds none). For such a cluster
the hub records, where a render's objects would be, the app's *render inputs*:

- one ``RenderInputs`` object: the RenderRequest the hub would have rendered (the target
  customization applied, inline values merged and templated for the cluster, the capabilities
  its agent reported), and the parts of the definition the secrets stage reads (the paths
  marked for decryption, a catalog install's encrypted values, the origin) and the app's
  namespace labels and annotations;
- one ``SourceFile`` object per file of the app folder, and of a local chart or values file
  outside it, as committed: ciphertext stays ciphertext.

They are stored as any render is (content-addressed chunks, a delta of the previous revision's
index), so a one-file change sends the agent one chunk. The agent writes the files into a
private folder, rebuilds the request with ``request_of`` and renders with the push engine's
``render_request_for``: one render and one secrets stage for both modes.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from appflow.errors import ConfigError, ContentError, Where
from appflow.model.agent import RENDER_INPUTS_KIND
from appflow.model.appdef import AppDefinition, DecryptionSpec, EncryptedValues
from appflow.model.capabilities import Capabilities
from appflow.model.hub import API_VERSION
from appflow.model.objects import Manifest
from appflow.render.types import HelmChartRef, RenderRequest
from appflow.secrets.decrypt import folder_files

KIND_INPUTS = RENDER_INPUTS_KIND
KIND_FILE = "SourceFile"
MAX_BYTES = 8 * 1024 * 1024
"""The files shipped for one app at most: a folder this large belongs in a chart repository."""


@dataclass(frozen=True, kw_only=True)
class AgentRender:
    """An app's render inputs as an agent reads them back."""

    request: RenderRequest
    definition: AppDefinition


def _relative(path: Path, root: Path, *, app: str) -> str:
    try:
        return path.resolve().relative_to(root).as_posix()
    except ValueError as err:
        raise ConfigError(
            f"{path} is outside the app's source",
            where=Where(app=app),
            hint="keep the chart and the values files inside the repository",
        ) from err


def source_files(request: RenderRequest, *, limit: int = MAX_BYTES) -> list[tuple[str, bytes]]:
    """The files REQUEST renders from (its app folder, a local chart and values files outside
    it), each named relative to the source's root; a ConfigError past LIMIT bytes."""
    root = request.root.resolve()
    chart = request.helm.path if request.helm is not None else None
    wanted: dict[str, Path] = {}
    for start in (request.source_dir, chart, *request.values_files):
        if start is None:
            continue
        path = start if start.is_absolute() else request.source_dir / start
        found = [path] if path.is_file() else list(folder_files(path))
        for file in found:
            wanted.setdefault(_relative(file, root, app=request.app), file)
    files: list[tuple[str, bytes]] = []
    total = 0
    for name in sorted(wanted):
        data = wanted[name].read_bytes()
        total += len(data)
        if total > limit:
            raise ConfigError(
                f"the app's files exceed {limit} bytes, too much to ship to "
                "a pull cluster's agent for rendering there",
                where=Where(app=request.app, cluster=request.cluster, file=name),
                hint="move large files out of the app folder, or publish the chart to a chart "
                "repository and name it in helm.repo",
            )
        files.append((name, data))
    return files


def inputs_objects(request: RenderRequest, definition: AppDefinition) -> list[Manifest]:
    """REQUEST's render inputs as objects to store in a render's place (see the module)."""
    root = request.root.resolve()
    chart = request.helm
    decryption = definition.decryption or DecryptionSpec()
    header: Manifest = {
        "apiVersion": API_VERSION,
        "kind": KIND_INPUTS,
        "metadata": {"name": request.app},
        "request": {
            "kind": request.kind,
            "cluster": request.cluster,
            "appPath": _relative(request.source_dir, root, app=request.app),
            "sourceDigest": request.source_digest,
            "capabilities": {
                "kubeVersion": request.capabilities.kube_version,
                "apiVersions": list(request.capabilities.api_versions),
            },
            "namespace": request.namespace,
            "forceNamespace": request.force_namespace,
            "releaseName": request.release_name,
            "values": dict(request.values),
            "valuesFiles": [_relative(f, root, app=request.app) for f in request.values_files],
            "kustomizeDir": request.kustomize_dir,
            "yamlOverlays": list(request.yaml_overlays),
            "includeCrds": request.include_crds,
            "skipSchemaValidation": request.skip_schema_validation,
            "objectAnnotations": dict(request.object_annotations),
            "chart": None
            if chart is None
            else {
                "path": _relative(chart.path, root, app=request.app) if chart.path else None,
                "url": chart.url,
                "repo": chart.repo,
                "name": chart.name,
                "version": chart.version,
                "dependencyUpdate": chart.dependency_update,
            },
        },
        "definition": {
            "origin": definition.origin,
            "definitionFile": definition.definition_file,
            "namespaceLabels": dict(definition.namespace_labels),
            "namespaceAnnotations": dict(definition.namespace_annotations),
            "decryption": {
                "paths": list(decryption.paths),
                "values": [{"name": v.name, "content": v.content} for v in decryption.values],
            },
        },
    }
    files: list[Manifest] = [
        {
            "apiVersion": API_VERSION,
            "kind": KIND_FILE,
            "metadata": {"name": name},
            "data": base64.b64encode(data).decode("ascii"),
        }
        for name, data in source_files(request)
    ]
    return [header, *files]


def _safe_name(name: str) -> str:
    path = PurePosixPath(name)
    if not name or path.is_absolute() or ".." in path.parts or name.startswith("."):
        raise ContentError(f"render inputs name a file outside their folder: {name!r}")
    return path.as_posix()


def read_inputs(objects: Sequence[Manifest]) -> tuple[Mapping[str, Any], list[tuple[str, bytes]]]:
    """The header and the files of render inputs made by ``inputs_objects``; ContentError
    for anything else (a file naming a path outside its folder included)."""
    if not objects or objects[0].get("kind") != KIND_INPUTS:
        raise ContentError("the content is not an app's render inputs (no RenderInputs first)")
    files: list[tuple[str, bytes]] = []
    try:
        for obj in objects[1:]:
            if obj.get("kind") != KIND_FILE:
                raise ContentError(f"render inputs hold a {obj.get('kind')!r}, not a SourceFile")
            name = _safe_name(str(obj["metadata"]["name"]))
            files.append((name, base64.b64decode(str(obj["data"]), validate=True)))
    except (KeyError, TypeError, binascii.Error) as err:
        raise ContentError(f"the app's render inputs are malformed: {err}") from err
    return objects[0], files


def request_of(header: Mapping[str, Any], root: Path, *, app: str) -> AgentRender:
    """The RenderRequest and definition a header of render inputs describes, its files
    written under ROOT."""
    try:
        spec = header["request"]
        meta = header["definition"]
        chart = spec.get("chart")
        caps = spec["capabilities"]
        request = RenderRequest(
            app=app,
            cluster=str(spec["cluster"]),
            kind=spec["kind"],
            source_dir=root / _safe_name(spec["appPath"]) if spec["appPath"] else root,
            source_digest=str(spec["sourceDigest"]),
            capabilities=Capabilities(
                kube_version=str(caps["kubeVersion"]),
                api_versions=tuple(str(v) for v in caps.get("apiVersions") or ()),
            ),
            namespace=spec.get("namespace"),
            helm=None
            if chart is None
            else HelmChartRef(
                path=root / _safe_name(chart["path"]) if chart.get("path") else None,
                url=chart.get("url"),
                repo=chart.get("repo"),
                name=chart.get("name"),
                version=chart.get("version"),
                dependency_update=bool(chart.get("dependencyUpdate", True)),
            ),
            release_name=spec.get("releaseName"),
            values=dict(spec.get("values") or {}),
            values_files=tuple(root / _safe_name(f) for f in spec.get("valuesFiles") or ()),
            kustomize_dir=spec.get("kustomizeDir"),
            yaml_overlays=tuple(spec.get("yamlOverlays") or ()),
            include_crds=bool(spec.get("includeCrds", True)),
            source_root=root,
            force_namespace=bool(spec.get("forceNamespace")),
            skip_schema_validation=bool(spec.get("skipSchemaValidation")),
            object_annotations=dict(spec.get("objectAnnotations") or {}),
        )
        decryption = meta.get("decryption") or {}
        definition = AppDefinition(
            name=app,
            path=str(spec["appPath"]),
            kind=spec["kind"],
            namespace=request.namespace or "default",
            namespace_labels=dict(meta.get("namespaceLabels") or {}),
            namespace_annotations=dict(meta.get("namespaceAnnotations") or {}),
            decryption=DecryptionSpec(
                paths=tuple(str(p) for p in decryption.get("paths") or ()),
                values=tuple(
                    EncryptedValues(name=str(v["name"]), content=str(v["content"]))
                    for v in decryption.get("values") or ()
                ),
            ),
            origin=meta.get("origin") or "appflow.yaml",
            definition_file=meta.get("definitionFile"),
        )
    except (KeyError, TypeError, AttributeError) as err:
        raise ContentError(f"the app's render inputs are malformed: {err}") from err
    return AgentRender(request=request, definition=definition)
