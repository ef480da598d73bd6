"""SyncLocks: lock sessions of one process exclude each other like processes do, a waiter
names the holder, and a session's holds go when it ends."""

from __future__ import annotations

import asyncio
import os
import socket
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from appflow.engine.locks import SyncLocks
from appflow.errors import SyncInProgressError
from appflow.store import SqliteStore, open_store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    with open_store(tmp_path / "appflow.db") as opened:
        yield opened


def test_a_second_session_is_told_who_holds_the_app(store: SqliteStore) -> None:
    locks = SyncLocks(store)

    async def scenario() -> str:
        async with locks.session():
            await locks.acquire("web", "edge-1", timeout=0)
            await locks.acquire("web", "edge-1", timeout=0)  # its own hold: at once
            async with locks.session():
                with pytest.raises(SyncInProgressError) as caught:
                    await locks.acquire("web", "edge-1", timeout=0)
                await locks.acquire("web", "edge-2", timeout=0)  # another cluster is free
            return str(caught.value)

    said = asyncio.run(scenario())
    assert (
        f"sync of web on edge-1 in progress by {os.getpid()}/{socket.gethostname()} since" in said
    )
    assert "app web, cluster edge-1" in said


def test_a_waiter_goes_ahead_once_the_holder_ends(store: SqliteStore, tmp_path: Path) -> None:
    locks = SyncLocks(store)
    order: list[str] = []

    async def holder(held: asyncio.Event, done: asyncio.Event) -> None:
        async with locks.session():
            await locks.acquire("web", "edge-1", timeout=0)
            order.append("holder has it")
            held.set()
            await done.wait()
            order.append("holder ends")

    async def waiter(held: asyncio.Event) -> None:
        await held.wait()
        async with locks.session():
            await locks.acquire("web", "edge-1", timeout=60)
            order.append("waiter has it")

    async def scenario() -> None:
        held, done = asyncio.Event(), asyncio.Event()
        first = asyncio.create_task(holder(held, done))
        second = asyncio.create_task(waiter(held))
        await held.wait()
        # The waiter is polling the store; let the holder end.
        done.set()
        await asyncio.gather(first, second)

    asyncio.run(scenario())
    assert order == ["holder has it", "holder ends", "waiter has it"]
    # Every hold was released.
    conn = sqlite3.connect(str(tmp_path / "appflow.db"))
    assert conn.execute("SELECT count(*) FROM sync_locks").fetchone()[0] == 0
    conn.close()


def test_holds_outside_a_session_are_a_bug(store: SqliteStore) -> None:
    locks = SyncLocks(store)
    with pytest.raises(AssertionError):
        asyncio.run(locks.acquire("web", "edge-1", timeout=0))
