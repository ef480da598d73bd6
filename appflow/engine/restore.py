"""Restoring a revision's secret values for a rollback.

The store keeps a revision's secret values redacted (see ``engine.secrets``), so a
rollback, or an automatic rollback of a failed rollout partition, renders the
revision's source again for the clusters that need the values, and checks that the
result is exactly what was recorded (redacted, with the same digests); anything else is
an error naming the cluster, and nothing is applied.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace

from appflow.engine.desired import render_desired
from appflow.engine.parts import EngineParts
from appflow.engine.policies import load_policies
from appflow.engine.sources import Source
from appflow.engine.stages.types import DesiredState
from appflow.engine.state import AppState, read_app_state
from appflow.errors import DecryptionError, Where
from appflow.model.objects import Manifest
from appflow.model.records import AppRecord, GitCommit, RevisionRecord
from appflow.model.redact import is_redacted
from appflow.render.types import canonical_json


async def restore_revision(
    parts: EngineParts, app: str, revision: RevisionRecord, desired: dict[str, DesiredState]
) -> dict[str, DesiredState]:
    """DESIRED (a revision's recorded objects per cluster) with redacted values restored."""
    missing = [c for c, d in desired.items() if any(is_redacted(o) for o in d.objects)]
    if not missing:
        return desired
    state = await asyncio.to_thread(read_app_state, parts.store, app)
    resolver = parts.resolvers.of(state.app)
    source = await _source_at(parts, state, revision)
    definition = await resolver.definition(state.app, source)
    restored = dict(desired)
    policies = await load_policies(
        parts.store, app=app, clusters=[state.fleet.clusters[c] for c in missing]
    )
    for cluster in missing:
        _, fresh = await render_desired(
            definition,
            source,
            state.fleet.clusters[cluster],
            groups=state.fleet.groups,
            connections=parts.connections,
            cache=parts.render_cache,
            secrets=parts.secrets,
            policies=policies[cluster],
        )
        if _recorded_form(fresh.recorded) != _recorded_form(desired[cluster].objects):
            raise DecryptionError(
                f"revision {revision.number} holds redacted secret values, and rendering "
                f"{'its commit' if source.ref == revision.source_ref else 'the current source'} "
                "again gives other content: the values cannot be restored",
                where=Where(app=app, cluster=cluster),
                hint="sync the app instead, or roll back to a revision whose source is still there",
            )
        restored[cluster] = replace(fresh, revision=desired[cluster].revision)
    return restored


def _recorded_form(objects: Sequence[Manifest]) -> list[str]:
    return sorted(canonical_json(o) for o in objects)


async def _source_at(parts: EngineParts, state: AppState, revision: RevisionRecord) -> Source:
    """The source to render REVISION again from: its commit for a git app, else the current
    source (a local folder or catalog install has no history; the comparison of what it
    renders with what was recorded decides whether it still serves)."""
    record: AppRecord = state.app
    commit = revision.source_ref.commit if isinstance(revision.source_ref, GitCommit) else None
    return await parts.resolvers.of(record).fetch(
        record, state.repo, commit=commit, store=parts.store
    )
