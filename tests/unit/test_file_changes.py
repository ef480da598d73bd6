"""Saved-file notifications on the real file system: natively, by polling, and the fallback to
polling when the operating system refuses to watch (here: no file descriptor left for inotify,
the same EMFILE a machine whose inotify instances are all used gives)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from appflow.sources.changes import _snapshot, file_changes


async def first_batch(root: Path, *, poll: bool) -> set[Path]:
    stop = asyncio.Event()
    saved = root / "config.yaml"

    async def save_until_seen() -> None:
        # Saved again until the watch reports it: no guess at when the watch is ready.
        n = 0
        while not stop.is_set():
            n += 1
            saved.write_text(f"n: {n}\n")
            await asyncio.sleep(0.2)

    writer = asyncio.create_task(save_until_seen())
    try:
        async with asyncio.timeout(60):
            async for batch in file_changes(root, debounce_ms=50, stop=stop, poll=poll):
                return batch
    finally:
        stop.set()
        await writer
    raise AssertionError("the watch ended without a batch")


@pytest.mark.parametrize("poll", [False, True], ids=["native", "poll"])
async def test_a_saved_file_is_reported(tmp_path: Path, poll: bool) -> None:
    assert tmp_path / "config.yaml" in await first_batch(tmp_path, poll=poll)


# Runs in its own process: it lowers that process's file-descriptor limit.
REFUSED = textwrap.dedent(
    """
    import asyncio, logging, os, resource, sys
    from pathlib import Path
    sys.path.insert(0, sys.argv[2])
    from tests.unit.test_file_changes import first_batch

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    root = Path(sys.argv[1])

    async def main() -> None:
        await first_batch(root, poll=True)  # every module and the loop's own files are open
        used = len(os.listdir("/proc/self/fd"))
        # One descriptor left: inotify and its event loop cannot both have one.
        resource.setrlimit(resource.RLIMIT_NOFILE, (used + 1, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
        batch = await first_batch(root, poll=False)
        print("batch", sorted(p.name for p in batch))

    asyncio.run(main())
    """
)


def test_a_refused_native_watch_falls_back_to_polling_and_says_so(tmp_path: Path) -> None:
    repo = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", REFUSED, str(tmp_path), str(repo)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "batch ['config.yaml']" in done.stdout
    assert "cannot watch" in done.stderr, done.stderr
    assert "looking at file times" in done.stderr
    assert "max_user_instances" in done.stderr


def test_polling_tells_two_saves_of_the_same_size_apart_within_a_second(tmp_path: Path) -> None:
    # File times in whole seconds (watchfiles' polling) could not: an editor's "save, fix a
    # typo, save" went unseen. The look compares nanosecond times and sizes.
    saved = tmp_path / "config.yaml"
    saved.write_text("mode: pink\n")
    first = _snapshot(tmp_path)
    saved.write_text("mode: gray\n")
    os.utime(saved, ns=(first[saved][0] + 1000, first[saved][0] + 1000))  # same second
    assert _snapshot(tmp_path)[saved] != first[saved]
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "index").write_text("x")
    assert set(_snapshot(tmp_path)) == {saved}  # version control is no app's source
