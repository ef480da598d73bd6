"""Pausing and resuming a progressive rollout: one place for the CLI, the API and the dashboard.

A pause is a mark on the app's RolloutRecord: the engine reads it before each batch
and stops there. A resume clears it; the caller then syncs the app, which re-applies
to clusters already updated as no-ops and goes on with the next batch.
"""

from __future__ import annotations

from dataclasses import replace

from appflow.engine.recorder import Recorder
from appflow.errors import ConfigError, Where
from appflow.model.records import RolloutRecord
from appflow.store import Store


def pause_rollout(store: Store, name: str, *, by: str = "user") -> RolloutRecord:
    """Stop app NAME's rollout before its next batch of clusters."""

    def paused(current: RolloutRecord) -> RolloutRecord:
        if current.state in ("Complete", "RolledBack"):
            raise ConfigError(
                f"the rollout of revision {current.revision} is {current.state}: nothing to pause",
                where=Where(app=name),
            )
        return replace(current, state="Paused", message=f"paused by {by}")

    return Recorder(store).change_rollout(name, paused)


def resume_rollout(store: Store, name: str, *, by: str = "user") -> RolloutRecord:
    """Let app NAME's rollout go on; sync the app afterwards to deliver the next batch."""
    return Recorder(store).change_rollout(
        name, lambda current: replace(current, state="Progressing", message=f"resumed by {by}")
    )
