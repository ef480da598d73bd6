"""Patch one object with a Fleet-style overlay patch: JSON Patch, strategic merge or JSON merge.

Fleet picks the strategy from the patch content: a list is an RFC 6902 JSON
Patch; a mapping is a strategic merge patch for built-in kinds and an RFC 7386
JSON merge patch for everything else. Pure functions; inputs are never mutated.

The strategic merge here covers what overlays patch in practice: lists of
containers, env, ports, volumes and mounts merge by their key, and the
``$patch: delete`` / ``$patch: replace`` directives. It has no OpenAPI schema,
so other lists are replaced as a JSON merge patch would.
"""

from __future__ import annotations

import copy
from typing import Any

from appflow.model.objects import Manifest, split_api_version


class PatchError(ValueError):
    """A patch that cannot be applied; the caller adds file and object."""


BUILTIN_GROUPS = frozenset(
    {
        "",
        "apps",
        "batch",
        "autoscaling",
        "policy",
        "networking.k8s.io",
        "rbac.authorization.k8s.io",
        "storage.k8s.io",
        "scheduling.k8s.io",
        "coordination.k8s.io",
        "discovery.k8s.io",
        "node.k8s.io",
        "admissionregistration.k8s.io",
        "certificates.k8s.io",
        "apiextensions.k8s.io",
    }
)

# Field name -> candidate merge keys, first one present in the items wins. Service
# ports merge on "port", container ports on "containerPort".
MERGE_KEYS: dict[str, tuple[str, ...]] = {
    "containers": ("name",),
    "initContainers": ("name",),
    "ephemeralContainers": ("name",),
    "env": ("name",),
    "volumes": ("name",),
    "volumeMounts": ("mountPath",),
    "volumeDevices": ("devicePath",),
    "imagePullSecrets": ("name",),
    "ports": ("containerPort", "port"),
    "hostAliases": ("ip",),
    "topologySpreadConstraints": ("topologyKey",),
    "resourceClaims": ("name",),
}


def apply_patch(target: Manifest, patch: Any) -> Manifest:
    """Return TARGET patched with PATCH, choosing the strategy as Fleet does."""
    if isinstance(patch, list):
        return json_patch(target, patch)
    if not isinstance(patch, dict):
        raise PatchError(
            f"a patch must be a mapping or a JSON Patch list, not {type(patch).__name__}"
        )
    group, _ = split_api_version(str(target.get("apiVersion", "")))
    if group in BUILTIN_GROUPS:
        result = strategic_merge(target, patch)
    else:
        result = merge_patch(target, patch)
    if not isinstance(result, dict):  # pragma: no cover - a mapping patch keeps a mapping
        raise PatchError("the patch did not produce an object")
    return result


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: mappings merge, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def strategic_merge(target: Any, patch: Any, *, field: str | None = None) -> Any:
    """A strategic merge patch (see the module docstring for what it covers)."""
    if isinstance(patch, dict):
        directive = patch.get("$patch")
        body = {k: v for k, v in patch.items() if k != "$patch"}
        if directive == "replace":
            return copy.deepcopy(body)
        if directive == "delete":
            return None
        result = copy.deepcopy(target) if isinstance(target, dict) else {}
        for key, value in body.items():
            if value is None:
                result.pop(key, None)
                continue
            merged = strategic_merge(result.get(key), value, field=key)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
        return result
    if isinstance(patch, list) and isinstance(target, list) and field in MERGE_KEYS:
        return _merge_list(target, patch, MERGE_KEYS[field])
    return copy.deepcopy(patch)


def _merge_list(target: list[Any], patch: list[Any], keys: tuple[str, ...]) -> list[Any]:
    items = [i for i in patch if isinstance(i, dict)]
    key = next(
        (k for k in keys if items and all(k in i for i in items if i.get("$patch") != "replace")),
        None,
    )
    if key is None or len(items) != len(patch):
        return copy.deepcopy(patch)
    if any(i.get("$patch") == "replace" for i in items):
        return [
            {k: v for k, v in i.items() if k != "$patch"}
            for i in items
            if i.get("$patch") == "replace"
        ]
    result = copy.deepcopy(target)
    for item in items:
        position = next(
            (n for n, t in enumerate(result) if isinstance(t, dict) and t.get(key) == item[key]),
            None,
        )
        if item.get("$patch") == "delete":
            if position is not None:
                del result[position]
            continue
        if position is None:
            result.append(strategic_merge({}, item))
        else:
            result[position] = strategic_merge(result[position], item)
    return result


def json_patch(target: Manifest, operations: list[Any]) -> Manifest:
    """RFC 6902 JSON Patch (add, remove, replace, move, copy, test)."""
    doc: Any = copy.deepcopy(target)
    for number, op in enumerate(operations, start=1):
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise PatchError(f"JSON Patch operation {number} needs 'op' and 'path'")
        kind, path = op["op"], str(op["path"])
        try:
            if kind == "add":
                doc = _add(doc, path, copy.deepcopy(op.get("value")))
            elif kind == "remove":
                doc, _ = _remove(doc, path)
            elif kind == "replace":
                doc, _ = _remove(doc, path)
                doc = _add(doc, path, copy.deepcopy(op.get("value")))
            elif kind == "move":
                doc, value = _remove(doc, str(op["from"]))
                doc = _add(doc, path, value)
            elif kind == "copy":
                doc = _add(doc, path, copy.deepcopy(_get(doc, str(op["from"]))))
            elif kind == "test":
                if _get(doc, path) != op.get("value"):
                    raise PatchError(f"test failed at {path}")
            else:
                raise PatchError(f"unknown op {kind!r}")
        except (KeyError, IndexError, TypeError, ValueError) as err:
            if isinstance(err, PatchError):
                raise PatchError(f"JSON Patch operation {number} ({kind} {path}): {err}") from err
            raise PatchError(
                f"JSON Patch operation {number} ({kind} {path}): no such path"
            ) from err
    if not isinstance(doc, dict):
        raise PatchError("the JSON Patch did not produce an object")
    return doc


def _tokens(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"JSON pointer {path!r} must start with '/'")
    return [t.replace("~1", "/").replace("~0", "~") for t in path[1:].split("/")]


def _get(doc: Any, path: str) -> Any:
    for token in _tokens(path):
        doc = doc[int(token)] if isinstance(doc, list) else doc[token]
    return doc


def _add(doc: Any, path: str, value: Any) -> Any:
    tokens = _tokens(path)
    if not tokens:
        return value
    parent = (
        _get(doc, "/" + "/".join(t.replace("~", "~0").replace("/", "~1") for t in tokens[:-1]))
        if len(tokens) > 1
        else doc
    )
    last = tokens[-1]
    if isinstance(parent, list):
        if last == "-":
            parent.append(value)
        else:
            index = int(last)
            if not 0 <= index <= len(parent):
                raise IndexError(index)
            parent.insert(index, value)
    elif isinstance(parent, dict):
        parent[last] = value
    else:
        raise TypeError("parent is not a container")
    return doc


def _remove(doc: Any, path: str) -> tuple[Any, Any]:
    tokens = _tokens(path)
    if not tokens:
        raise PatchError("cannot remove the whole document")
    parent = (
        _get(doc, "/" + "/".join(t.replace("~", "~0").replace("/", "~1") for t in tokens[:-1]))
        if len(tokens) > 1
        else doc
    )
    last = tokens[-1]
    if isinstance(parent, list):
        value = parent.pop(int(last))
    elif isinstance(parent, dict):
        value = parent.pop(last)
    else:
        raise TypeError("parent is not a container")
    return doc, value
