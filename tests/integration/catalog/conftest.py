"""Fixtures for catalog tests: the engine's fleet, real helm, and a Helm HTTP repository
served from charts packaged by real `helm create` + `helm package` + `helm repo index`."""

from __future__ import annotations

import http.server
import os
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import pytest
import yaml

from tests.helpers import built_tool
from tests.integration.engine.conftest import fleet, space  # noqa: F401
from tests.integration.git.gitservers import TlsFiles

ROOT = Path(__file__).resolve().parents[3]
CATALOG = ROOT / "catalog"


def helm_binary() -> Path:
    return built_tool("helm")


@pytest.fixture
def helm_env(tmp_path: Path) -> dict[str, str]:
    """Environment for the real helm CLI with its own config and cache folders."""
    base = tmp_path / "helm-home"
    env = dict(os.environ)
    env.update(
        HELM_CONFIG_HOME=str(base / "config"),
        HELM_CACHE_HOME=str(base / "cache"),
        HELM_DATA_HOME=str(base / "data"),
        HELM_REPOSITORY_CONFIG=str(base / "config" / "repositories.yaml"),
        HELM_REPOSITORY_CACHE=str(base / "cache" / "repository"),
    )
    return env


def helm(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(helm_binary()), *args], env=env, capture_output=True, text=True, timeout=120
    )
    if check:
        assert done.returncode == 0, f"helm {' '.join(args)} failed: {done.stderr}"
    return done


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ChartRepo:
    """A Helm HTTP repository on 127.0.0.1 serving FOLDER; REQUESTS logs (path, headers)."""

    url: str
    folder: Path
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    def archive(self, name: str, version: str) -> Path:
        return self.folder / f"{name}-{version}.tgz"

    def set_digest(self, name: str, version: str, digest: str) -> None:
        index_path = self.folder / "index.yaml"
        index = yaml.safe_load(index_path.read_text())
        for entry in index["entries"][name]:
            if entry["version"] == version:
                entry["digest"] = digest
        index_path.write_text(yaml.safe_dump(index))


def _package_web(env: dict[str, str], work: Path, out: Path, version: str) -> None:
    """`helm create web` (a Deployment, a Service, a ServiceAccount), at VERSION, packaged."""
    chart = work / version / "web"
    chart.parent.mkdir(parents=True)
    helm(env, "create", str(chart))
    meta = yaml.safe_load((chart / "Chart.yaml").read_text())
    meta["version"] = version
    meta["description"] = f"web test chart {version}"
    (chart / "Chart.yaml").write_text(yaml.safe_dump(meta))
    # A values schema so the install validates against the chart's own schema.
    (chart / "values.schema.json").write_text(
        '{"$schema": "http://json-schema.org/draft-07/schema#", "type": "object",'
        ' "properties": {"replicaCount": {"type": "integer", "minimum": 1}}}'
    )
    helm(env, "package", str(chart), "--destination", str(out))


@contextmanager
def serve_chart_repo(
    folder: Path, helm_env: dict[str, str], *, tls: TlsFiles | None = None
) -> Iterator[ChartRepo]:
    """A Helm HTTP repository of `helm create web` at 1.0.0 and 1.1.0, made in FOLDER and
    served on 127.0.0.1 (over HTTPS with a certificate TLS's CA signed, when given)."""
    out = folder / "repo"
    out.mkdir()
    for version in ("1.0.0", "1.1.0"):
        _package_web(helm_env, folder / "charts", out, version)
    port = free_port()
    url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    helm(helm_env, "repo", "index", str(out), "--url", url)
    repo = ChartRepo(url=url, folder=out)

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            repo.requests.append((self.path, dict(self.headers.items())))

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", port), partial(Handler, directory=str(out))
    )
    if tls is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(tls.cert, tls.key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield repo
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def chart_repo(tmp_path: Path, helm_env: dict[str, str]) -> Iterator[ChartRepo]:
    with serve_chart_repo(tmp_path, helm_env) as repo:
        yield repo
