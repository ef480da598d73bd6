"""Guard rails an operator sets: where apps may write, what they may read from a cluster.

Pure. A ``Policy`` belongs to a cluster, a cluster group or a repository and is
set by the operator (``appflow policy set``), never by a repository's own files.
Every policy that applies to an app on a cluster holds at once:

- ``namespaces``: the namespaces (shell-style patterns, ``team-a-*``) the app's
  namespaced objects may be in. A Namespace object counts as writing to the
  namespace it names. ``None`` is no restriction.
- ``cluster_scoped``: whether the app may create cluster-scoped objects other
  than Namespaces (a ClusterRoleBinding to cluster-admin is one).
- ``read_namespaces``: what an app may read from the cluster besides its own
  namespace, through a chart's lookup or fleet.yaml's ``valuesFrom`` (``*``:
  everything). Every applicable policy's namespaces add up; by default an app
  reads only its own namespace.
- ``helm_lookup``: whether charts may render against the cluster (``helm.lookup``).
  It needs at least one applicable policy saying yes and none saying no; by
  default nobody says yes, so lookup is off.
- ``helm_release``: whether apps may be installed as Helm releases
  (``helm.mode: release``). Helm then runs against the cluster with appflow's
  credentials: the chart's hooks run and its lookups read anything, which no
  view can confine. Allowed like lookup: one yes, no no.

With no policy, apps may write anywhere (as before guard rails existed), and
charts may neither look anything up nor be installed as releases.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, get_args

from appflow.errors import ConfigError, Where
from appflow.model.objects import Manifest, ObjectRef
from appflow.model.records import utc_now
from appflow.model.targeting import ClusterGroup, selector_matches

PolicyScope = Literal["cluster", "group", "repo"]
POLICY_SCOPES: tuple[str, ...] = get_args(PolicyScope)
ANY_NAMESPACE = "*"

_PATTERN = re.compile(r"^[a-z0-9*?\[\]-]{1,63}$")


@dataclass(frozen=True, kw_only=True)
class Policy:
    """The guard rails of one cluster, cluster group or repository."""

    scope: PolicyScope
    name: str
    namespaces: tuple[str, ...] | None = None
    """Namespace patterns apps may write to; None: any namespace."""
    cluster_scoped: bool = True
    """Whether apps may create cluster-scoped objects (Namespaces are judged by ``namespaces``)."""
    helm_lookup: bool | None = None
    """True allows charts' lookup, False forbids it, None leaves it to other policies."""
    read_namespaces: tuple[str, ...] = ()
    """Namespaces apps may read (lookup, valuesFrom) besides their own; ``*`` is everything."""
    helm_release: bool | None = None
    """True allows helm.mode release, False forbids it, None leaves it to other policies."""
    updated_at: datetime = field(default_factory=utc_now)

    def __post_init__(self) -> None:
        if self.scope not in POLICY_SCOPES:
            raise ConfigError(
                f"{self.scope!r} is not one of {', '.join(POLICY_SCOPES)}",
                where=Where(field="scope"),
            )
        if not self.name or self.name != self.name.strip():
            raise ConfigError(f"policy name {self.name!r} is empty or has surrounding spaces")
        for pattern in (*(self.namespaces or ()), *self.read_namespaces):
            if not _PATTERN.match(pattern):
                raise ConfigError(
                    f"{pattern!r} is not a namespace or a namespace pattern",
                    hint="namespaces are lowercase letters, digits and '-'; '*' matches any run",
                )

    @property
    def label(self) -> str:
        """How errors name this policy: 'policy of cluster berlin-1'."""
        return f"policy of {self.scope} {self.name}"

    def describe(self) -> str:
        """One line: what this policy allows."""
        parts = [
            "namespaces " + (", ".join(self.namespaces) if self.namespaces is not None else "any"),
            "cluster-scoped objects " + ("allowed" if self.cluster_scoped else "refused"),
        ]
        if self.read_namespaces:
            parts.append(f"may also read namespaces {', '.join(self.read_namespaces)}")
        if self.helm_lookup is not None:
            parts.append("helm lookup " + ("allowed" if self.helm_lookup else "forbidden"))
        if self.helm_release is not None:
            parts.append("helm releases " + ("allowed" if self.helm_release else "forbidden"))
        return "; ".join(parts)


def applicable_policies(
    policies: Iterable[Policy],
    *,
    cluster: str,
    cluster_labels: Mapping[str, str],
    groups: Mapping[str, ClusterGroup],
    repo: str | None,
) -> list[Policy]:
    """The policies that hold for an app of REPO on CLUSTER: the cluster's, its groups', the repo's."""
    chosen = []
    for policy in policies:
        if policy.scope == "cluster":
            applies = policy.name == cluster
        elif policy.scope == "group":
            group = groups.get(policy.name)
            applies = group is not None and selector_matches(group.selector, cluster_labels)
        else:
            applies = repo is not None and policy.name == repo
        if applies:
            chosen.append(policy)
    return chosen


@dataclass(frozen=True, kw_only=True)
class Violation:
    """One object that a policy does not allow, and the rule it breaks."""

    object: str
    policy: str
    rule: Literal["namespaces", "cluster-scoped"]
    message: str

    def __str__(self) -> str:
        return f"{self.object}: {self.message} ({self.policy}, rule {self.rule})"


def guard_rail_violations(
    objects: Iterable[Manifest],
    policies: Sequence[Policy],
    *,
    is_namespaced: Callable[[Manifest], bool],
) -> list[Violation]:
    """Every object of OBJECTS that one of POLICIES does not allow, with the rule it breaks.

    IS_NAMESPACED says whether an object's kind is namespaced (the cluster's
    discovery knows). A namespaced object without a namespace goes to ``default``.
    """
    restricting = [p for p in policies if p.namespaces is not None or not p.cluster_scoped]
    if not restricting:
        return []
    found: list[Violation] = []
    for obj in objects:
        ref = ObjectRef.of(obj)
        if ref.kind == "Namespace" and ref.group == "":
            found.extend(_namespace_rule(str(ref), ref.name, restricting))
        elif is_namespaced(obj):
            found.extend(_namespace_rule(str(ref), ref.namespace or "default", restricting))
        else:
            found.extend(
                Violation(
                    object=str(ref),
                    policy=p.label,
                    rule="cluster-scoped",
                    message="is cluster-scoped, and cluster-scoped objects are not allowed",
                )
                for p in restricting
                if not p.cluster_scoped
            )
    return found


def _namespace_rule(what: str, namespace: str, policies: Sequence[Policy]) -> Iterable[Violation]:
    for policy in policies:
        if policy.namespaces is not None and not namespace_allowed(namespace, policy.namespaces):
            yield Violation(
                object=what,
                policy=policy.label,
                rule="namespaces",
                message=f"writes to namespace {namespace!r}, which is not among the allowed "
                f"namespaces ({', '.join(policy.namespaces) or 'none'})",
            )


def namespace_allowed(namespace: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(namespace, p) for p in patterns)


@dataclass(frozen=True, kw_only=True)
class LookupGrant:
    """Whether a chart may use helm's lookup on a cluster, and what it may read."""

    allowed: bool
    reason: str
    """Why not (when not allowed), or which policies allow it."""
    namespaces: frozenset[str] = frozenset()
    """Namespaces lookups may read; ``*`` means all, and cluster-scoped objects too."""

    @property
    def any_namespace(self) -> bool:
        return ANY_NAMESPACE in self.namespaces


def lookup_grant(policies: Sequence[Policy], *, app_namespace: str) -> LookupGrant:
    """What POLICIES allow a chart of an app in APP_NAMESPACE to look up."""
    allowed, reason = _permission(policies, "helm_lookup", "helm lookup")
    if not allowed:
        return LookupGrant(allowed=False, reason=reason)
    namespaces = readable_namespaces(policies, app_namespace=app_namespace)
    return LookupGrant(allowed=True, reason=reason, namespaces=namespaces)


def readable_namespaces(policies: Sequence[Policy], *, app_namespace: str) -> frozenset[str]:
    """What an app in APP_NAMESPACE may read from the cluster: its own, and what POLICIES add."""
    return frozenset({app_namespace}.union(*(p.read_namespaces for p in policies)))


def release_permission(policies: Sequence[Policy]) -> tuple[bool, str]:
    """Whether POLICIES allow an app to be installed as a Helm release, and why (not)."""
    return _permission(policies, "helm_release", "helm releases")


def _permission(policies: Sequence[Policy], attribute: str, what: str) -> tuple[bool, str]:
    """An opt-in: one applicable policy says yes and none says no."""
    denying = [p.label for p in policies if getattr(p, attribute) is False]
    if denying:
        return False, f"the {denying[0]} forbids {what}"
    allowing = [p.label for p in policies if getattr(p, attribute) is True]
    if not allowing:
        return False, f"no policy of the cluster, its groups or the app's repository allows {what}"
    return True, "allowed by the " + ", ".join(allowing)
