"""Which clusters an AppFlow goes to, and which target customization each one gets.

Pure. Matching follows Fleet's documented rule: within one target every
criterion that is set must hold (clusterName AND clusterGroup AND
clusterSelector); an empty selector ``{}`` matches every cluster. An app's
targets are a union; an app without targets goes to every cluster. Target
customizations are tried in order and the first match wins; one that says
doNotDeploy takes its clusters out of the app's targets.

Label selectors follow Kubernetes: ``NotIn`` and ``!=`` also match clusters
that lack the label. ``parse_selector`` reads kubectl's ``-l`` syntax.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from appflow.errors import ConfigError, Where
from appflow.model.appdef import (
    AppDefinition,
    ClusterTarget,
    LabelRequirement,
    LabelSelector,
    Operator,
    TargetCustomization,
)

_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_KEY = re.compile(rf"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?{_NAME}$")
_VALUE = re.compile(rf"^({_NAME})?$")
_SET = re.compile(r"^(?P<key>\S+)\s+(?P<op>in|notin)\s*\((?P<values>[^()]*)\)$")
_EQUALITY = re.compile(r"^(?P<key>[^!=\s]+)\s*(?P<op>==|=|!=)\s*(?P<value>[^=\s]*)$")


@dataclass(frozen=True)
class ClusterInfo:
    """What targeting needs to know of a Cluster."""

    name: str
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ClusterGroup:
    """A named label selector over clusters."""

    name: str
    selector: LabelSelector


def selector_matches(selector: LabelSelector, labels: Mapping[str, str]) -> bool:
    """Whether ``labels`` satisfy every part of ``selector``."""
    for key, value in selector.match_labels.items():
        if labels.get(key) != value:
            return False
    return all(_requirement_matches(req, labels) for req in selector.match_expressions)


def _requirement_matches(req: LabelRequirement, labels: Mapping[str, str]) -> bool:
    if req.operator == "Exists":
        return req.key in labels
    if req.operator == "DoesNotExist":
        return req.key not in labels
    if req.operator == "In":
        return req.key in labels and labels[req.key] in req.values
    return req.key not in labels or labels[req.key] not in req.values


def target_matches(
    target: ClusterTarget, cluster: ClusterInfo, groups: Mapping[str, ClusterGroup]
) -> bool:
    """Whether every criterion set on ``target`` holds for ``cluster``.

    A clusterGroup that does not exist matches nothing; ``unmatched_targets``
    lets the caller warn about it.
    """
    if target.cluster_name is not None and target.cluster_name != cluster.name:
        return False
    if target.cluster_group is not None:
        group = groups.get(target.cluster_group)
        if group is None or not selector_matches(group.selector, cluster.labels):
            return False
    return target.selector is None or selector_matches(target.selector, cluster.labels)


def _by_name(
    groups: Sequence[ClusterGroup] | Mapping[str, ClusterGroup],
) -> Mapping[str, ClusterGroup]:
    if isinstance(groups, Mapping):
        return groups
    return {group.name: group for group in groups}


def select_clusters(
    app: AppDefinition,
    clusters: Sequence[ClusterInfo],
    groups: Sequence[ClusterGroup] | Mapping[str, ClusterGroup] = (),
) -> list[ClusterInfo]:
    """The clusters ``app`` goes to, in the order given: any target matching; all when none.

    A cluster whose first matching target customization says doNotDeploy is
    left out (Fleet: "resources will not be deployed in the matched clusters").
    """
    by_name = _by_name(groups)
    chosen = [
        c
        for c in clusters
        if not app.targets or any(target_matches(t, c, by_name) for t in app.targets)
    ]
    if not any(custom.do_not_deploy for custom in app.customizations):
        return chosen
    return [c for c in chosen if not _held_back(app, c, by_name)]


def _held_back(
    app: AppDefinition, cluster: ClusterInfo, groups: Mapping[str, ClusterGroup]
) -> bool:
    custom = customization_for(app, cluster, groups)
    return custom is not None and custom.do_not_deploy


def customization_for(
    app: AppDefinition,
    cluster: ClusterInfo,
    groups: Sequence[ClusterGroup] | Mapping[str, ClusterGroup] = (),
) -> TargetCustomization | None:
    """The first target customization that matches ``cluster``, as Fleet documents."""
    by_name = _by_name(groups)
    for customization in app.customizations:
        if target_matches(customization.target, cluster, by_name):
            return customization
    return None


def unmatched_targets(
    app: AppDefinition,
    clusters: Sequence[ClusterInfo],
    groups: Sequence[ClusterGroup] | Mapping[str, ClusterGroup] = (),
) -> list[str]:
    """Names of targets that match no cluster (often a typo in a label or group name)."""
    by_name = _by_name(groups)
    return [
        target.name
        for target in app.targets
        if not any(target_matches(target, c, by_name) for c in clusters)
    ]


# --- kubectl selector syntax ----------------------------------------------------


def parse_selector(text: str) -> LabelSelector:
    """Read a kubectl-style selector: ``env=prod,region in (eu,us),!legacy,tier!=db``.

    ``k=v`` and ``k==v`` become matchLabels; ``k!=v`` is ``NotIn [v]``; ``k``
    is ``Exists``; ``!k`` is ``DoesNotExist``. An empty string matches everything.
    """
    labels: dict[str, str] = {}
    requirements: list[LabelRequirement] = []
    for token in _split_top_level(text):
        stripped = token.strip()
        if not stripped:
            if text.strip():
                raise _selector_error(text, token, "empty requirement (two commas in a row?)")
            continue
        if set_match := _SET.match(stripped):
            key = _check_key(text, stripped, set_match["key"])
            values = tuple(v.strip() for v in set_match["values"].split(","))
            if not values or any(not v for v in values):
                raise _selector_error(text, stripped, "the value list must not have empty entries")
            for value in values:
                _check_value(text, stripped, value)
            operator: Operator = "In" if set_match["op"] == "in" else "NotIn"
            requirements.append(LabelRequirement(key=key, operator=operator, values=values))
        elif eq_match := _EQUALITY.match(stripped):
            key = _check_key(text, stripped, eq_match["key"])
            value = _check_value(text, stripped, eq_match["value"])
            if eq_match["op"] == "!=":
                requirements.append(LabelRequirement(key=key, operator="NotIn", values=(value,)))
            elif key in labels and labels[key] != value:
                raise _selector_error(
                    text, stripped, f"label {key} is already required to be {labels[key]}"
                )
            else:
                labels[key] = value
        elif stripped.startswith("!"):
            key = _check_key(text, stripped, stripped[1:].strip())
            requirements.append(LabelRequirement(key=key, operator="DoesNotExist"))
        else:
            key = _check_key(text, stripped, stripped)
            requirements.append(LabelRequirement(key=key, operator="Exists"))
    return LabelSelector(match_labels=labels, match_expressions=tuple(requirements))


def format_selector(selector: LabelSelector) -> str:
    """The kubectl form of ``selector``; ``parse_selector`` reads it back to an equal value."""
    parts = [f"{key}={value}" for key, value in selector.match_labels.items()]
    for req in selector.match_expressions:
        if req.operator == "Exists":
            parts.append(req.key)
        elif req.operator == "DoesNotExist":
            parts.append(f"!{req.key}")
        else:
            op = "in" if req.operator == "In" else "notin"
            parts.append(f"{req.key} {op} ({','.join(req.values)})")
    return ",".join(parts)


def _split_top_level(text: str) -> list[str]:
    """Split on commas outside parentheses."""
    tokens: list[str] = []
    depth = 0
    current = ""
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                raise _selector_error(text, current + char, "unbalanced ')'")
        if char == "," and depth == 0:
            tokens.append(current)
            current = ""
        else:
            current += char
    if depth:
        raise _selector_error(text, current, "missing ')'")
    tokens.append(current)
    return tokens


def _check_key(text: str, token: str, key: str) -> str:
    if not _KEY.match(key):
        raise _selector_error(
            text,
            token,
            f"{key!r} is not a label key (letters, digits, '-', '_', '.', optional prefix/)",
        )
    return key


def _check_value(text: str, token: str, value: str) -> str:
    if not _VALUE.match(value):
        raise _selector_error(text, token, f"{value!r} is not a label value")
    return value


def _selector_error(text: str, token: str, problem: str) -> ConfigError:
    return ConfigError(
        f"bad selector token {token.strip()!r} in {text!r}: {problem}",
        where=Where(field="selector"),
        hint="write it as kubectl does: env=prod,region in (eu,us),!legacy,tier!=db",
    )
