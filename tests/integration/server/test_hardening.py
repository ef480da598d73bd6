"""The HTTP surface under abuse, over real HTTP (issue 10, items 15, 17, 18, 19, 21).

Expired tokens, replays after a restart, nested and slow and abandoned bodies,
a store locked by another process, and probes for repository names.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appflow.cli.main import cli
from appflow.model.records import utc_now
from appflow.model.tokens import hash_token, new_token
from appflow.server.app import create_app
from tests.helpers import eventually
from tests.integration.server.conftest import RecordingTriggers, Served, ServerThread
from tests.integration.server.support import SHA, generic_push


def post(served: Served, provider: str, headers: dict[str, str], body: bytes) -> Any:
    with served.client() as client:
        return client.post(f"/hooks/{provider}", headers=headers, content=body)


@pytest.fixture
def logged(caplog: pytest.LogCaptureFixture) -> Iterator[Callable[[], list[str]]]:
    """The lines the server logged so far, appflow's and uvicorn's (a traceback is many lines)."""
    caplog.set_level(logging.INFO)
    uvicorn = logging.getLogger("uvicorn")  # it does not propagate to the root logger
    uvicorn.addHandler(caplog.handler)
    try:
        yield lambda: [
            line
            for r in caplog.records
            if not r.name.startswith(("httpx", "httpcore"))  # the test's own client
            for line in caplog.handler.format(r).splitlines()
        ]
    finally:
        uvicorn.removeHandler(caplog.handler)


def raw_request(served: Served, head: str, body: bytes = b"") -> socket.socket:
    """An HTTP request written by hand on a socket left open (for slow and broken clients)."""
    sock = socket.create_connection(("127.0.0.1", int(served.url.rsplit(":", 1)[1])), timeout=30)
    sock.sendall(head.encode() + b"\r\n\r\n" + body)
    return sock


def read_response(sock: socket.socket) -> str:
    """One whole HTTP response from SOCK (headers, then Content-Length bytes of body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(4096) or b"\r\n\r\n"
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        (
            int(v)
            for k, _, v in (h.partition(b":") for h in head.split(b"\r\n"))
            if k.lower() == b"content-length"
        ),
        0,
    )
    while len(body) < length:
        chunk = sock.recv(4096)
        if not chunk:
            break
        body += chunk
    return (head + b"\r\n\r\n" + body).decode(errors="replace")


# -- 15: tokens expire --------------------------------------------------------------------------


def test_a_token_with_a_ttl_shows_its_expiry_and_is_refused_once_expired(served: Served) -> None:
    runner = CliRunner()
    created = runner.invoke(cli, ["token", "create", "ci", "--ttl", "90d"])
    assert created.exit_code == 0, created.output
    assert "it expires at" in created.stderr
    with served.client(token=created.stdout.strip()) as client:
        assert client.get("/api/v1/apps").status_code == 200

    old = new_token()
    served.store.add_token("old", token_hash=hash_token(old), expires_at=utc_now() - timedelta(1))
    with served.client(token=old) as client:
        answer = client.get("/api/v1/apps")
    assert answer.status_code == 401
    assert "the bearer token 'old' expired at" in answer.json()["error"]
    assert "--ttl" in answer.json()["hint"]

    listed = json.loads(runner.invoke(cli, ["token", "list", "-o", "json"]).stdout)
    rows = {t["name"]: t for t in listed}
    assert rows["tests"]["expires"] is None
    assert rows["ci"]["expires"] is not None
    assert not rows["ci"]["expired"]
    assert rows["old"]["expired"]
    table = runner.invoke(cli, ["token", "list"], env={"COLUMNS": "200"}).stdout
    assert "EXPIRES" in table
    assert "(expired)" in table
    bad = runner.invoke(cli, ["token", "create", "x", "--ttl", "soon"])
    assert bad.exit_code == 1
    assert "--ttl 'soon' is not a duration" in bad.stderr


# -- 17: a replay is refused after a restart ---------------------------------------------------


def test_a_replayed_generic_delivery_is_refused_after_a_restart(served: Served) -> None:
    headers, body = generic_push(delivery="build-1")
    assert post(served, "generic", headers, body).status_code == 202
    # The same store, a new server process as far as the guard knows.
    restarted = create_app(store=served.store, triggers=RecordingTriggers())
    with ServerThread(restarted) as server:
        again = Served(**{**served.__dict__, "url": server.url})
        answer = post(again, "generic", headers, body)
    assert answer.status_code == 401
    assert "was received before" in answer.json()["error"]


# -- 18: bodies that are nested, slow, or never finished ----------------------------------------


def test_deeply_nested_json_is_a_400_with_one_log_line(
    served: Served, logged: Callable[[], list[str]]
) -> None:
    body = b'{"repository": ' + b"[" * 30_000 + b"]" * 30_000 + b"}"
    headers = {"Content-Type": "application/json", "X-GitHub-Event": "push"}
    answer = post(served, "github", headers, body)
    assert answer.status_code == 400
    assert "nested more than 64 levels deep" in answer.json()["error"]
    assert len(logged()) == 1, logged()


def test_a_client_leaving_mid_body_is_one_log_line(
    served: Served, logged: Callable[[], list[str]]
) -> None:
    head = (
        "POST /hooks/github HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        "X-GitHub-Event: push\r\nContent-Length: 60000"
    )
    sock = raw_request(served, head, b'{"ref": "refs/heads/main"')
    sock.close()
    eventually(lambda: bool(logged()), timeout=30, what="the server to log the abandoned request")
    found = logged()
    assert len(found) == 1, found
    assert "went away mid-body" in found[0]


@pytest.fixture
def impatient(served: Served) -> Iterator[Served]:
    """A second server on the same store that waits half a second for a body."""
    app = create_app(store=served.store, triggers=served.triggers, body_timeout_seconds=0.5)
    with ServerThread(app) as server:
        yield Served(**{**served.__dict__, "url": server.url, "app": app})


def test_a_body_that_does_not_arrive_in_time_gets_408(
    impatient: Served, logged: Callable[[], list[str]]
) -> None:
    head = (
        "POST /hooks/generic HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        "Content-Length: 1000"
    )
    sock = raw_request(impatient, head, b'{"repository":')
    try:
        answer = read_response(sock)  # blocks until the server answers
    finally:
        sock.close()
    assert answer.startswith("HTTP/1.1 408"), answer
    assert "did not arrive within 0.5 seconds" in answer
    assert len(logged()) == 1, logged()
    assert impatient.triggers.repos == []


# -- 19: reads do not wait for another process's write lock --------------------------------------

HOLD_LOCK = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.read()
conn.execute("ROLLBACK")
"""


def test_api_reads_answer_while_another_process_holds_the_write_lock(served: Served) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(served.store.path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        with served.api() as client:
            # The token was never used: this request wants to record its first use.
            answer = client.get("/api/v1/clusters")
            assert answer.status_code == 200, answer.text
            assert {c["name"] for c in answer.json()} == {"berlin-1", "lab-1"}
            assert client.get("/api/v1/status").status_code == 200
    finally:
        holder.communicate("", timeout=30)
    # Once the lock is free, the use is recorded again.
    with served.api() as client:
        assert client.get("/api/v1/clusters").status_code == 200
    (token,) = [t for t in served.store.list_tokens() if t.name == "tests"]
    assert token.last_used is not None


# -- 21: repository names cannot be probed ------------------------------------------------------


def test_unknown_names_are_answered_like_known_ones_with_a_bad_signature(served: Served) -> None:
    answers = []
    for name in ("tools", "no-such-repo", "unguarded"):  # known, unknown, known without secret
        headers, body = generic_push(name, secret="not-the-secret")
        answer = post(served, "generic", headers, body)
        answers.append((answer.status_code, answer.json()))
    assert answers[0][0] == 401
    assert answers[0] == answers[1] == answers[2]
    unsigned = []
    for name in ("tools", "no-such-repo"):
        headers, body = generic_push(name, secret=None)
        answer = post(served, "generic", headers, body)
        unsigned.append((answer.status_code, answer.json()))
    assert unsigned[0][0] == 401
    assert unsigned[0] == unsigned[1]
    assert served.triggers.repos == []
    headers, body = generic_push("tools")
    assert post(served, "generic", headers, body).json()["repos"] == ["tools"]
    assert served.triggers.repos == [("tools", "webhook", SHA)]


# -- fuzz: whatever arrives at a webhook, the answer is a clear one ------------------------------


@settings(
    max_examples=120,
    deadline=None,
    derandomize=bool(os.environ.get("CI")),
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    provider=st.sampled_from(["github", "gitlab", "gitea", "bitbucket", "generic"]),
    body=st.binary(max_size=200)
    | st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=10),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner),
        max_leaves=15,
    ).map(lambda d: json.dumps(d).encode()),
    sent=st.dictionaries(
        st.sampled_from(
            [
                "X-GitHub-Event",
                "X-Gitlab-Event",
                "X-Gitea-Event",
                "X-Event-Key",
                "X-Hub-Signature-256",
                "X-Appflow-Timestamp",
                "X-Appflow-Signature",
                "X-Appflow-Delivery",
                "X-Gitlab-Token",
            ]
        ),
        st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=30),
    ),
)
def test_any_webhook_delivery_gets_a_clear_answer_never_a_500(
    served: Served, provider: str, body: bytes, sent: dict[str, str]
) -> None:
    answer = post(served, provider, {"Content-Type": "application/json", **sent}, body)
    assert answer.status_code in (200, 202, 400, 401), answer.text
    data = answer.json()
    if answer.status_code >= 400:
        assert data["error"].strip()
    else:
        assert data["result"] in ("queued", "ignored", "pong")
