"""Who asked for a sync is in the app's history: the name of the API or dashboard token,
or "cli" for `appflow sync` (issue 14's leftover: the trigger alone said only "user").

Through a real `appflow serve` process, its HTTP API and dashboard, with a named token.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.e2e.support import serving, until
from tests.integration.engine.conftest import Fleet
from tests.integration.engine.support import Space, cli, configmap, write_files

pytestmark = pytest.mark.cluster


def _history(base: str, token: str, app: str) -> list[dict[str, Any]]:
    answer = httpx.get(
        f"{base}/api/v1/apps/{app}/history",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    entries: list[dict[str, Any]] = answer.json()
    return entries


def _dashboard_page(base: str, token: str, path: str) -> str:
    with httpx.Client(base_url=base, timeout=10) as client:
        login = client.get("/ui/login")
        nonce = re.search(r'name="nonce" value="([^"]+)"', login.text)
        assert nonce, login.text
        signed = client.post(
            "/ui/login", data={"token": token, "nonce": nonce.group(1), "next": "/ui/"}
        )
        assert signed.status_code == 303, signed.text
        page = client.get(path)
        assert page.status_code == 200, page.text
        return page.text


def test_history_names_the_token_that_asked(fleet: Fleet, space: Space, tmp_path: Path) -> None:
    ns, app = space.namespace, space.app("asked")
    folder = write_files(
        tmp_path / "app",
        {
            "appflow.yaml": yaml.safe_dump({"name": app, "namespace": ns}),
            "config.yaml": [configmap("settings", ns, {"mode": "blue"})],
        },
    )
    assert cli("app", "add", app, "--local", str(folder)).exit_code == 0
    name = f"ops-alice-{space.suffix}"
    created = cli("token", "create", name, "-o", "json")
    assert created.exit_code == 0, created.output
    token = json.loads(created.output)["token"]
    clusters = len(fleet.cluster_names)
    log = tmp_path / "serve.log"

    with serving(fleet, log) as (_, base):
        asked = httpx.post(
            f"{base}/api/v1/apps/{app}/sync",
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        assert asked.status_code == 202, asked.text
        until(
            lambda: (
                sum(
                    e["actor"] == name and e["outcome"] == "succeeded"
                    for e in _history(base, token, app)
                )
                == clusters
            ),
            timeout=120,
            what="the token's sync in the history",
            log=log,
        )
        # `appflow sync` hands the sync to the running serve: still the command line's.
        synced = cli("sync", app)
        assert synced.exit_code == 0, synced.output
        entries = _history(base, token, app)
        # Asked for by people: the token and the command line; the daemon's own start-up
        # sync of every app names no one (its trigger says poll).
        assert {e["actor"] for e in entries if e["trigger"] == "user"} == {name, "cli"}, entries
        assert {e["actor"] for e in entries if e["trigger"] != "user"} <= {""}, entries
        page = _dashboard_page(base, token, f"/ui/apps/{app}")
        assert f"succeeded by {name}" in page, page
        assert "succeeded by cli" in page, page

    shown = cli("app", "history", app)
    assert shown.exit_code == 0, shown.output
    assert shown.output.count(name) == clusters, shown.output
    as_json = json.loads(cli("app", "history", app, "-o", "json").output)
    assert {e["actor"] for e in as_json if e["trigger"] == "user"} == {name, "cli"}
