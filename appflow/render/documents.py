"""Turn rendered text into Kubernetes objects: parse, check, flatten, default namespaces.

Every render path (helm output, kustomize output, plain YAML files) ends here, so
that the rules are the same whatever produced the text: empty documents are
dropped, ``List`` kinds are flattened, anything that is not an object (no kind,
apiVersion or metadata.name) is a RenderError naming the file, the document and
its line, and two objects with the same identity are refused rather than one
silently winning.

The limits of ``appflow.settings.limits()`` are enforced here too: documents
nested too deeply or expanding (through YAML aliases) into too many values,
objects larger than the API server accepts, and renders too large as a whole
are RenderErrors naming what was too big. These functions are CPU-bound:
callers in async code run them in a worker thread.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from appflow import settings
from appflow.errors import ConfigError, RenderError, Where
from appflow.model.hooks import hook_of, is_hook
from appflow.model.limits import Limits, document_problem, human_size
from appflow.model.objects import Manifest, ObjectRef

# libyaml's parser when PyYAML was built with it: about ten times faster than
# the pure-Python one, and a render of hundreds of files is mostly parsing.
_SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_SafeLoader):  # type: ignore[valid-type,misc]
    """SafeLoader that reads YAML the way Kubernetes tooling does.

    Timestamps stay strings (the API server receives JSON strings, and a Python
    date would not survive canonical JSON), and a bare ``=`` is the string "="
    rather than PyYAML's obsolete "value" tag.
    """


_Loader.yaml_implicit_resolvers = {
    key: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _construct_value(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    assert isinstance(node, yaml.ScalarNode)
    return loader.construct_scalar(node)


_Loader.add_constructor("tag:yaml.org,2002:value", _construct_value)


@dataclass(frozen=True, kw_only=True)
class Document:
    """One parsed document and where it came from (for error messages)."""

    data: Any
    file: str
    index: int
    """0-based position of the document in its file."""
    line: int | None = None
    """1-based line where the document starts."""
    origin: str | None = None
    """What produced it, when not a file of the user's (e.g. a helm template name)."""


def parse_yaml_documents(
    text: str, *, file: str, origin_of_line: Any = None, limits: Limits | None = None
) -> list[Document]:
    """Parse multi-document YAML; YAML errors become RenderError with file, line and column.

    ``origin_of_line`` (line -> str | None) names the producer of a document
    starting at that line, e.g. helm's ``# Source:`` template. A document
    beyond LIMITS (nesting, values after alias expansion) is a RenderError.
    """
    limits = limits or settings.limits()
    # Without an anchor (&) and an alias (*) in the text, nothing can expand.
    aliases = "&" in text and "*" in text
    docs: list[Document] = []
    loader = _Loader(text)
    try:
        index = 0
        while loader.check_node():
            node = loader.get_node()
            if node is None:  # pragma: no cover - check_node guards this
                break
            line = node.start_mark.line + 1
            data = loader.construct_document(node)
            origin = origin_of_line(line) if origin_of_line is not None else None
            doc = Document(data=data, file=file, index=index, line=line, origin=origin)
            _check_limits(doc, limits, aliases=aliases)
            docs.append(doc)
            index += 1
    except RecursionError as err:
        # Only without libyaml: the pure-Python composer recurses once per level.
        raise _too_deep(file, limits) from err
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        problem = err.problem or err.context or "invalid YAML"
        raise _error(
            f"invalid YAML: {problem}",
            file=file,
            line=mark.line + 1 if mark else None,
            column=mark.column + 1 if mark else None,
        ) from err
    except yaml.YAMLError as err:
        raise _error(f"invalid YAML: {err}", file=file) from err
    finally:
        loader.dispose()
    return docs


def parse_json_documents(text: str, *, file: str, limits: Limits | None = None) -> list[Document]:
    """Parse a .json file: one object, or an array of objects."""
    limits = limits or settings.limits()
    try:
        data = json.loads(text)
    except RecursionError as err:
        raise _too_deep(file, limits) from err
    except json.JSONDecodeError as err:
        raise _error(
            f"invalid JSON: {err.msg}", file=file, line=err.lineno, column=err.colno
        ) from err
    _check_limits(Document(data=data, file=file, index=0, line=1), limits, aliases=False)
    if isinstance(data, list):
        return [Document(data=item, file=file, index=i) for i, item in enumerate(data)]
    return [Document(data=data, file=file, index=0, line=1)]


def _check_limits(doc: Document, limits: Limits, *, aliases: bool) -> None:
    problem = document_problem(doc.data, limits, aliases=aliases)
    if problem is not None:
        raise _error(
            f"{_describe(doc)} is refused: {problem}",
            file=doc.file,
            line=doc.line,
            hint=_limit_hint(limits, "max_yaml_depth" if "nested" in problem else "max_yaml_nodes"),
        )


def _too_deep(file: str, limits: Limits) -> RenderError:
    return _error(
        f"a document is refused: it is nested more than {limits.max_yaml_depth} levels deep",
        file=file,
        hint=_limit_hint(limits, "max_yaml_depth"),
    )


def _limit_hint(limits: Limits, field_name: str) -> str:
    return f"the limit is the operator's {limits.setting_name(field_name)}"


def check_file_size(path: Path, *, shown: str, limits: Limits | None = None) -> None:
    """Refuse to read a file of the source larger than the file limit (RenderError naming it)."""
    limits = limits or settings.limits()
    try:
        size = path.stat().st_size
    except OSError as err:
        raise _error(f"cannot read {shown}: {err.strerror or err}", file=shown) from err
    if size > limits.max_file_bytes:
        raise _error(
            f"the file is {human_size(size)}; files larger than "
            f"{human_size(limits.max_file_bytes)} are refused",
            file=shown,
            hint=_limit_hint(limits, "max_file_bytes"),
        )


def check_output_size(text: str | bytes, *, what: str, limits: Limits | None = None) -> None:
    """Refuse a tool's output (helm template, kustomize build) larger than the render limit."""
    limits = limits or settings.limits()
    if len(text) > limits.max_render_bytes:
        raise _error(
            f"{what} printed {human_size(len(text))}; renders larger than "
            f"{human_size(limits.max_render_bytes)} are refused",
            file=what,
            hint=_limit_hint(limits, "max_render_bytes"),
        )


def _error(
    message: str,
    *,
    file: str | None,
    line: int | None = None,
    column: int | None = None,
    hint: str | None = None,
) -> RenderError:
    return RenderError(message, hint=hint, where=Where(file=file, line=line, column=column))


def _describe(doc: Document, item: int | None = None) -> str:
    text = f"document {doc.index + 1}"
    if item is not None:
        text += f", item {item + 1}"
    if doc.origin:
        text += f" (from {doc.origin})"
    return text


def to_objects(docs: Iterable[Document]) -> Iterator[tuple[Manifest, Document]]:
    """Yield each object with its document: drop empty ones, flatten Lists, refuse non-objects."""
    for doc in docs:
        if doc.data is None:
            continue
        if not isinstance(doc.data, dict):
            raise _error(
                f"{_describe(doc)} is a {type(doc.data).__name__}, not a Kubernetes object",
                file=doc.file,
                line=doc.line,
            )
        if not doc.data:
            continue
        if _is_list(doc.data):
            for i, item in enumerate(doc.data.get("items") or []):
                if item is None:
                    continue
                _check_object(item, doc, item=i)
                yield item, doc
            continue
        _check_object(doc.data, doc)
        yield doc.data, doc


def _is_list(data: dict[str, Any]) -> bool:
    kind = data.get("kind")
    # v1 List and typed lists (ConfigMapList...) both carry their members in items.
    return isinstance(kind, str) and kind.endswith("List") and isinstance(data.get("items"), list)


def _check_object(data: Any, doc: Document, *, item: int | None = None) -> None:
    if not isinstance(data, dict):
        raise _error(
            f"{_describe(doc, item)} is not a Kubernetes object", file=doc.file, line=doc.line
        )
    missing = [
        key for key in ("apiVersion", "kind") if not isinstance(data.get(key), str) or not data[key]
    ]
    meta = data.get("metadata")
    named = isinstance(meta, dict) and isinstance(meta.get("name"), str) and bool(meta["name"])
    # A hook may leave its name to the API server: it is created anew on every run.
    generated = (
        isinstance(meta, dict)
        and isinstance(meta.get("generateName"), str)
        and bool(meta["generateName"])
    )
    if not named and not (generated and is_hook(data)):
        missing.append("metadata.name")
    if missing:
        hint = None
        if generated:
            hint = (
                "only a hook (helm.sh/hook, argocd.argoproj.io/hook or appflow.dev/hook) may use "
                "generateName instead of metadata.name; any other object needs a fixed name"
            )
        raise _error(
            f"{_describe(doc, item)} is not a Kubernetes object: missing {', '.join(missing)}",
            file=doc.file,
            line=doc.line,
            hint=hint,
        )


# Kinds the API server serves cluster-scoped. Custom kinds are namespaced unless a
# CRD in the same render declares them cluster-scoped (see cluster_scoped_kinds).
CLUSTER_SCOPED_KINDS = frozenset(
    {
        "APIService",
        "CertificateSigningRequest",
        "ClusterRole",
        "ClusterRoleBinding",
        "ClusterTrustBundle",
        "ComponentStatus",
        "CSIDriver",
        "CSINode",
        "CustomResourceDefinition",
        "DeviceClass",
        "FlowSchema",
        "IngressClass",
        "IPAddress",
        "MutatingAdmissionPolicy",
        "MutatingAdmissionPolicyBinding",
        "MutatingWebhookConfiguration",
        "Namespace",
        "Node",
        "PersistentVolume",
        "PriorityClass",
        "PriorityLevelConfiguration",
        "RuntimeClass",
        "ServiceCIDR",
        "StorageClass",
        "StorageVersionMigration",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
        "ValidatingWebhookConfiguration",
        "VolumeAttachment",
        "VolumeAttributesClass",
    }
)


def cluster_scoped_kinds(objects: Iterable[Manifest]) -> frozenset[str]:
    """Built-in cluster-scoped kinds plus those that CRDs among OBJECTS declare Cluster-scoped."""
    extra = {
        str(obj.get("spec", {}).get("names", {}).get("kind"))
        for obj in objects
        if obj.get("kind") == "CustomResourceDefinition"
        and isinstance(obj.get("spec"), dict)
        and obj["spec"].get("scope") == "Cluster"
    }
    return CLUSTER_SCOPED_KINDS | extra


def _check_hook(obj: Manifest, doc: Document) -> None:
    """Refuse a hook annotation appflow cannot honour, naming the file and document."""
    try:
        hook_of(obj)
    except ConfigError as err:
        raise _error(
            f"{_describe(doc)}: {err.where.object}: {err.message}",
            file=doc.file,
            line=doc.line,
            hint=err.hint,
        ) from err


def finish_objects(
    pairs: Iterable[tuple[Manifest, Document]],
    *,
    namespace: str | None,
    limits: Limits | None = None,
) -> tuple[Manifest, ...]:
    """Default the namespace of namespaced objects, check hooks and refuse duplicate identities.

    Objects larger than the object limit, and sets of objects larger than the
    render limit, are refused. Objects keep the order they were produced in
    (file order, then document order).
    """
    limits = limits or settings.limits()
    items = list(pairs)
    scoped = cluster_scoped_kinds(obj for obj, _ in items)
    seen: dict[ObjectRef, Document] = {}
    out: list[Manifest] = []
    total = 0
    for obj, doc in items:
        if namespace and obj["kind"] not in scoped:
            meta = obj["metadata"]
            if not meta.get("namespace"):
                meta["namespace"] = namespace
        ref = ObjectRef.of(obj)
        if ref in seen:
            first = seen[ref]
            raise _error(
                f"{ref} is defined twice: in {first.file} ({_describe(first)}) and here ({_describe(doc)})",
                file=doc.file,
                line=doc.line,
                hint="each object may appear once in an app's desired state",
            )
        seen[ref] = doc
        if is_hook(obj):
            _check_hook(obj, doc)
        total += _check_size(obj, ref, doc, limits)
        if total > limits.max_render_bytes:
            raise _error(
                f"the objects come to more than {human_size(limits.max_render_bytes)} "
                f"(reached at {ref}, {_describe(doc)})",
                file=doc.file,
                line=doc.line,
                hint=_limit_hint(limits, "max_render_bytes"),
            )
        out.append(obj)
    return tuple(out)


def force_namespace(objects: tuple[Manifest, ...], namespace: str) -> tuple[Manifest, ...]:
    """Every namespaced object put into NAMESPACE; a cluster-scoped object is an error.

    This is fleet.yaml's ``namespace`` as Fleet documents it: "all resources
    will be assigned to this namespace and if any cluster scoped resource
    exists the deployment will fail".
    """
    scoped = cluster_scoped_kinds(objects)
    for obj in objects:
        if obj["kind"] in scoped:
            raise RenderError(
                f"{obj['kind']} {obj['metadata']['name']} is cluster-scoped, but fleet.yaml's "
                f"namespace: {namespace} forces every object into that namespace",
                hint="use defaultNamespace (the namespace of objects that set none) instead "
                "of namespace",
            ).located(field="namespace")
    for obj in objects:
        obj["metadata"]["namespace"] = namespace
    return objects


def _check_size(obj: Manifest, ref: ObjectRef, doc: Document, limits: Limits) -> int:
    """The size of OBJ as the JSON sent to the API server; RenderError when over the limit."""
    size = len(
        json.dumps(obj, separators=(",", ":"), ensure_ascii=False, default=str).encode("utf-8")
    )
    if size > limits.max_object_bytes:
        raise _error(
            f"{ref} is {human_size(size)} as JSON; objects larger than "
            f"{human_size(limits.max_object_bytes)} are refused (the API server and etcd "
            "refuse them too)",
            file=doc.file,
            line=doc.line,
            hint="keep large data out of objects (a ConfigMap holds at most 1 MiB); "
            + _limit_hint(limits, "max_object_bytes"),
        )
    return size
