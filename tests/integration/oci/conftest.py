"""Fixtures for OCI tests: a real registry (CNCF distribution, built by
`bash tools/build-tools.sh registry`) on 127.0.0.1 over plain HTTP, with charts
packaged by real `helm package` and pushed by real `helm push`.

`make tools` builds the registry; where it was not built (a partial tools
build), these tests skip and say how to build it.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from appflow.errors import ToolMissingError
from appflow.render.helm import PLAIN_HTTP_ENV
from appflow.tools import find_tool
from tests.helpers import built_tool

GREETER = Path(__file__).resolve().parents[1] / "render" / "testdata" / "charts" / "greeter"
PUSHED_VERSIONS = ("1.0.0", "1.2.0", "2.0.0")
_START_TIMEOUT = 30.0


def _have(name: str) -> bool:
    try:
        find_tool(name)
    except ToolMissingError:
        return False
    return True


# Checked when the tests are collected, so that a missing registry skips them
# before session fixtures such as the sandbox clusters are started. Under CI
# they run regardless, and registry_binary() fails if it is missing.
needs_registry = pytest.mark.skipif(
    not _have("registry") and not os.environ.get("CI"),
    reason="the 'registry' binary is not built; build it with: bash tools/build-tools.sh registry",
)


def registry_binary() -> Path:
    return built_tool("registry", how="bash tools/build-tools.sh registry")


def helm_binary() -> Path:
    return built_tool("helm")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Registry:
    """An OCI registry on 127.0.0.1; HOST is host:port, CHARTS the oci:// folder charts are in."""

    host: str
    storage: Path

    @property
    def charts(self) -> str:
        return f"oci://{self.host}/charts"


def _wait_ready(process: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + _START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the registry exited with {process.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    pytest.fail(f"the registry did not answer {url} in {_START_TIMEOUT:.0f} s:\n{log.read_text()}")


def helm_env(home: Path) -> dict[str, str]:
    """Environment for the helm CLI with its own config, cache and registry login files."""
    env = dict(os.environ)
    env.update(
        HELM_CONFIG_HOME=str(home / "config"),
        HELM_CACHE_HOME=str(home / "cache"),
        HELM_DATA_HOME=str(home / "data"),
        HELM_REGISTRY_CONFIG=str(home / "config" / "registry.json"),
    )
    return env


def push_chart(registry: Registry, version: str, work: Path, env: dict[str, str]) -> None:
    """Package the greeter chart at VERSION and push it to REGISTRY's charts folder."""
    helm = str(helm_binary())
    chart = work / f"greeter-{version}" / "greeter"
    shutil.copytree(GREETER, chart)
    chart_yaml = chart / "Chart.yaml"
    chart_yaml.write_text(chart_yaml.read_text().replace("version: 1.0.0", f"version: {version}"))
    packaged = work / "packaged"
    for args in (
        ["package", str(chart), "--destination", str(packaged)],
        ["push", str(packaged / f"greeter-{version}.tgz"), registry.charts, "--plain-http"],
    ):
        done = subprocess.run(
            [helm, *args], env=env, capture_output=True, text=True, timeout=120, check=False
        )
        assert done.returncode == 0, f"helm {' '.join(args)} failed: {done.stderr}"


@contextmanager
def running_registry(root: Path) -> Iterator[Registry]:
    """A registry on 127.0.0.1 with its files under ROOT, stopped when the block ends."""
    binary = registry_binary()
    port = _free_port()
    storage = root / "storage"
    config = root / "config.yml"
    # Plain HTTP on the loopback: no TLS, no auth, files on disk.
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: warn\n  accesslog:\n    disabled: true\n"
        f"storage:\n  filesystem:\n    rootdirectory: {storage}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )
    log = root / "registry.log"
    env = {**os.environ, "OTEL_TRACES_EXPORTER": "none", "OTEL_SDK_DISABLED": "true"}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(binary), "serve", str(config)], stdout=out, stderr=subprocess.STDOUT, env=env
        )
    try:
        _wait_ready(process, f"http://127.0.0.1:{port}/v2/", log)
        yield Registry(host=f"127.0.0.1:{port}", storage=storage)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A registry holding chart 'greeter' at PUSHED_VERSIONS under oci://HOST/charts."""
    root = tmp_path_factory.mktemp("oci-registry")
    with running_registry(root) as found:
        helm_home = root / "helm-home"
        for version in PUSHED_VERSIONS:
            push_chart(found, version, root / "charts", helm_env(helm_home))
        yield found


@pytest.fixture
def plain_http(registry: Registry, monkeypatch: pytest.MonkeyPatch) -> Registry:
    """REGISTRY, named in APPFLOW_HELM_PLAIN_HTTP so that appflow speaks plain HTTP to it."""
    monkeypatch.setenv(PLAIN_HTTP_ENV, registry.host)
    return registry


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """appflow's cache (helm's repository and content caches, pulled charts) for this test only."""
    folder = tmp_path / "appflow-cache"
    monkeypatch.setenv("APPFLOW_CACHE_DIR", str(folder))
    monkeypatch.delenv(PLAIN_HTTP_ENV, raising=False)
    return folder
