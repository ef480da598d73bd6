"""appflow's container image, as `make image` builds it with buildah: it runs, and it is
pushed to the local OCI registry the chart's values point at.

The image is built by `make image` (minutes; `.ci/run` builds it before the tests), not here;
without it these tests skip locally and fail under CI.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from appflow import __version__
from tests.helpers import built_tool, unavailable
from tests.integration.oci.conftest import needs_registry, running_registry

ROOT = Path(__file__).resolve().parents[3]
IMAGE = f"localhost/appflow:{__version__}"
HELM_VERSION = re.search(
    r"^HELM_VERSION=(\S+)$", (ROOT / "tools" / "versions.env").read_text(), re.M
)


def _storage() -> Path:
    return Path(os.environ.get("APPFLOW_IMAGE_CACHE", str(_default_cache())))


def _default_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME")
    return (Path(base) if base else Path.home() / ".cache") / "appflow" / "image"


def buildah(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    store = _storage()
    done = subprocess.run(
        [
            "buildah",
            "--root",
            str(store / "storage"),
            "--runroot",
            str(store / "run"),
            "--storage-driver",
            "vfs",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={**os.environ, "TMPDIR": str(store / "tmp")},
    )
    if check and done.returncode != 0:
        pytest.fail(f"buildah {' '.join(args)} failed: {done.stderr}")
    return done


@pytest.fixture(scope="module")
def image() -> str:
    if shutil.which("buildah") is None:
        unavailable("buildah is not installed (Debian: apt-get install buildah; .ci/run does)")
    if buildah("inspect", "--type", "image", IMAGE, check=False).returncode != 0:
        unavailable(f"{IMAGE} is not built; build it with: make image")
    return IMAGE


@pytest.fixture
def container(image: str) -> Iterator[str]:
    name = buildah("from", image).stdout.strip().splitlines()[-1]
    try:
        yield name
    finally:
        buildah("rm", name, check=False)


def _run(container: str, *command: str) -> str:
    done = buildah("run", "--isolation", "chroot", container, "--", *command, check=False)
    assert done.returncode == 0, f"{' '.join(command)}: {done.stdout}{done.stderr}"
    return done.stdout


def test_the_image_runs_appflow_the_controller_and_helm(container: str) -> None:
    assert _run(container, "appflow", "--version").strip() == f"appflow, version {__version__}"
    controller = _run(container, "appflow", "controller", "--help")
    assert "--lease-duration" in controller
    assert "--workspace" in controller
    assert HELM_VERSION is not None
    assert f'Version:"{HELM_VERSION.group(1)}"' in _run(container, "helm", "version")
    assert _run(container, "kustomize", "version").strip()


def test_the_image_runs_as_its_own_user(image: str) -> None:
    config = json.loads(buildah("inspect", "--type", "image", image).stdout)
    assert config["OCIv1"]["config"]["User"] == "10001"
    assert config["OCIv1"]["config"]["Entrypoint"] == ["appflow"]


@needs_registry
def test_the_image_is_pushed_where_the_chart_points(image: str, tmp_path: Path) -> None:
    with running_registry(tmp_path) as registry:
        done = subprocess.run(
            ["bash", str(ROOT / "tools" / "build-image.sh"), "--push-only", registry.host],
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        base = f"http://{registry.host}/v2/appflow/appflow"
        with urllib.request.urlopen(f"{base}/tags/list", timeout=10) as answer:
            assert __version__ in json.load(answer)["tags"]
        request = urllib.request.Request(
            f"{base}/manifests/{__version__}",
            headers={
                "Accept": "application/vnd.oci.image.manifest.v1+json,"
                "application/vnd.docker.distribution.manifest.v2+json"
            },
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert json.load(answer)["layers"]
    # The chart names that repository; its default tag is this version.
    rendered = subprocess.run(
        [
            str(built_tool("helm")),
            "template",
            "hub",
            str(ROOT / "appflow" / "charts" / "appflow-hub"),
            "--set",
            f"image.repository={registry.host}/appflow/appflow",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    (deployment,) = [d for d in yaml.safe_load_all(rendered) if d and d["kind"] == "Deployment"]
    image_ref = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image_ref == f"{registry.host}/appflow/appflow:{__version__}"
    values = yaml.safe_load(
        (ROOT / "appflow" / "charts" / "appflow-hub" / "values.yaml").read_text()
    )
    assert values["image"]["repository"].endswith("/appflow/appflow")
