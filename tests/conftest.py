"""Shared fixtures: the sandbox fleet, a fresh namespace per test, control-plane logs on failure.

Tests that touch Kubernetes take the `sandbox` fixture (three real clusters,
started once per session, labelled env=dev|test|prod) and usually `namespace`
(a namespace with a random suffix on the first cluster, deleted afterwards).
When such a test fails, the tail of every control-plane log of the sandbox is
attached to its report.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from appflow import sandbox as sb
from tests.helpers import Sandbox, fresh_namespace

SANDBOX_CLUSTERS = 3

# A bug in appflow shows its traceback in tests; users get one line instead
# (tests of that line unset it).
os.environ.setdefault("APPFLOW_DEBUG", "1")
_LOG_LINES = 40

# Property tests judge appflow, not the machine's speed: on a loaded CI machine generating an
# example or running one can take longer than Hypothesis' defaults allow (200 ms per example,
# a budget for generation), which fails a correct test. No time limit, no speed health check.
settings.register_profile("appflow", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("appflow")


_active_root: Path | None = None


def _sweep_orphans() -> None:
    """Stop control planes left by a test run killed from outside.

    pytest removes old temporary folders, so `sandbox down` can no longer find
    such clusters by folder; their processes are found by the folder named in
    their command line, which no longer exists.
    """
    from appflow.sandbox.cluster import COMPONENTS
    from appflow.sandbox.processes import find_processes, stop_processes

    orphans = []
    for proc in find_processes("/pytest-of-"):
        if proc.name not in COMPONENTS:
            continue
        paths = [
            a.split("=", 1)[1]
            for a in proc.argv
            if a.startswith(("--data-dir=", "--cert-dir=", "--kubeconfig="))
        ]
        if paths and not any(Path(p).parent.exists() for p in paths):
            orphans.append(proc.pid)
    stop_processes(orphans, grace=5)


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """Three real clusters for the whole session, torn down at its end.

    APPFLOW_TEST_SANDBOX_DIR reuses a sandbox kept between runs (for local
    iteration: it is started if needed and left running).
    """
    global _active_root
    _sweep_orphans()
    keep = os.environ.get("APPFLOW_TEST_SANDBOX_DIR")
    root = Path(keep) if keep else tmp_path_factory.mktemp("sandbox")
    _active_root = root
    infos = sb.up(clusters=SANDBOX_CLUSTERS, prefix="test", root=root, timeout=240)
    try:
        yield Sandbox(root=root, clusters=tuple(infos))
    finally:
        _active_root = None
        if not keep:
            report = sb.down(root=root)
            assert not report.problems, report.problems


@pytest.fixture
def namespace(sandbox: Sandbox) -> Iterator[str]:
    """A fresh namespace on the first sandbox cluster, deleted after the test."""
    with fresh_namespace(sandbox.kube(0), prefix="t") as name:
        yield name


@pytest.fixture
def appflow_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty appflow data and cache folder for this test."""
    home = tmp_path / "appflow-home"
    monkeypatch.setenv("APPFLOW_HOME", str(home))
    monkeypatch.setenv("APPFLOW_CACHE_DIR", str(tmp_path / "appflow-cache"))
    return home


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if (
        report.failed
        and _active_root is not None
        and "sandbox" in getattr(item, "fixturenames", ())
    ):
        for log in sorted(_active_root.glob("*/logs/*.log")):
            try:
                lines = log.read_text(errors="replace").splitlines()[-_LOG_LINES:]
            except OSError:
                continue
            report.sections.append(
                (f"control-plane log {log.parent.parent.name}/{log.name}", "\n".join(lines))
            )


def pytest_report_header(config: pytest.Config) -> list[str]:
    from appflow.paths import tools_dir

    return [f"appflow tools: {tools_dir() / 'bin'} (git: {shutil.which('git')})"]
