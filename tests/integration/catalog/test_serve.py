"""`appflow catalog serve` is a Helm repository that real helm can add, search and template."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.integration.catalog.conftest import CATALOG, free_port, helm, helm_binary


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    helm_binary()
    port = free_port()
    env = dict(os.environ)
    env.update(APPFLOW_HOME=str(tmp_path / "home"), APPFLOW_CACHE_DIR=str(tmp_path / "cache"))
    process = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "appflow"),
            "catalog",
            "serve",
            "--listen",
            f"127.0.0.1:{port}",
            "--catalog",
            str(CATALOG),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/index.yaml", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                _, err = (
                    process.communicate(timeout=5) if process.poll() is not None else (b"", b"")
                )
                pytest.fail(f"appflow catalog serve did not come up: {err.decode()}")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_index_lists_every_entry_with_a_digest(served: str) -> None:
    index = yaml.safe_load(httpx.get(f"{served}/index.yaml").text)
    entries = sorted(p.name for p in CATALOG.iterdir() if (p / "app.yaml").is_file())
    assert sorted(index["entries"]) == entries
    mosquitto = index["entries"]["mosquitto"][0]
    archive = httpx.get(f"{served}/{mosquitto['urls'][0]}")
    assert archive.status_code == 200
    assert hashlib.sha256(archive.content).hexdigest() == mosquitto["digest"]
    assert httpx.get(f"{served}/../app.yaml").status_code == 404


def test_real_helm_adds_searches_and_templates(served: str, helm_env: dict[str, str]) -> None:
    helm(helm_env, "repo", "add", "appflow", served)
    found = helm(helm_env, "search", "repo", "appflow/", "-o", "yaml").stdout
    names = {item["name"]: item for item in yaml.safe_load(found)}
    assert "appflow/mosquitto" in names
    assert names["appflow/mosquitto"]["version"] == "1.0.0"
    assert "appflow/redis" in names
    rendered = helm(
        helm_env, "template", "broker", "appflow/mosquitto", "--set", "persistence.enabled=true"
    ).stdout
    kinds = {doc["kind"] for doc in yaml.safe_load_all(rendered) if doc}
    assert {"Deployment", "Service", "PersistentVolumeClaim"} <= kinds
