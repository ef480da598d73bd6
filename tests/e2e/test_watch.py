"""`appflow watch PATH` (development mode) as a user runs it: a saved file reaches the cluster,
each sync prints one line naming the app and what changed, and Ctrl-C stops it cleanly."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.support import LineReader, appflow_env, until
from tests.integration.engine.conftest import Fleet
from tests.integration.engine.support import Space, configmap, write_files

pytestmark = pytest.mark.cluster


def _interruptible() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("poll", [False, True], ids=["notified", "polled"])
def test_a_saved_file_reaches_the_cluster_and_is_summarised(
    fleet: Fleet, space: Space, tmp_path: Path, poll: bool
) -> None:
    ns, app = space.namespace, space.app("dev")
    folder = write_files(
        tmp_path / "dev-app",
        {
            "appflow.yaml": f"name: {app}\nnamespace: {ns}\n",
            "config.yaml": [configmap("settings", ns, {"mode": "blue"})],
        },
    )
    dev = fleet.sandbox.by_env("dev")
    index = fleet.cluster_names.index(dev.name)
    process = subprocess.Popen(
        [sys.executable, "-m", "appflow", "watch", str(folder), "--cluster", dev.name]
        + (["--poll"] if poll else []),
        env=appflow_env(fleet),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        # As from a terminal: a shell without job control starts background jobs with SIGINT
        # ignored, and that disposition is inherited (CI scripts run so); Ctrl-C must arrive.
        preexec_fn=_interruptible,
    )
    try:
        out = LineReader(process)
        first = out.wait_for(
            lambda line: f"{app}:" in line and dev.name in line,
            timeout=90,
            what="the first sync's line",
        )
        assert f"created ConfigMap/{ns}/settings" in first, first

        write_files(folder, {"config.yaml": [configmap("settings", ns, {"mode": "green"})]})
        line = out.wait_for(
            lambda line: f"{app}:" in line and "configured" in line,
            timeout=60,
            what="a line for the saved change",
        )
        # One compact line: the app, the cluster, its state and the object that changed.
        assert f"{dev.name}: Ready (configured ConfigMap/{ns}/settings)" in line, line
        assert "unchanged" not in line
        kube = fleet.sandbox.kube(index)
        try:
            live = kube.get_sync("v1", "ConfigMap", "settings", ns) or {}
        finally:
            kube.close()
        assert (live.get("data") or {}).get("mode") == "green"
        # --cluster: only that cluster, although the app targets every cluster.
        other = fleet.sandbox.kube(fleet.cluster_names.index(fleet.sandbox.by_env("prod").name))
        try:
            assert other.get_sync("v1", "ConfigMap", "settings", ns) is None
        finally:
            other.close()

        process.send_signal(signal.SIGINT)
        until(
            lambda: process.poll() is not None, timeout=120, what="appflow watch to stop on SIGINT"
        )
        assert process.returncode == 0, "\n".join(out.seen)
        assert not any("Traceback" in line for line in out.seen), "\n".join(out.seen)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
