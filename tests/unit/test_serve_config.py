"""`appflow serve --config F`: a file with an unknown key or a bad value is refused at start,
naming the field; a valid one becomes the daemon's options."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from appflow.cli.serve import load_serve_config
from appflow.errors import ConfigError


def _serve(config: Path, home: Path) -> subprocess.CompletedProcess[str]:
    # A subprocess with a timeout: a config wrongly accepted would start the server,
    # and the test must then fail, not hang.
    env = {**os.environ, "APPFLOW_HOME": str(home), "APPFLOW_CACHE_DIR": str(home / "cache")}
    try:
        return subprocess.run(
            [sys.executable, "-m", "appflow", "serve", "--config", str(config)],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"appflow serve accepted {config.read_text()!r} and kept running")


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("workers: 2\nworkres: 4\n", "workres: unknown key"),
        ("listen: 127.0.0.1:0\nworkers: four\n", "workers: 'four' is not of type 'integer'"),
        ("drift: 'yes'\n", "drift: 'yes' is not of type 'boolean'"),
        ("listen: localhost\n", "listen: 'localhost' does not match"),
        ("resyncSeconds: 0\n", "resyncSeconds: 0 is less than the minimum of 1"),
    ],
)
def test_a_bad_config_is_refused_at_start_naming_the_field(
    tmp_path: Path, content: str, expected: str
) -> None:
    config = tmp_path / "serve.yaml"
    config.write_text(content)
    done = _serve(config, tmp_path / "home")
    assert done.returncode != 0, done.stdout + done.stderr
    assert expected in done.stderr, done.stderr
    assert str(config) in done.stderr, "the message names the file"
    assert "Traceback" not in done.stderr


def test_every_unknown_key_is_named_with_the_known_ones(tmp_path: Path) -> None:
    config = tmp_path / "serve.yaml"
    config.write_text("bogus: 1\nworkers: 2\nextra: [1]\n")
    with pytest.raises(ConfigError) as caught:
        load_serve_config(config, {})
    message = str(caught.value)
    assert "bogus: unknown key" in message
    assert "extra: unknown key" in message
    assert "workers" in message.split("known:", 1)[1], "the known keys are listed"


def test_a_valid_config_sets_the_options_and_flags_win(tmp_path: Path) -> None:
    config = tmp_path / "serve.yaml"
    config.write_text(
        "listen: 0.0.0.0:9090\nworkers: 8\nresyncSeconds: 120\npollSeconds: 30\ndrift: false\n"
    )
    loaded = load_serve_config(config, {"workers": 2, "resyncSeconds": None})
    assert (loaded.host, loaded.port) == ("0.0.0.0", 9090)
    assert loaded.daemon.workers == 2, "a flag wins over the file"
    assert loaded.daemon.resync_seconds == 120.0, "an unset flag leaves the file's value"
    assert loaded.daemon.poll_seconds == 30.0
    assert loaded.daemon.drift is False


# -- item 16: no unauthenticated API on the network -----------------------------------------------


@pytest.mark.parametrize("listen", ["0.0.0.0:0", "192.0.2.10:0", "edge-box.example.com:0"])
def test_an_api_without_token_on_the_network_is_refused_at_start(
    tmp_path: Path, listen: str
) -> None:
    config = tmp_path / "serve.yaml"
    config.write_text(f"listen: {listen}\nrequireToken: false\n")
    done = _serve(config, tmp_path / "home")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "requireToken: false serves the API without authentication" in done.stderr
    assert "insecureApiWithoutTokenOnNetwork" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("listen", ["127.0.0.1:0", "127.0.0.2:0", "localhost:0"])
def test_an_api_without_token_is_accepted_on_loopback(tmp_path: Path, listen: str) -> None:
    config = tmp_path / "serve.yaml"
    config.write_text(f"listen: {listen}\nrequireToken: false\n")
    loaded = load_serve_config(config, {})
    assert loaded.require_token is False


def test_the_loudly_named_override_lets_it_through(tmp_path: Path) -> None:
    config = tmp_path / "serve.yaml"
    config.write_text(
        "listen: 0.0.0.0:0\nrequireToken: false\ninsecureApiWithoutTokenOnNetwork: true\n"
    )
    loaded = load_serve_config(config, {})
    assert (loaded.host, loaded.require_token, loaded.insecure_no_token_on_network) == (
        "0.0.0.0",
        False,
        True,
    )
