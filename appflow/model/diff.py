"""Comparing Kubernetes objects: the noise-free form, field paths that differ, and YAML diffs.

One normal form (:func:`normalize`) serves both for deciding whether an
object changed and for showing how, so that what ``appflow app diff`` prints
is exactly what the plan compared. It drops what the API server writes on
every object (resourceVersion, managedFields, status...) and would make every
object look changed.
"""

from __future__ import annotations

import difflib
import json
import re
from typing import Any

import yaml

from appflow.model.objects import Manifest, ObjectRef
from appflow.model.redact import Redactor

LAST_APPLIED_ANNOTATION = "kubectl.kubernetes.io/last-applied-configuration"

_SERVER_METADATA = (
    "managedFields",
    "resourceVersion",
    "uid",
    "generation",
    "creationTimestamp",
    "selfLink",
    "deletionGracePeriodSeconds",
)
_NOISE_ANNOTATIONS = (LAST_APPLIED_ANNOTATION,)
_TOP_KEYS = ("apiVersion", "kind", "metadata")
_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


def normalize(obj: Manifest) -> Manifest:
    """A copy of ``obj`` without server-written noise; ``obj`` is left untouched.

    Drops top-level ``status``; metadata ``managedFields``, ``resourceVersion``,
    ``uid``, ``generation``, ``creationTimestamp``, ``selfLink``,
    ``deletionGracePeriodSeconds``; the kubectl last-applied annotation; and
    labels or annotations maps left empty.
    """
    result: Manifest = {k: _copy(v) for k, v in obj.items() if k != "status"}
    meta = result.get("metadata")
    if isinstance(meta, dict):
        for key in _SERVER_METADATA:
            meta.pop(key, None)
        annotations = meta.get("annotations")
        if isinstance(annotations, dict):
            for key in _NOISE_ANNOTATIONS:
                annotations.pop(key, None)
        for key in ("annotations", "labels"):
            if key in meta and not meta[key]:
                del meta[key]
    return result


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def changed_paths(a: Any, b: Any) -> list[str]:
    """Field paths where ``a`` and ``b`` differ, e.g. ``spec.template.spec.containers[0].image``.

    A key present on one side only is reported once, without descending into
    it. Keys that are not plain identifiers are quoted:
    ``metadata.labels["app.kubernetes.io/name"]``. Compares as given; pass
    normalized objects to ignore server noise.
    """
    paths: list[str] = []
    _walk(a, b, "", paths)
    return paths


def _walk(a: Any, b: Any, path: str, out: list[str]) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=str):
            sub = _join(path, key)
            if key not in a or key not in b:
                out.append(sub)
            else:
                _walk(a[key], b[key], sub, out)
    elif isinstance(a, list) and isinstance(b, list):
        for index in range(max(len(a), len(b))):
            sub = f"{path}[{index}]"
            if index >= len(a) or index >= len(b):
                out.append(sub)
            else:
                _walk(a[index], b[index], sub, out)
    elif a != b or type(a) is not type(b):
        # type check: 1 == 1.0 == True in Python, but "replicas: true" is not "replicas: 1".
        out.append(path or ".")


def _join(path: str, key: Any) -> str:
    text = str(key)
    if _PLAIN_KEY.fullmatch(text):
        return f"{path}.{text}" if path else text
    return f"{path}[{json.dumps(text)}]"


def unified_diff(
    ref: ObjectRef,
    live: Manifest | None,
    desired: Manifest | None,
    *,
    context: int = 3,
    redactor: Redactor | None = None,
) -> str:
    """A unified YAML diff from ``live`` to ``desired``; empty when they normalize equal.

    "Equal" is what :func:`changed_paths` says: ``1`` and ``true`` differ here,
    although Python's ``==`` calls them equal.

    Headers are ``--- live/<ref>`` and ``+++ desired/<ref>``; an absent side is
    ``/dev/null``, as git shows it. Values of a Secret's ``data`` and
    ``stringData``, and every value ``redactor`` knows as secret, are never
    shown: each is replaced by ``<redacted digest:...>``, the same value by the
    same digest, so a changed value shows as a changed digest (see model.redact).
    """
    old = normalize(live) if live is not None else None
    new = normalize(desired) if desired is not None else None
    if old is None and new is None:
        return ""
    hide = (redactor or Redactor()).redact
    old = hide(old) if old is not None else None
    new = hide(new) if new is not None else None
    old_lines = _to_yaml(old).splitlines(keepends=True) if old is not None else []
    new_lines = _to_yaml(new).splitlines(keepends=True) if new is not None else []
    lines = difflib.unified_diff(
        old_lines,
        new_lines,
        fromfile=f"live/{ref}" if old is not None else "/dev/null",
        tofile=f"desired/{ref}" if new is not None else "/dev/null",
        n=context,
    )
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


class _DiffDumper(yaml.SafeDumper):
    """SafeDumper that prints multi-line strings as literal blocks, so embedded files diff by line."""


def _str_representer(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_DiffDumper.add_representer(str, _str_representer)


def _ordered(obj: Manifest) -> Manifest:
    """apiVersion, kind, metadata first (as people write them), then the rest sorted."""
    first = {k: obj[k] for k in _TOP_KEYS if k in obj}
    rest = {k: obj[k] for k in sorted(obj, key=str) if k not in _TOP_KEYS}
    return {**first, **rest}


def _sort_nested(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _sort_nested(value[k]) for k in sorted(value, key=str)}
    if isinstance(value, list):
        return [_sort_nested(v) for v in value]
    return value


def _to_yaml(obj: Manifest) -> str:
    top = _ordered({k: _sort_nested(v) for k, v in obj.items()})
    return yaml.dump(
        top, Dumper=_DiffDumper, sort_keys=False, default_flow_style=False, allow_unicode=True
    )
