"""`appflow policy`: the guard rails an operator sets per cluster, cluster group or repository.

What the rules mean is ``appflow.model.policy``'s to say; this module only
reads flags, checks that the cluster, group or repository exists, and keeps
the policy in the store. Without a policy everything is as before guard rails
existed: apps write where they like, and charts may not use helm's lookup.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, cast

import click

from appflow.cli.common import store_session
from appflow.cli.output import console, emit, output_option
from appflow.errors import NotFoundError
from appflow.model.policy import POLICY_SCOPES, Policy, PolicyScope
from appflow.store import Store

SCOPE = click.Choice(POLICY_SCOPES)
CHOICES = {"allow": True, "forbid": False, "inherit": None}
_CHOICE_OF = {v: k for k, v in CHOICES.items()}


def _check_exists(store: Store, scope: str, name: str) -> None:
    # A policy for a name that exists nowhere is most likely a typo, and would guard nothing.
    if scope == "cluster":
        store.get_cluster(name)
    elif scope == "group":
        store.get_group(name)
    else:
        store.get_repo(name)


def policy_data(p: Policy) -> dict[str, Any]:
    return {
        "scope": p.scope,
        "name": p.name,
        "namespaces": list(p.namespaces) if p.namespaces is not None else None,
        "clusterScoped": p.cluster_scoped,
        "helmLookup": _CHOICE_OF[p.helm_lookup],
        "readNamespaces": list(p.read_namespaces),
        "helmRelease": _CHOICE_OF[p.helm_release],
        "updated": p.updated_at.isoformat(timespec="seconds"),
    }


def _rows(data: list[dict[str, Any]]) -> list[list[str]]:
    rows = []
    for d in data:
        namespaces = d["namespaces"]
        rows.append(
            [
                d["scope"],
                d["name"],
                "any" if namespaces is None else ",".join(namespaces) or "none",
                "allowed" if d["clusterScoped"] else "refused",
                ",".join(d["readNamespaces"]) or "-",
                d["helmLookup"],
                d["helmRelease"],
            ]
        )
    return rows


COLUMNS = (
    "SCOPE",
    "NAME",
    "NAMESPACES",
    "CLUSTER-SCOPED",
    "ALSO READS",
    "HELM LOOKUP",
    "HELM RELEASES",
)


@click.group()
def policy() -> None:
    """Guard rails per cluster, group or repository: where apps may write, helm lookup."""


@policy.command("set")
@click.argument("scope", type=SCOPE)
@click.argument("name")
@click.option(
    "-n",
    "--namespace",
    "namespaces",
    multiple=True,
    help="A namespace (or pattern, e.g. 'team-a-*') apps may write to; repeatable. "
    "Replaces the list.",
)
@click.option("--any-namespace", is_flag=True, help="Lift the namespace restriction.")
@click.option(
    "--cluster-scoped/--no-cluster-scoped",
    "cluster_scoped",
    default=None,
    help="Whether apps may create cluster-scoped objects (ClusterRoles, CRDs...).",
)
@click.option(
    "--helm-lookup",
    type=click.Choice(list(CHOICES)),
    help="allow: charts may use lookup (reading the app's namespace and --read-namespace); "
    "forbid: they may not, whatever other policies say; inherit: leave it to other policies.",
)
@click.option(
    "--read-namespace",
    "read_namespaces",
    multiple=True,
    help="Another namespace apps may read from the cluster, by helm lookup or valuesFrom "
    "('*': everything); repeatable. Replaces the list.",
)
@click.option(
    "--helm-release",
    type=click.Choice(list(CHOICES)),
    help="allow: apps may be installed as Helm releases (helm.mode: release), which runs helm "
    "against the cluster with appflow's credentials (hooks, unconfined lookups); forbid; inherit.",
)
@output_option
def policy_set(
    scope: str,
    name: str,
    namespaces: tuple[str, ...],
    any_namespace: bool,
    cluster_scoped: bool | None,
    helm_lookup: str | None,
    read_namespaces: tuple[str, ...],
    helm_release: str | None,
    output: str,
) -> None:
    """Set the policy of a cluster, group or repo NAME; options not given keep their value.

    Every policy that applies to an app on a cluster holds (the cluster's, its
    groups', the app's repository's). Syncs that break one are refused on every
    target before anything is written, naming the policy and the rule.
    """
    if namespaces and any_namespace:
        raise click.UsageError("give --namespace or --any-namespace, not both")
    with store_session() as store:
        _check_exists(store, scope, name)
        try:
            current = store.get_policy(cast(PolicyScope, scope), name)
        except NotFoundError:
            current = Policy(scope=cast(PolicyScope, scope), name=name)
        changed = current
        if namespaces:
            changed = replace(changed, namespaces=tuple(namespaces))
        if any_namespace:
            changed = replace(changed, namespaces=None)
        if cluster_scoped is not None:
            changed = replace(changed, cluster_scoped=cluster_scoped)
        if helm_lookup is not None:
            changed = replace(changed, helm_lookup=CHOICES[helm_lookup])
        if helm_release is not None:
            changed = replace(changed, helm_release=CHOICES[helm_release])
        if read_namespaces:
            changed = replace(changed, read_namespaces=tuple(read_namespaces))
        saved = store.put_policy(changed)
    if output == "table":
        console.print(f"{saved.label}: {saved.describe()}", highlight=False)
    else:
        emit(policy_data(saved), output=output)


@policy.command("list")
@output_option
def policy_list(output: str) -> None:
    """Show every policy."""
    with store_session() as store:
        data = [policy_data(p) for p in store.list_policies()]
    emit(data, output=output, columns=COLUMNS, rows=_rows)


@policy.command("show")
@click.argument("scope", type=SCOPE)
@click.argument("name")
@click.option(
    "-o", "--output", type=click.Choice(["yaml", "json"]), default="yaml", show_default=True
)
def policy_show(scope: str, name: str, output: str) -> None:
    """Show the policy of a cluster, group or repo NAME."""
    with store_session() as store:
        found = store.get_policy(cast(PolicyScope, scope), name)
    emit(policy_data(found), output=output)


@policy.command("remove")
@click.argument("scope", type=SCOPE)
@click.argument("name")
def policy_remove(scope: str, name: str) -> None:
    """Remove the policy of a cluster, group or repo NAME (its apps are then unrestricted)."""
    with store_session() as store:
        store.delete_policy(cast(PolicyScope, scope), name)
    console.print(f"removed the policy of {scope} {name}")
