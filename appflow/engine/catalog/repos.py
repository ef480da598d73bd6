"""Catalog repositories: register, list, remove and refresh the Helm repositories and OCI
registries the catalog lists charts from (``CatalogRepoRecord``s in the store).

A repository is checked before it is recorded: its URL and files, and for a Helm
repository its index, fetched with its credentials.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from appflow.model.records import CatalogRepoRecord
from appflow.sources import catalog as source
from appflow.store import Store


def add_catalog_repo(store: Store, repo: CatalogRepoRecord) -> int | None:
    """Record REPO (replacing one of the same name) once it answers; its chart count, or
    None for an OCI registry (registries have no index to read)."""
    source.check_repo(repo)
    count = None if repo.is_oci else len(source.fetch_index(repo, max_age=0.0).index)
    store.put_catalog_repo(repo)
    return count


def remove_catalog_repo(store: Store, name: str) -> None:
    """Forget repository NAME and its cached index (installs from it keep their charts)."""
    store.delete_catalog_repo(name)
    source.forget_index(name)


@dataclass(frozen=True, kw_only=True)
class Refreshed:
    repo: CatalogRepoRecord
    status: str
    """'downloaded' or 'not-modified' (``source.fetch_index``)."""
    charts: int


def refresh_catalog_repos(store: Store, names: Sequence[str] = ()) -> list[Refreshed]:
    """Read the indexes of repositories NAMES (all when empty) again now; OCI registries
    have none and are skipped."""
    repos = [store.get_catalog_repo(n) for n in names] if names else store.list_catalog_repos()
    refreshed = []
    for repo in repos:
        if repo.is_oci:
            continue
        fetched = source.fetch_index(repo, max_age=0.0)
        refreshed.append(Refreshed(repo=repo, status=fetched.status, charts=len(fetched.index)))
    return refreshed
