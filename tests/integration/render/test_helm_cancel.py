"""A cancelled render leaves no helm process behind (a hub replica cancels the renders of the
apps it loses; an orphaned helm, a child of init, used to keep rendering or wait on its stdin)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from pathlib import Path

import pytest

from appflow.render import Capabilities, HelmChartRef, RenderRequest, render

pytestmark = pytest.mark.tools

ENDLESS = """apiVersion: v1
kind: ConfigMap
metadata: {name: endless}
data:
  # Go templates have no while loop: nested ranges that take hours to run out.
  spins: "{{ range until 100000 }}{{ range until 100000 }}{{ range until 100000 }}{{ end }}{{ end }}{{ end }}"
"""


def helm_processes(marker: str) -> list[int]:
    """The live processes whose command line names MARKER (zombies excluded)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


def wait_for(condition: object, *, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {seconds:.0f}s: {what}")
        time.sleep(0.05)


@pytest.mark.parametrize("values", [{}, {"big": "x" * 4_000_000}], ids=["small", "stdin-4MB"])
async def test_a_cancelled_render_leaves_no_helm_process(
    tmp_path: Path, capabilities: Capabilities, values: dict[str, str]
) -> None:
    # The chart's folder names the processes of this test (and of no other).
    chart = tmp_path / "endless-chart"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: endless\nversion: 0.1.0\n")
    (chart / "templates" / "spin.yaml").write_text(ENDLESS)
    request = RenderRequest(
        app="endless",
        cluster="edge-1",
        kind="helm",
        source_dir=tmp_path,
        source_digest="test:endless",
        capabilities=capabilities,
        namespace="default",
        helm=HelmChartRef(path=Path("endless-chart")),
        values=values,
    )
    marker = str(chart)
    task = asyncio.create_task(render(request))
    try:
        # Helm is running (values given on its stdin, the large ones still being written).
        await asyncio.to_thread(
            wait_for, lambda: helm_processes(marker), seconds=120, what="helm started"
        )
        task.cancel()
        # Bounded: pyhelm3's own handling waited for the output of the helm it left running.
        await asyncio.wait({task}, timeout=120)
        assert task.done(), f"the cancelled render did not return; helm: {helm_processes(marker)}"
        assert task.cancelled()
        # Once the cancelled render returned, helm and its group are gone (killed, reaped by
        # the event loop's child watcher a moment later).
        await asyncio.to_thread(
            wait_for,
            lambda: not helm_processes(marker),
            seconds=30,
            what=f"helm processes left after the cancelled render: {helm_processes(marker)}",
        )
    finally:
        task.cancel()
        for pid in helm_processes(marker):  # a failing run does not leave one spinning
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
