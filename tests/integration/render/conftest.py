"""Fixtures for render tests: an isolated appflow cache, cluster capabilities, a Helm HTTP repo.

The Helm repository is real: charts packaged with `helm package`, indexed with
`helm repo index`, served over HTTP on 127.0.0.1 by a test server.
"""

from __future__ import annotations

import functools
import http.server
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from appflow.render import Capabilities
from appflow.tools import find_tool

TESTDATA = Path(__file__).parent / "testdata"
REPO_VERSIONS = ("1.0.0", "1.2.0", "2.0.0")


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "appflow-cache"
    monkeypatch.setenv("APPFLOW_CACHE_DIR", str(folder))
    monkeypatch.delenv("APPFLOW_HELM_BIN", raising=False)
    monkeypatch.delenv("APPFLOW_KUSTOMIZE_BIN", raising=False)
    return folder


@pytest.fixture
def capabilities() -> Capabilities:
    return Capabilities(
        kube_version="v1.36.3",
        api_versions=("v1", "apps/v1", "monitoring.coreos.com/v1"),
    )


@pytest.fixture
def testdata() -> Path:
    return TESTDATA


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def helm_repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a Helm HTTP repository serving chart 'greeter' at REPO_VERSIONS."""
    helm = str(find_tool("helm"))
    root = tmp_path_factory.mktemp("helm-repo")
    served = root / "served"
    served.mkdir()
    for version in REPO_VERSIONS:
        src = root / f"greeter-{version}" / "greeter"
        shutil.copytree(TESTDATA / "charts" / "greeter", src)
        chart_yaml = src / "Chart.yaml"
        chart_yaml.write_text(
            chart_yaml.read_text().replace("version: 1.0.0", f"version: {version}")
        )
        subprocess.run(
            [helm, "package", str(src), "--destination", str(served)],
            check=True,
            capture_output=True,
        )
    handler = functools.partial(_QuietHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    url = f"http://127.0.0.1:{server.server_address[1]}"
    subprocess.run(
        [helm, "repo", "index", str(served), "--url", url], check=True, capture_output=True
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield url
    finally:
        server.shutdown()
        server.server_close()
