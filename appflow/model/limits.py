"""Limits on what a repository may make appflow read and render, and the checks against them.

Pure: the limits are a frozen dataclass, read from a mapping of settings (the
operator's environment, see ``appflow.settings``); the checks look at text sizes
and at parsed YAML or JSON documents.

Why each limit exists:

- ``max_file_bytes``: a file of a repository (a manifest, a values file,
  ``appflow.yaml``) is read whole into memory.
- ``max_yaml_depth``: parsers, JSON encoders and appflow's own functions over
  objects recurse once per level; a document nested 50,000 levels deep ends in a
  RecursionError, and nothing Kubernetes accepts is nested more than a few dozen.
- ``max_yaml_nodes``: YAML aliases make a 300-byte document stand for millions
  of values (the "billion laughs"); they cost nothing to parse, but the first
  function that walks the document (a digest, the JSON sent to a cluster)
  expands them all. Values are counted as if every alias were expanded.
- ``max_object_bytes``: one object is one request to the API server, which
  refuses bodies over 3 MiB, and etcd refuses values over 1.5 MiB; a larger
  object is reported at render time, naming it, instead of as a failed request.
- ``max_render_bytes``: the whole desired state of one app on one cluster.
- ``render_cache_bytes``: the disk the render cache may use before it evicts
  the least recently used renders.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from appflow.errors import ConfigError, Where

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB


@dataclass(frozen=True, kw_only=True)
class Limits:
    """How much a repository may make appflow read, parse and render (see the module doc)."""

    max_file_bytes: int = 16 * MIB
    max_yaml_depth: int = 128
    max_yaml_nodes: int = 1_000_000
    max_object_bytes: int = 1536 * KIB
    max_render_bytes: int = 64 * MIB
    render_cache_bytes: int = 512 * MIB

    def __post_init__(self) -> None:
        for item in fields(self):
            if getattr(self, item.name) <= 0:
                raise ConfigError(
                    f"the limit {item.name} must be positive", where=Where(field=item.name)
                )

    @classmethod
    def from_settings(cls, settings: Mapping[str, str], *, prefix: str = "APPFLOW_") -> Limits:
        """Limits from SETTINGS (e.g. the environment): ``APPFLOW_MAX_FILE_BYTES=8Mi`` and so on.

        Every field's upper-case name after PREFIX; sizes take Ki, Mi, Gi (and K, M, G)
        suffixes. Settings not given keep their defaults.
        """
        given: dict[str, int] = {}
        for item in fields(cls):
            name = prefix + item.name.upper()
            raw = settings.get(name)
            if raw is None or not raw.strip():
                continue
            given[item.name] = parse_size(raw, setting=name)
        return cls(**given)

    def setting_name(self, field_name: str) -> str:
        """The environment variable that sets FIELD_NAME (for hints)."""
        return "APPFLOW_" + field_name.upper()


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(Ki|Mi|Gi|K|M|G|B)?\s*$")
_UNITS = {None: 1, "B": 1, "K": 1000, "M": 1000**2, "G": 1000**3, "Ki": KIB, "Mi": MIB, "Gi": GIB}


def parse_size(text: str, *, setting: str) -> int:
    """'8Mi' -> 8388608, '1.5M' -> 1500000, '100' -> 100; ConfigError naming SETTING otherwise."""
    match = _SIZE.match(text)
    if match is None:
        raise ConfigError(
            f"{setting}={text!r} is not a number or a size",
            hint="write a whole number, optionally with Ki, Mi or Gi (e.g. 8Mi)",
        )
    value = int(float(match.group(1)) * _UNITS[match.group(2)])
    if value <= 0:
        raise ConfigError(f"{setting}={text!r} must be positive")
    return value


def human_size(size: int) -> str:
    """1572864 -> '1.5 MiB': sizes as error messages show them."""
    for unit, factor in (("GiB", GIB), ("MiB", MIB), ("KiB", KIB)):
        if size >= factor:
            return f"{size / factor:.1f} {unit}".replace(".0 ", " ")
    return f"{size} bytes"


def document_problem(data: Any, limits: Limits, *, aliases: bool = True) -> str | None:
    """Why the parsed document DATA is beyond LIMITS (nesting, values after aliases), or None.

    Walks the containers without recursion. A tree (no container reached twice)
    is measured in one pass; a container reached twice means YAML aliases, and
    the document is measured again counting every alias as expanded. ALIASES
    False says the text could hold none (JSON, or YAML without an anchor): then
    only the nesting is measured, three times faster, since a document without
    aliases holds no more values than its text (bounded by the size limits) has
    characters.
    """
    if not aliases:
        return _depth_problem(data, limits)
    seen: set[int] = set()
    values = 1
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        item, depth = stack.pop()
        if type(item) not in _CONTAINERS:
            continue
        if id(item) in seen:
            return _expanded_problem(data, limits)
        seen.add(id(item))
        if depth > limits.max_yaml_depth:
            return _too_deep(limits)
        children = item.values() if type(item) is dict else item
        values += len(item) * (2 if type(item) is dict else 1)
        stack.extend((child, depth + 1) for child in children if type(child) in _CONTAINERS)
    if values > limits.max_yaml_nodes:
        return _too_many(limits)
    return None


_CONTAINERS = (dict, list)
"""What parsers of YAML and JSON build containers of (exactly these types)."""


def _depth_problem(data: Any, limits: Limits) -> str | None:
    stack: list[tuple[Any, int]] = [(data, 1)] if type(data) in _CONTAINERS else []
    pop, push = stack.pop, stack.append
    while stack:
        item, depth = pop()
        if depth > limits.max_yaml_depth:
            return _too_deep(limits)
        for child in item.values() if type(item) is dict else item:
            if type(child) in _CONTAINERS:
                push((child, depth + 1))
    return None


def _too_deep(limits: Limits) -> str:
    return f"it is nested more than {limits.max_yaml_depth} levels deep"


def _too_many(limits: Limits) -> str:
    return f"it holds more than {limits.max_yaml_nodes} values once its YAML aliases are expanded"


def _expanded_problem(data: Any, limits: Limits) -> str | None:
    """document_problem() for a document whose containers are shared (through aliases).

    Post-order over distinct containers, each measured once: (values when
    expanded, depth). Stops as soon as a count passes the limit, so a document
    that would expand to billions of values costs only its distinct containers.
    """
    measured: dict[int, tuple[int, int]] = {}
    in_progress: set[int] = set()
    stack: list[tuple[Any, bool]] = [(data, False)]
    while stack:
        item, children_done = stack.pop()
        key = id(item)
        if key in measured:
            continue
        children = [
            c for c in (item.values() if type(item) is dict else item) if type(c) in _CONTAINERS
        ]
        if not children_done:
            in_progress.add(key)
            stack.append((item, True))
            for child in children:
                if id(child) in in_progress:
                    return "it contains itself through a YAML alias"
                if id(child) not in measured:
                    stack.append((child, False))
            continue
        in_progress.discard(key)
        # Keys and items count one each; a container item counts as what it holds.
        count = len(item) * (2 if type(item) is dict else 1)
        depth = 1
        for child in children:
            child_count, child_depth = measured[id(child)]
            count += child_count
            depth = max(depth, child_depth + 1)
        if depth > limits.max_yaml_depth:
            return _too_deep(limits)
        if count >= limits.max_yaml_nodes:
            return _too_many(limits)
        measured[key] = (count, depth)
    return None
