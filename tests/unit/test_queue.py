"""The daemon's work queue: coalescing, absorption, re-runs and backoff."""

from __future__ import annotations

import asyncio
import random

import pytest

from appflow.engine.queue import ALL, Backoff, WorkKey, WorkQueue


async def _drain(queue: WorkQueue) -> list[tuple[WorkKey, str]]:
    out: list[tuple[WorkKey, str]] = []
    while True:
        try:
            key, trigger = await asyncio.wait_for(queue.get(), timeout=0.05)
        except TimeoutError:
            return out
        out.append((key, trigger))
        queue.done(key, ok=True)


async def test_duplicate_triggers_coalesce_into_one_item() -> None:
    queue = WorkQueue()
    for _ in range(5):
        queue.add(WorkKey("web"), trigger="webhook")
    assert len(queue) == 1
    assert await _drain(queue) == [(WorkKey("web", ALL), "webhook")]


async def test_whole_app_absorbs_single_cluster_items() -> None:
    queue = WorkQueue()
    queue.add(WorkKey("web", "berlin-1"), trigger="selfHeal")
    queue.add(WorkKey("web", "paris-1"), trigger="selfHeal")
    queue.add(WorkKey("web"), trigger="poll")
    queue.add(WorkKey("web", "rome-1"), trigger="selfHeal")
    assert await _drain(queue) == [(WorkKey("web"), "poll")]


async def test_trigger_during_work_runs_once_more_afterwards() -> None:
    queue = WorkQueue()
    queue.add(WorkKey("web"), trigger="poll")
    key, _ = await queue.get()
    queue.add(WorkKey("web"), trigger="webhook")
    queue.add(WorkKey("web"), trigger="webhook")
    assert len(queue) == 1, "running, not queued twice"
    queue.done(key, ok=True)
    assert await _drain(queue) == [(WorkKey("web"), "webhook")]


async def test_merged_asks_keep_the_trigger_that_explains_the_sync() -> None:
    # A webhook's commit synced while a watch's resync was already waiting is the webhook's
    # sync; a self-heal of one cluster folded into a user's sync of the app stays the user's.
    queue = WorkQueue()
    queue.add(WorkKey("web"), trigger="watch")
    queue.add(WorkKey("web"), trigger="webhook")
    queue.add(WorkKey("web"), trigger="poll")
    queue.add(WorkKey("api"), trigger="user")
    queue.add(WorkKey("api", "berlin-1"), trigger="selfHeal")
    queue.add(WorkKey("db"), trigger="selfHeal")
    queue.add(WorkKey("db", "rome-1"), trigger="poll")
    assert sorted(await _drain(queue)) == [
        (WorkKey("api"), "user"),
        (WorkKey("db"), "poll"),
        (WorkKey("web"), "webhook"),
    ]
    running = WorkQueue()
    running.add(WorkKey("web"), trigger="poll")
    key, _ = await running.get()
    running.add(WorkKey("web"), trigger="watch")
    running.add(WorkKey("web"), trigger="webhook")
    running.add(WorkKey("web"), trigger="watch")
    running.done(key, ok=True)
    assert await _drain(running) == [(WorkKey("web"), "webhook")]


async def test_who_asked_goes_with_the_trigger_that_explains_the_sync() -> None:
    queue = WorkQueue()
    queue.add(WorkKey("web"), trigger="poll")
    queue.add(WorkKey("web"), trigger="user", actor="ops")
    queue.add(WorkKey("web"), trigger="watch")
    queue.add(WorkKey("api"), trigger="user", actor="ops")
    queue.add(WorkKey("api"), trigger="user", actor="ci")
    seen = {}
    for _ in range(2):
        key, trigger = await queue.get()
        seen[key.app] = (trigger, queue.actor(key))
        queue.done(key, ok=True)
    assert seen == {"web": ("user", "ops"), "api": ("user", "ci")}
    assert queue.actor(WorkKey("web")) == "", "not running: no one"
    # Asked again while running: the second run names who asked then.
    queue.add(WorkKey("web"), trigger="poll")
    key, _ = await queue.get()
    queue.add(WorkKey("web"), trigger="user", actor="ops")
    queue.done(key, ok=True)
    key, trigger = await queue.get()
    assert (trigger, queue.actor(key)) == ("user", "ops")


async def test_failure_is_retried_after_a_backoff_and_others_are_not_delayed() -> None:
    queue = WorkQueue(backoff=Backoff(base=0.2, cap=0.2))
    queue.add(WorkKey("bad"), trigger="poll")
    key, _ = await queue.get()
    delay = queue.done(key, ok=False)
    assert 0.1 <= delay <= 0.2
    assert queue.failures(WorkKey("bad")) == 1
    queue.add(WorkKey("good"), trigger="poll")
    first, _ = await asyncio.wait_for(queue.get(), timeout=1)
    assert first == WorkKey("good")
    queue.done(first, ok=True)
    retried, _ = await asyncio.wait_for(queue.get(), timeout=1)
    assert retried == WorkKey("bad")
    queue.done(retried, ok=True)
    assert queue.failures(WorkKey("bad")) == 0


@pytest.mark.parametrize("attempts", [1, 2, 5, 20])
def test_backoff_grows_exponentially_within_the_cap(attempts: int) -> None:
    backoff = Backoff(base=2.0, cap=60.0)
    rng = random.Random(7)
    ceiling = min(60.0, 2.0 * 2 ** (attempts - 1))
    for _ in range(50):
        assert ceiling / 2 <= backoff.delay(attempts, rng=rng) <= ceiling
