"""A fresh `appflow sync` of an unchanged app and a fresh `appflow status` do not import
the heavy packages (the kubernetes client, git, helm, the HTTP server's stack): their
start-up is most of what such a command costs, so this keeps the win from silently
regressing. A sync imports neither click nor rich (``appflow.cli.entry`` runs it); with
`appflow serve` running, the handed-over sync and status import not even the engine.
No timing is asserted: what is imported is."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.support import appflow_env, serving, synced_small_app
from tests.integration.engine.conftest import Fleet
from tests.integration.engine.support import Space

pytestmark = pytest.mark.cluster

HEAVY = ("kubernetes", "pygit2", "pyhelm3", "pydantic", "cryptography", "httpx", "starlette")

# Runs `appflow ARGS` as the `appflow` command does, then (however it exits) says on the
# last line of stderr which of the heavy packages and appflow modules it imported.
PROBE = """
import atexit, json, sys
def report():
    loaded = sorted({m.split(".")[0] for m in sys.modules} & set(HEAVY))
    engine = "appflow.engine.engine" in sys.modules
    click = "click" in sys.modules or "rich" in sys.modules  # the CLI's own libraries
    print("\\n" + json.dumps({"heavy": loaded, "engine": engine, "click": click}), file=sys.stderr)
atexit.register(report)
from appflow.cli.entry import main
main()
"""


def imported(fleet: Fleet, *args: str) -> tuple[str, dict[str, object]]:
    """stdout of `appflow ARGS` in a new process, and what it imported."""
    done = subprocess.run(
        [sys.executable, "-c", f"HEAVY = {HEAVY!r}\n{PROBE}", *args],
        env=appflow_env(fleet),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout, json.loads(done.stderr.strip().splitlines()[-1])


def test_the_hot_path_imports_no_heavy_package(fleet: Fleet, space: Space, tmp_path: Path) -> None:
    app = synced_small_app(space, tmp_path / "app", "light")
    clusters = len(fleet.cluster_names)

    out, loaded = imported(fleet, "sync", app)
    # Still a real sync: every object (and the namespace the app creates) read from every
    # cluster and found unchanged.
    assert " ".join(out.split()).count("0 created, 0 configured, 3 unchanged") == clusters, out
    # Synced by the entry point in this process: the engine, but neither click nor rich.
    assert loaded == {"heavy": [], "engine": True, "click": False}
    out, loaded = imported(fleet, "status")
    assert app in out, out
    assert out.count("Ready") == clusters, out
    assert loaded["heavy"] == []

    with serving(fleet, tmp_path / "serve.log"):
        out, loaded = imported(fleet, "sync", app)
        assert " ".join(out.split()).count("0 created, 0 configured, 3 unchanged") == clusters
        # Answered by the entry point itself: not even click nor rich.
        assert loaded == {"heavy": [], "engine": False, "click": False}
        out, loaded = imported(fleet, "status")
        assert app in out, out
        assert out.count("Ready") == clusters, out
        assert loaded == {"heavy": [], "engine": False, "click": False}
        # What the entry point does not answer itself goes to click.
        out, loaded = imported(fleet, "status", "--help")
        assert loaded["click"] is True
