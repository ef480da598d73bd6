"""The dashboard's doors, over real HTTP (uvicorn on loopback, a real store): sign-in,
the session cookie, CSRF, read-only tokens, revocation, errors as messages, no secrets,
server-side pagination, and the event stream."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from appflow.model.records import AppRecord, DeploymentRecord
from appflow.model.tokens import hash_token, new_token
from tests.integration.server.conftest import KUBECONFIG, Served


def _signed_in(served: Served, token: str) -> httpx.Client:
    client = httpx.Client(base_url=served.url, timeout=10)
    page = client.get("/ui/login")
    nonce = re.search(r'name="nonce" value="([^"]+)"', page.text)
    assert nonce, page.text
    answer = client.post(
        "/ui/login", data={"token": token, "nonce": nonce.group(1), "next": "/ui/"}
    )
    assert answer.status_code == 303, answer.text
    return client


def _csrf(client: httpx.Client, path: str = "/ui/") -> str:
    found = re.search(r'<meta name="csrf-token" content="([^"]*)">', client.get(path).text)
    assert found
    return found.group(1)


def test_pages_need_a_session_and_the_cookie_is_locked_down(served: Served) -> None:
    anonymous = httpx.Client(base_url=served.url, timeout=10)
    first = anonymous.get("/ui/apps/web")
    assert first.status_code == 303
    assert first.headers["location"].startswith("/ui/login?next=%2Fui%2Fapps%2Fweb")
    assert anonymous.get("/", follow_redirects=True).url.path == "/ui/login"

    wrong = anonymous.get("/ui/login")
    nonce = re.search(r'name="nonce" value="([^"]+)"', wrong.text)
    assert nonce
    refused = anonymous.post("/ui/login", data={"token": new_token(), "nonce": nonce.group(1)})
    assert refused.status_code == 401
    assert "not valid" in refused.text

    client = _signed_in(served, served.token)
    cookie = next(c for c in client.cookies.jar if c.name == "appflow_session")
    raw = cookie._rest  # type: ignore[attr-defined]
    assert {k.lower() for k in raw} >= {"httponly", "samesite"}
    assert raw.get("SameSite", raw.get("samesite")).lower() == "strict"
    assert not cookie.secure, "plain HTTP: a Secure cookie would never come back"
    assert served.token not in cookie.value, "the cookie holds the token's hash, not the token"
    page = client.get("/ui/")
    assert page.status_code == 200
    assert "default-src 'self'" in page.headers["content-security-policy"]

    forged = httpx.Client(
        base_url=served.url, timeout=10, cookies={"appflow_session": cookie.value[:-2] + "xx"}
    )
    assert forged.get("/ui/").status_code == 303


def test_a_sign_in_form_from_another_page_is_refused(served: Served) -> None:
    client = httpx.Client(base_url=served.url, timeout=10)
    # No login nonce cookie: the form did not come from this dashboard's sign-in page.
    answer = client.post("/ui/login", data={"token": served.token, "nonce": "made-up"})
    assert answer.status_code == 303
    assert answer.headers["location"] == "/ui/login"
    assert "appflow_session" not in answer.cookies


def test_every_change_needs_the_csrf_token_and_is_recorded_with_the_token_name(
    served: Served,
) -> None:
    client = _signed_in(served, served.token)
    refused = client.post("/ui/apps/web/sync", data={})
    assert refused.status_code == 403
    assert "CSRF" in refused.text
    wrong = client.post("/ui/apps/web/sync", data={"_csrf": "0" * 43})
    assert wrong.status_code == 403
    assert served.triggers.apps == []
    for path in (
        "/ui/apps/web/rollback/1",
        "/ui/apps/web/rollout/pause",
        "/ui/install",
        "/ui/installs/web/uninstall",
        "/ui/logout",
    ):
        assert client.post(path, data={}).status_code == 403, path

    done = client.post("/ui/apps/web/sync", data={"_csrf": _csrf(client), "cluster": "berlin-1"})
    assert done.status_code == 303
    assert served.triggers.apps == [("web", "user", "berlin-1")]
    assert "sync of web on berlin-1 queued" in client.get(done.headers["location"]).text
    actions = [e for e in served.store.list_events(app="web") if e.kind == "action"]
    assert [e.message for e in actions] == ["sync requested on berlin-1 (token tests)"]

    header = client.post("/ui/apps/web/sync", headers={"X-CSRF-Token": _csrf(client)})
    assert header.status_code == 303


def test_a_read_only_token_sees_no_buttons_and_is_refused(served: Served) -> None:
    viewer = new_token()
    served.store.add_token("viewer", token_hash=hash_token(viewer), scope="read-only")
    client = _signed_in(served, viewer)
    for path in (
        "/ui/",
        "/ui/apps/web",
        "/ui/catalog",
        "/ui/installs",
        "/ui/rollouts",
        "/ui/clusters",
    ):
        page = client.get(path)
        assert page.status_code == 200, path
        forms = re.findall(r'<form method="post" action="([^"]+)"', page.text)
        assert forms == ["/ui/logout"], (path, forms)
        assert "read-only" in page.text
    refused = client.post("/ui/apps/web/sync", data={"_csrf": _csrf(client)})
    assert refused.status_code == 403
    assert "token viewer is read-only" in refused.text
    assert client.get("/ui/install?entry=mosquitto").status_code == 403
    assert served.triggers.apps == []

    api = served.client(token=viewer)
    assert api.get("/api/v1/apps").status_code == 200
    answer = api.post("/api/v1/apps/web/sync")
    assert answer.status_code == 403
    assert "read-only" in answer.json()["error"]
    assert api.post("/api/v1/repos/retail/refresh").status_code == 403
    assert served.triggers.apps == []
    assert served.triggers.repos == []


def test_a_revoked_token_signs_the_browser_out_with_a_message(served: Served) -> None:
    token = new_token()
    served.store.add_token("brief", token_hash=hash_token(token))
    client = _signed_in(served, token)
    assert client.get("/ui/").status_code == 200
    served.store.delete_token("brief")
    answer = client.get("/ui/")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/ui/login"
    shown = client.get("/ui/login")
    assert "your token was revoked or has expired" in shown.text


def test_errors_are_messages_and_no_secret_reaches_a_page(served: Served) -> None:
    client = _signed_in(served, served.token)
    missing = client.get("/ui/apps/nope")
    assert missing.status_code == 404
    assert "app nope: no such app" in missing.text
    assert "Traceback" not in missing.text
    bad = client.get("/ui/?selector=env%20in%20(")
    assert bad.status_code == 200
    assert 'class="error"' in bad.text
    for path in ("/ui/", "/ui/clusters", "/ui/apps/web", "/ui/events"):
        text = client.get(path).text
        assert KUBECONFIG not in text, path
        assert "kubeconfig" not in text.lower(), path
        assert served.token not in text, path
        assert served.secret_file.read_text().strip() not in text, path


def test_the_grid_is_paginated_and_filtered_on_the_server(served: Served) -> None:
    for i in range(60):
        served.store.put_app(
            AppRecord(name=f"a-{i:02d}", source="git", repo="retail", path=f"p{i}")
        )
        served.store.put_deployment(
            DeploymentRecord(
                app=f"a-{i:02d}", cluster="berlin-1", state="Ready" if i % 3 else "Modified"
            )
        )
    client = _signed_in(served, served.token)
    first = client.get("/ui/?per_page=25")
    rows = re.findall(r'<tr data-app="([^"]+)">', first.text)
    assert rows == [f"a-{i:02d}" for i in range(25)]
    assert "apps 1\u201325 of 61" in first.text
    modified = client.get("/ui/?state=Modified&per_page=200")
    assert re.findall(r'<tr data-app="([^"]+)">', modified.text) == [
        f"a-{i:02d}" for i in range(0, 60, 3)
    ]
    offline = served.store.get_cluster("berlin-1")
    served.store.put_cluster(type(offline)(**{**offline.__dict__, "state": "Offline"}))
    silent = client.get("/ui/?q=a-01")
    assert '<td class="s-Offline"' in silent.text
    assert "Offline (last known: Ready)" in silent.text
    assert '<td class="s-Ready"' not in silent.text, "a silent cluster is never shown Ready"
    columns = client.get("/ui/?selector=env%3Ddev")
    assert re.findall(r'data-cluster="([^"]+)"', columns.text) == ["lab-1"]
    api = served.api().get(
        "/api/v1/overview", params={"state": "Modified", "per_page": 5, "page": 2}
    )
    assert api.status_code == 200
    body = api.json()
    assert [a["name"] for a in body["apps"]] == ["a-15", "a-18", "a-21", "a-24", "a-27"]
    assert body["total_apps"] == 20
    assert body["pages"] == 4


def _read_stream(
    client: httpx.Client,
    params: dict[str, str],
    until: Callable[[list[tuple[str, Any]]], bool],
    *,
    connected: Callable[[], None] = lambda: None,
) -> list[tuple[str, Any]]:
    """The dashboard stream's messages (event, data) until UNTIL holds for those seen;
    CONNECTED runs once the stream answered."""
    seen: list[tuple[str, Any]] = []
    with client.stream("GET", "/ui/stream", params=params, timeout=30) as stream:
        lines = stream.iter_lines()
        assert next(lines).startswith("retry:")
        connected()
        event = ""
        deadline = time.monotonic() + 20
        for line in lines:
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                seen.append((event, json.loads(line[6:])))
                if until(seen):
                    return seen
            if time.monotonic() > deadline:
                pytest.fail(f"the stream did not send what was awaited within 20s; saw {seen}")
    pytest.fail(f"the stream ended; saw {seen}")


def _cell_in(seen: list[tuple[str, Any]], app: str, cluster: str, state: str) -> bool:
    return any(
        e == "cells"
        and any(c["app"] == app and c["cluster"] == cluster and c["state"] == state for c in d)
        for e, d in seen
    )


def _modified(served: Served, message: str) -> None:
    served.store.add_event(
        kind="drift", app="web", cluster="berlin-1", message=message, outcome="Modified"
    )
    record = served.store.get_deployment("web", "berlin-1")
    served.store.put_deployment(DeploymentRecord(**{**record.__dict__, "state": "Modified"}))


def test_the_event_stream_sends_new_events_and_changed_cells(served: Served) -> None:
    client = _signed_in(served, served.token)
    seen = _read_stream(
        client,
        {"apps": "web"},
        lambda seen: _cell_in(seen, "web", "berlin-1", "Modified"),
        connected=lambda: _modified(served, "hand edit"),
    )
    assert "hand edit" in [d["message"] for e, d in seen if e == "appflow"]


def test_a_change_between_the_page_and_its_stream_reaches_the_page(served: Served) -> None:
    """The page is rendered, then the app changes, then the browser opens the stream (on a
    busy machine a sync ends in that gap): the stream sends the event and the changed cell,
    though both came before it opened."""
    client = _signed_in(served, served.token)
    page = client.get("/ui/apps/web")
    assert 'data-cluster="berlin-1"' in page.text
    stream = re.search(r'data-stream="([^"]+)"', page.text)
    assert stream, page.text
    query = dict(parse_qsl(urlsplit(stream.group(1).replace("&amp;", "&")).query))
    assert query["app"] == "web"
    assert query["since"].isdecimal()
    _modified(served, "edited before the stream opened")
    seen = _read_stream(
        client,
        query,
        lambda seen: (
            _cell_in(seen, "web", "berlin-1", "Modified") and any(e == "appflow" for e, _ in seen)
        ),
    )
    assert "edited before the stream opened" in [d["message"] for e, d in seen if e == "appflow"]


def test_a_rollout_is_paused_and_resumed_from_its_page(served: Served) -> None:
    from appflow.model.records import RolloutPartitionRecord, RolloutRecord

    served.store.put_rollout(
        RolloutRecord(
            app="web",
            revision=3,
            state="Progressing",
            current=1,
            partitions=(
                RolloutPartitionRecord(
                    name="canary", clusters=("lab-1",), max_unavailable=1, state="Ready"
                ),
                RolloutPartitionRecord(
                    name="rest",
                    clusters=("berlin-1", "lab-1"),
                    max_unavailable=1,
                    state="Progressing",
                ),
            ),
        )
    )
    client = _signed_in(served, served.token)
    page = client.get("/ui/rollouts")
    assert "canary" in page.text
    assert "batch 2: " in page.text, "the rest partition is cut into batches of max unavailable"
    paused = client.post(
        "/ui/apps/web/rollout/pause", data={"_csrf": _csrf(client), "back": "/ui/rollouts"}
    )
    assert paused.status_code == 303
    assert paused.headers["location"] == "/ui/rollouts"
    assert served.store.get_rollout("web").state == "Paused"
    assert served.store.get_rollout("web").message == "paused by token tests"
    resumed = client.post("/ui/apps/web/rollout/resume", data={"_csrf": _csrf(client)})
    assert resumed.status_code == 303
    assert served.store.get_rollout("web").state == "Progressing"
    assert served.triggers.apps == [("web", "user", None)], "resuming syncs the app"
    api = served.api().get("/api/v1/rollouts").json()
    assert [(r["app"], r["state"], r["states"]) for r in api] == [
        ("web", "Progressing", {"berlin-1": "ErrApplied"})
    ]


def test_the_api_serves_what_the_dashboard_shows(served: Served) -> None:
    api = served.api()
    objects = api.get("/api/v1/apps/web/objects")
    assert objects.status_code == 200
    [only] = objects.json()["berlin-1"]  # the inventory the seed records
    assert (only["apiVersion"], only["kind"], only["namespace"], only["name"]) == (
        "apps/v1",
        "Deployment",
        "shop",
        "web",
    )
    match = api.get("/api/v1/catalog/match", params={"selector": "env=prod"})
    assert match.json() == ["berlin-1"]
    refused = api.get("/api/v1/catalog/match", params={"selector": "env=prod", "all": "true"})
    assert refused.status_code == 400
    assert "exactly one of" in refused.json()["error"]
    no_engine = api.get("/api/v1/apps/web/diff")
    assert no_engine.status_code == 400
    assert "runs without the engine" in no_engine.json()["error"]
