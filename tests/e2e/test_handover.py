"""A fresh `appflow sync` hands its sync to a running `appflow serve` of the same home and
prints exactly what it would have printed syncing by itself; without a daemon (none
started, or one killed and its socket left behind) it syncs in its own process."""

from __future__ import annotations

import json
import re
import signal
import sqlite3
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.support import appflow_env, serving, synced_small_app, until
from tests.integration.engine.conftest import Fleet
from tests.integration.engine.support import Space, kubectl

pytestmark = pytest.mark.cluster


@dataclass(frozen=True)
class Ran:
    pid: int
    returncode: int
    stdout: str
    stderr: str


# The click command, without the entry point's fast path.
THROUGH_CLICK = ("-c", "from appflow.cli.main import main; main()")


def fresh(fleet: Fleet, *args: str, entry: tuple[str, ...] = ("-m", "appflow"), **env: str) -> Ran:
    """`appflow ARGS` in a new process, as a user types it (ENTRY: how Python starts it)."""
    process = subprocess.Popen(
        [sys.executable, *entry, *args],
        env={**appflow_env(fleet), **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out, err = process.communicate(timeout=300)
    return Ran(pid=process.pid, returncode=process.returncode, stdout=out, stderr=err)


def timeless(text: str) -> str:
    """TEXT without the seconds a sync took (the only part that differs between runs)."""
    text = re.sub(r" in \d+\.\d+s", " in Xs", text)
    text = re.sub(r'"seconds": [0-9.]+', '"seconds": X', text)
    return re.sub(r"(?m)^( *)seconds: [0-9.]+$", r"\1seconds: X", text)


def last_sync_pids(fleet: Fleet, app: str, count: int) -> set[int]:
    """The processes that ran the last COUNT sync records of APP (the store's own column)."""
    with sqlite3.connect(fleet.home / "appflow.db") as db:
        rows = db.execute(
            "SELECT owner_pid FROM syncs WHERE app = ? ORDER BY id DESC LIMIT ?", (app, count)
        ).fetchall()
    return {int(r[0]) for r in rows}


def test_a_running_daemon_takes_over_a_fresh_sync_and_the_output_is_the_same(
    fleet: Fleet, space: Space, tmp_path: Path
) -> None:
    app = synced_small_app(space, tmp_path / "app", "handed")
    clusters = len(fleet.cluster_names)

    alone = {args: fresh(fleet, *args) for args in (("sync", app), ("sync", app, "-o", "json"))}
    missing_alone = fresh(fleet, "sync", f"no-such-{space.suffix}")
    socket_path = fleet.home / "serve.sock"
    log = tmp_path / "serve.log"
    with serving(fleet, log) as (daemon, _):
        assert stat.S_IMODE(socket_path.stat().st_mode) == 0o600
        for args, before in alone.items():
            handed = fresh(fleet, *args)
            assert handed.returncode == before.returncode == 0, handed.stderr
            assert timeless(handed.stdout) == timeless(before.stdout)
            assert last_sync_pids(fleet, app, clusters) == {daemon.pid}
        missing = fresh(fleet, "sync", f"no-such-{space.suffix}")
        assert missing.returncode == missing_alone.returncode == 1
        assert missing.stderr == missing_alone.stderr
        assert f"no-such-{space.suffix}" in missing.stderr

        # --debug keeps the sync in the CLI's process, so its log is the terminal's.
        debug = fresh(fleet, "--debug", "sync", app)
        assert debug.returncode == 0, debug.stderr
        assert timeless(debug.stdout) == timeless(alone[("sync", app)].stdout)
        assert last_sync_pids(fleet, app, clusters) == {debug.pid}

        # A daemon killed outright leaves its socket: the next sync runs by itself.
        daemon.send_signal(signal.SIGKILL)
        daemon.wait()
    assert socket_path.exists()
    after = fresh(fleet, "sync", app)
    assert after.returncode == 0, after.stderr
    assert timeless(after.stdout) == timeless(alone[("sync", app)].stdout)
    assert last_sync_pids(fleet, app, clusters) == {after.pid}


def test_a_running_daemon_answers_status_as_the_cli_would(
    fleet: Fleet, space: Space, tmp_path: Path
) -> None:
    """`appflow status` (live, --cached, every output) from a running daemon prints what
    the CLI prints reading the clusters itself (--debug keeps it in the CLI), a hand edit
    included."""
    app = synced_small_app(space, tmp_path / "app", "seen")
    first = fleet.cluster_names[0]
    log = tmp_path / "serve.log"

    def mine(ran: Ran) -> object:
        """The part of a status that is this test's (other tests share the home)."""
        assert ran.returncode == 0, ran.stderr
        if ran.stdout.lstrip().startswith("{"):
            grid = json.loads(ran.stdout)
            return grid["clusters"], [a for a in grid["apps"] if a["name"] == app]
        return [line for line in ran.stdout.splitlines() if app in line]

    with serving(fleet, log) as (daemon, _):
        # The daemon syncs every app when it starts: the edit comes after that sync.
        until(
            lambda: (
                last_sync_pids(fleet, app, 1) == {daemon.pid}
                and fleet.store.get_deployment(app, first).state == "Ready"
            ),
            timeout=120,
            what="the daemon's start-up sync",
            log=log,
        )
        cached = ("status", "--cached", "-o", "json")
        assert mine(fresh(fleet, *cached)) == mine(fresh(fleet, "--debug", *cached))
        kubectl(
            fleet.sandbox,
            0,
            *("-n", space.namespace, "patch", "configmap", "settings"),
            *("-p", '{"data": {"a": "edited by hand"}}'),
        )
        # Read live, each time: the edit shows the same whoever reads it.
        for args in (("status", "-o", "json"), ("status",)):
            alone = fresh(fleet, "--debug", *args)
            handed = fresh(fleet, *args)
            assert mine(handed) == mine(alone), args
        grid = mine(fresh(fleet, "status", "-o", "json"))
        cell = grid[1][0]["deployments"][first]  # type: ignore[index]
        assert cell["state"] == "Modified", cell
        assert cell["refreshed"] is True, cell


def test_the_entry_point_answers_a_handed_over_form_exactly_as_click_does(
    fleet: Fleet, space: Space, tmp_path: Path
) -> None:
    """Each form the entry point hands over itself prints what the click command prints
    (handing it over too); a form it does not know, and a hub, are click's."""
    app = synced_small_app(space, tmp_path / "app", "entry")
    missing = f"no-such-{space.suffix}"
    forms = [
        ("sync", app),
        ("sync", app, "-o", "yaml"),
        ("sync", "--output=json", app, "--lock-timeout", "30"),
        ("sync", missing),
        ("sync", app, missing),
        ("status", "--cached"),
        ("status", "--cached", "-ojson"),
        ("status", "--timeout", "20", "-o", "yaml"),
    ]
    with serving(fleet, tmp_path / "serve.log") as (daemon, _):
        for args in forms:
            by_click = fresh(fleet, *args, entry=THROUGH_CLICK)
            by_entry = fresh(fleet, *args)
            assert by_entry.returncode == by_click.returncode, (args, by_entry.stderr)
            assert timeless(by_entry.stderr) == timeless(by_click.stderr), args
            if args[0] == "sync":
                assert timeless(by_entry.stdout) == timeless(by_click.stdout), args
            else:  # other tests' apps come and go between the two
                assert app in by_entry.stdout, args
        assert last_sync_pids(fleet, app, 1) == {daemon.pid}
        assert fresh(fleet, "sync", missing).returncode == 1
        # A usage error is click's, worded by click.
        bad = fresh(fleet, "sync", app, "--timeout", "soon")
        assert bad.returncode == 2
        assert "'soon' is not a valid float" in bad.stderr
        # A hub named in the environment is not the daemon's: click reads it (and here
        # says it cannot), the daemon syncs nothing.
        hub = fresh(fleet, "sync", app, APPFLOW_HUB=str(tmp_path / "no-kubeconfig"))
        assert hub.returncode == 1
        assert hub.stderr.startswith("error:"), hub.stderr
        assert (
            hub.stderr
            == fresh(
                fleet, "sync", app, entry=THROUGH_CLICK, APPFLOW_HUB=str(tmp_path / "no-kubeconfig")
            ).stderr
        )


def test_without_a_daemon_the_entry_point_syncs_exactly_as_click_does(
    fleet: Fleet, space: Space, tmp_path: Path
) -> None:
    """No `appflow serve`: the entry point syncs the sync forms in its own process (without
    click), printing what the click command prints; both really sync here."""
    app = synced_small_app(space, tmp_path / "app", "direct")
    missing = f"no-such-{space.suffix}"
    forms = [
        ("sync", app),
        ("sync", app, "-o", "json"),
        ("sync", "--output=yaml", app, "--lock-timeout", "30"),
        ("sync", missing),
        ("sync", app, missing),
        ("sync",),
    ]
    for args in forms:
        by_click = fresh(fleet, *args, entry=THROUGH_CLICK)
        by_entry = fresh(fleet, *args)
        assert by_entry.returncode == by_click.returncode, (args, by_entry.stderr)
        assert timeless(by_entry.stderr) == timeless(by_click.stderr), args
        assert timeless(by_entry.stdout) == timeless(by_click.stdout), args
    # Both processes synced themselves: the app's last records (one per cluster each) are theirs.
    by_click = fresh(fleet, "sync", app, entry=THROUGH_CLICK)
    by_entry = fresh(fleet, "sync", app)
    records = 2 * len(fleet.cluster_names)
    assert last_sync_pids(fleet, app, records) == {by_click.pid, by_entry.pid}
    # A usage error is still click's, worded by click.
    bad = fresh(fleet, "sync", app, "--lock-timeout", "-1")
    assert bad.returncode == 2
    assert "--lock-timeout" in bad.stderr
