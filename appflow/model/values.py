"""Helm values for one cluster: layered merge and Fleet-style ``${ }`` templates.

Pure. Precedence, lowest first: the chart's own values.yaml < helm.valuesFiles
(in order) < inline helm.values < the target customization's valuesFiles and
values. ``merge_values`` merges maps recursively, replaces lists and scalars,
and deletes a key whose later value is ``null``, as Helm does for overrides.

Templates follow Fleet's fleet.yaml docs: ``${ }`` delimiters around a Go
template pipeline, in keys and in string values of ``helm.values``. Supported:

* fields ``.ClusterName``, ``.ClusterNamespace``, ``.ClusterLabels.KEY``,
  ``.ClusterAnnotations.KEY``, and the maps ``.ClusterLabels`` and
  ``.ClusterAnnotations`` as arguments;
* functions ``index MAP "key"`` and sprig's ``get MAP "key"``, ``default``,
  ``upper``, ``lower``, ``trim``, ``quote``; ``|`` passes the previous result as
  the last argument, as in Go.

appflow is stricter than Go templates on purpose: a label the cluster does not
have is an error in every form (a silently empty value deploys a wrong config
to an edge site nobody looks at). Pipe into ``default "x"`` to make it optional.
``.ClusterValues`` (Fleet's per-cluster templateValues) is not supported.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from appflow.errors import ConfigError, Where

_TEMPLATE = re.compile(r"\$\{(.*?)\}", re.DOTALL)
_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>"(?:[^"\\]|\\.)*"|`[^`]*`)
      | (?P<pipe>\|)
      | (?P<field>(?:\.[A-Za-z_][A-Za-z0-9_]*)+)
      | (?P<number>-?[0-9]+)
      | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
      | (?P<other>\S+)
    )""",
    re.VERBOSE,
)


def merge_values(*layers: Mapping[str, Any] | None) -> dict[str, Any]:
    """Deep-merge values layers; later layers win. Inputs are not modified.

    Maps merge key by key; lists and scalars are replaced whole; a ``None``
    value removes the key (Helm's way to unset a chart default).
    """
    merged: dict[str, Any] = {}
    for layer in layers:
        if layer:
            _merge_into(merged, layer)
    return merged


def _merge_into(base: dict[str, Any], layer: Mapping[str, Any]) -> None:
    for key, value in layer.items():
        if value is None:
            base.pop(key, None)
        elif isinstance(value, Mapping):
            current = base.get(key)
            if not isinstance(current, dict):
                current = {}
                base[key] = current
            _merge_into(current, value)
        else:
            base[key] = copy.deepcopy(value)


@dataclass(frozen=True)
class _Missing:
    """A label or annotation the cluster does not have; only ``default`` accepts it."""

    what: str
    key: str


@dataclass(frozen=True)
class _Context:
    cluster_name: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    namespace: str | None


class _TemplateError(Exception):
    pass


def render_templated_values(
    values: Mapping[str, Any],
    *,
    cluster_name: str,
    cluster_labels: Mapping[str, str],
    cluster_annotations: Mapping[str, str] | None = None,
    cluster_namespace: str | None = None,
    field_prefix: str = "helm.values",
) -> dict[str, Any]:
    """Return ``values`` with every ``${ ... }`` in keys and strings rendered for one cluster.

    Raises ConfigError naming the cluster, the value path (``field_prefix``
    plus the keys leading to it) and the missing label or bad expression.
    """
    ctx = _Context(
        cluster_name=cluster_name,
        labels=cluster_labels,
        annotations=cluster_annotations or {},
        namespace=cluster_namespace,
    )
    rendered = _render_node(values, ctx, field_prefix)
    assert isinstance(rendered, dict)
    return rendered


def has_templates(values: Any) -> bool:
    """Whether any key or string in ``values`` holds a ``${ }`` template."""
    if isinstance(values, Mapping):
        return any(has_templates(k) or has_templates(v) for k, v in values.items())
    if isinstance(values, list):
        return any(has_templates(v) for v in values)
    return isinstance(values, str) and "${" in values


def _render_node(node: Any, ctx: _Context, path: str) -> Any:
    if isinstance(node, Mapping):
        out: dict[str, Any] = {}
        for key, value in node.items():
            child = f"{path}.{key}" if path else str(key)
            new_key = _render_string(key, ctx, child) if isinstance(key, str) else key
            out[new_key] = _render_node(value, ctx, child)
        return out
    if isinstance(node, list):
        return [_render_node(item, ctx, f"{path}[{i}]") for i, item in enumerate(node)]
    if isinstance(node, str):
        return _render_string(node, ctx, path)
    return node


def _render_string(text: str, ctx: _Context, path: str) -> str:
    if "${" not in text:
        return text

    def substitute(match: re.Match[str]) -> str:
        expression = match.group(1).strip()
        try:
            result = _evaluate(expression, ctx)
            if isinstance(result, _Missing):
                raise _MissingUsed(result)
            return _to_text(result)
        except _MissingUsed as used:
            missing = used.missing
            raise ConfigError(
                f"cluster {ctx.cluster_name} has no {missing.what} {missing.key!r} "
                f"(used by ${{ {expression} }})",
                where=Where(cluster=ctx.cluster_name, field=path),
                hint=f'add the {missing.what} to the cluster, or append | default "VALUE"',
            ) from None
        except _TemplateError as err:
            raise ConfigError(
                f"template ${{ {expression} }}: {err}",
                where=Where(cluster=ctx.cluster_name, field=path),
            ) from None

    return _TEMPLATE.sub(substitute, text)


def _to_text(value: Any) -> str:
    if isinstance(value, Mapping | _NamedMap):
        raise _TemplateError("a whole map cannot be placed in a string")
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _tokens(expression: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    for match in _TOKEN.finditer(expression):
        kind = match.lastgroup
        if kind is None:
            continue
        tokens.append((kind, match.group(kind)))
    return tokens


def _evaluate(expression: str, ctx: _Context) -> Any:
    tokens = _tokens(expression)
    if not tokens:
        raise _TemplateError("empty expression")
    commands: list[list[tuple[str, str]]] = [[]]
    for kind, text in tokens:
        if kind == "other":
            raise _TemplateError(f"cannot read {text!r}")
        if kind == "pipe":
            commands.append([])
        else:
            commands[-1].append((kind, text))
    result: Any = None
    for position, command in enumerate(commands):
        if not command:
            raise _TemplateError("empty command in pipeline")
        piped = position > 0
        result = _run_command(command, ctx, piped=piped, previous=result)
    return result


def _run_command(
    command: list[tuple[str, str]], ctx: _Context, *, piped: bool, previous: Any
) -> Any:
    head_kind, head = command[0]
    if head_kind != "ident":
        if len(command) > 1 or piped:
            raise _TemplateError(f"{head!r} is not a function")
        return _operand(head_kind, head, ctx)
    function = _FUNCTIONS.get(head)
    if function is None:
        raise _TemplateError(
            f"function {head!r} is not supported (supported: {', '.join(sorted(_FUNCTIONS))})"
        )
    args = [_operand(kind, text, ctx) for kind, text in command[1:]]
    if piped:
        args.append(previous)
    return function(args)


def _operand(kind: str, text: str, ctx: _Context) -> Any:
    if kind == "string":
        if text.startswith("`"):
            return text[1:-1]
        return bytes(text[1:-1], "utf-8").decode("unicode_escape")
    if kind == "number":
        return int(text)
    if kind == "field":
        return _field(text, ctx)
    raise _TemplateError(f"{text!r} must be called as a function, not used as a value")


def _field(text: str, ctx: _Context) -> Any:
    parts = text[1:].split(".")
    root, rest = parts[0], parts[1:]
    if root == "ClusterName" and not rest:
        return ctx.cluster_name
    if root == "ClusterNamespace" and not rest:
        if ctx.namespace is None:
            raise _TemplateError(".ClusterNamespace is not known for this cluster")
        return ctx.namespace
    if root in ("ClusterLabels", "ClusterAnnotations"):
        source = ctx.labels if root == "ClusterLabels" else ctx.annotations
        what = "label" if root == "ClusterLabels" else "annotation"
        if not rest:
            return _NamedMap(what=what, data=source)
        if len(rest) > 1:
            raise _TemplateError(f"{text} goes deeper than a {what}")
        key = rest[0]
        return source[key] if key in source else _Missing(what=what, key=key)
    if root == "ClusterValues":
        raise _TemplateError(
            ".ClusterValues (Fleet templateValues) is not supported; use cluster labels"
        )
    raise _TemplateError(
        f"unknown field {text} (known: .ClusterName, .ClusterNamespace, "
        ".ClusterLabels, .ClusterAnnotations)"
    )


@dataclass(frozen=True)
class _NamedMap:
    what: str
    data: Mapping[str, str]


def _arity(name: str, args: list[Any], count: int) -> None:
    if len(args) != count:
        raise _TemplateError(f"{name} takes {count} argument(s), got {len(args)}")


class _MissingUsed(Exception):
    """A function other than default was given a missing label: reported like any missing label."""

    def __init__(self, missing: _Missing) -> None:
        super().__init__(missing.key)
        self.missing = missing


def _present(value: Any) -> Any:
    if isinstance(value, _Missing):
        raise _MissingUsed(value)
    return value


def _lookup(name: str) -> Callable[[list[Any]], Any]:
    def lookup(args: list[Any]) -> Any:
        _arity(name, args, 2)
        table, key = args
        if not isinstance(table, _NamedMap):
            raise _TemplateError(f"{name} needs .ClusterLabels or .ClusterAnnotations first")
        key = str(_present(key))
        return table.data[key] if key in table.data else _Missing(what=table.what, key=key)

    return lookup


def _default(args: list[Any]) -> Any:
    _arity("default", args, 2)
    fallback, value = args
    # sprig: default applies when the value is empty; here also when it is missing.
    if isinstance(value, _Missing) or value in ("", None, 0, False):
        return fallback
    return value


def _string_function(name: str, fn: Callable[[str], str]) -> Callable[[list[Any]], Any]:
    def apply(args: list[Any]) -> Any:
        _arity(name, args, 1)
        return fn(_to_text(_present(args[0])))

    return apply


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


_FUNCTIONS: dict[str, Callable[[list[Any]], Any]] = {
    "index": _lookup("index"),
    "get": _lookup("get"),
    "default": _default,
    "upper": _string_function("upper", str.upper),
    "lower": _string_function("lower", str.lower),
    "trim": _string_function("trim", str.strip),
    "quote": _string_function("quote", _quote),
}
