"""Webhook receivers over real HTTP: what is queued, what is refused, and that refusals fetch nothing."""

from __future__ import annotations

import json
import socket
import statistics
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.server.conftest import Served
from tests.integration.server.support import BUILDERS, REPO_OF, SHA, generic_push, github_push

PROVIDERS = sorted(BUILDERS)


def post(
    served: Served, provider: str, headers: dict[str, str], body: bytes
) -> tuple[int, dict[str, Any]]:
    with served.client() as client:
        response = client.post(f"/hooks/{provider}", headers=headers, content=body)
    return response.status_code, response.json()


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_signed_push_queues_one_fetch_of_its_repository(served: Served, provider: str) -> None:
    headers, body = BUILDERS[provider]()
    status, answer = post(served, provider, headers, body)
    assert (status, answer["result"]) == (202, "queued"), answer
    assert answer["repos"] == [REPO_OF[provider]]
    assert served.triggers.repos == [(REPO_OF[provider], "webhook", SHA)]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_forged_signature_is_refused_and_nothing_fetched(served: Served, provider: str) -> None:
    headers, body = BUILDERS[provider](secret="not-the-secret")
    status, answer = post(served, provider, headers, body)
    assert status == 401
    assert "does not match" in answer["error"]
    assert answer["hint"]
    assert served.triggers.repos == []


@pytest.mark.parametrize("provider", PROVIDERS)
def test_an_unsigned_delivery_is_refused(served: Served, provider: str) -> None:
    headers, body = BUILDERS[provider](secret=None)
    status, answer = post(served, provider, headers, body)
    assert status == 401
    assert "not signed" in answer["error"]
    assert served.triggers.repos == []


def test_a_tampered_body_is_refused(served: Served) -> None:
    headers, body = github_push()
    status, _ = post(served, "github", headers, body.replace(b"main", b"prod"))
    assert status == 401
    assert served.triggers.repos == []


@pytest.mark.parametrize("offset", [-6 * 60, 6 * 60])
def test_a_stale_generic_delivery_is_refused(served: Served, offset: int) -> None:
    headers, body = generic_push(timestamp=time.time() + offset)
    status, answer = post(served, "generic", headers, body)
    assert status == 401
    assert "seconds off" in answer["error"]
    assert served.triggers.repos == []


def test_a_replayed_generic_delivery_is_refused(served: Served) -> None:
    headers, body = generic_push(delivery="build-42")
    assert post(served, "generic", headers, body)[0] == 202
    status, answer = post(served, "generic", headers, body)
    assert status == 401
    assert "received before" in answer["error"]
    # A new id on the captured request does not help: the signature is remembered too.
    status, _ = post(served, "generic", {**headers, "X-Appflow-Delivery": "build-43"}, body)
    assert status == 401
    assert len(served.triggers.repos) == 1


def test_a_forged_delivery_does_not_burn_the_real_delivery_id(served: Served) -> None:
    forged_headers, body = generic_push(delivery="build-7", secret="wrong")
    assert post(served, "generic", forged_headers, body)[0] == 401
    headers, body = generic_push(delivery="build-7")
    assert post(served, "generic", headers, body)[0] == 202


def test_an_oversize_body_is_refused_with_413(served: Served) -> None:
    headers, body = github_push()
    padded = json.loads(body)
    padded["padding"] = "x" * (70 * 1024)  # over the 64 KiB limit of the fixture
    status, answer = post(served, "github", headers, json.dumps(padded).encode())
    assert status == 413
    assert "larger than 65536 bytes" in answer["error"]
    assert served.triggers.repos == []


def test_an_oversize_body_without_content_length_is_cut_off_while_reading(served: Served) -> None:
    headers, _ = github_push()

    def chunks() -> Iterator[bytes]:
        for _ in range(100):
            yield b"x" * 4096

    with served.client() as client:
        response = client.post("/hooks/github", headers=headers, content=chunks())
    assert response.status_code == 413
    assert served.triggers.repos == []


def test_a_body_that_is_not_json_is_a_400(served: Served) -> None:
    headers, _ = github_push()
    status, answer = post(served, "github", headers, b"payload=%7B%22ref%22%7D")
    assert status == 400
    assert answer["error"] == "the webhook payload is not JSON"
    assert "application/json" in answer["hint"]
    assert served.triggers.repos == []


@pytest.mark.parametrize(
    ("provider", "event"),
    [
        ("github", "issues"),
        ("gitlab", "Merge Request Hook"),
        ("gitea", "fork"),
        ("bitbucket", "repo:fork"),
    ],
)
def test_an_unknown_event_type_is_ignored(served: Served, provider: str, event: str) -> None:
    headers, body = BUILDERS[provider](event=event)
    status, answer = post(served, provider, headers, body)
    assert (status, answer["result"]) == (202, "ignored")
    assert event in answer["reason"]
    assert served.triggers.repos == []


@pytest.mark.parametrize("provider", ["github", "gitlab", "bitbucket", "generic"])
def test_a_branch_that_is_not_followed_is_ignored(served: Served, provider: str) -> None:
    headers, body = BUILDERS[provider](branch="feature/x")
    status, answer = post(served, provider, headers, body)
    assert (status, answer["result"]) == (202, "ignored")
    assert "follows main, not branch feature/x" in answer["reason"]
    assert served.triggers.repos == []


def test_a_repo_following_head_takes_pushes_to_the_default_branch_only(served: Served) -> None:
    headers, body = BUILDERS["gitea"](branch="dev")
    assert post(served, "gitea", headers, body)[1]["result"] == "ignored"
    headers, body = BUILDERS["gitea"](branch="main")
    assert post(served, "gitea", headers, body)[1]["result"] == "queued"
    assert served.triggers.repos == [("site", "webhook", SHA)]


# The generic receiver answers unknown names as forged deliveries: see test_hardening.py.
@pytest.mark.parametrize("provider", [p for p in PROVIDERS if p != "generic"])
def test_an_unknown_repository_is_ignored(served: Served, provider: str) -> None:
    headers, body = BUILDERS[provider]("https://git.example.com/nobody/nothing.git")
    status, answer = post(served, provider, headers, body)
    assert (status, answer["result"]) == (202, "ignored")
    assert "no registered repository" in answer["reason"]
    assert served.triggers.repos == []


def test_a_repository_without_a_secret_takes_no_webhooks(served: Served) -> None:
    headers, body = github_push("https://github.com/acme/unguarded.git")
    status, answer = post(served, "github", headers, body)
    assert status == 401
    assert "has no webhook secret" in answer["error"]
    assert "set-webhook-secret unguarded" in answer["hint"]
    assert served.triggers.repos == []


def test_the_secret_is_read_at_each_delivery(served: Served) -> None:
    served.secret_file.write_text("rotated")
    headers, body = github_push()
    assert post(served, "github", headers, body)[0] == 401
    headers, body = github_push(secret="rotated")
    assert post(served, "github", headers, body)[0] == 202


def test_the_generic_receiver_takes_a_repository_name(served: Served) -> None:
    headers, body = generic_push("tools")
    status, answer = post(served, "generic", headers, body)
    assert (status, answer["result"]) == (202, "queued")
    assert served.triggers.repos == [("tools", "webhook", SHA)]


def test_github_ping_is_answered(served: Served) -> None:
    headers, body = github_push(event="ping")
    status, answer = post(served, "github", headers, body)
    assert (status, answer) == (200, {"result": "pong", "reason": None, "repos": ["retail"]})
    headers, body = github_push(event="ping", secret="wrong")
    assert post(served, "github", headers, body)[0] == 401
    assert served.triggers.repos == []


def test_deliveries_are_counted_by_result(served: Served) -> None:
    post(served, "github", *github_push())
    post(served, "github", *github_push(secret="wrong"))
    post(served, "github", *github_push(branch="dev"))
    with served.client() as client:
        text = client.get("/metrics").text
    assert 'appflow_webhook_deliveries_total{provider="github",result="queued"} 1.0' in text
    assert 'appflow_webhook_deliveries_total{provider="github",result="forged"} 1.0' in text
    assert 'appflow_webhook_deliveries_total{provider="github",result="ignored"} 1.0' in text


def _post_in_one_write(port: int, path: str, headers: dict[str, str], body: bytes) -> bytes:
    # httpx writes headers and body separately; on loopback Nagle's algorithm and delayed
    # ACKs then add ~40 ms per request, which would measure the client, not the server.
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        head += f"Content-Length: {len(body)}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        sock.sendall(head.encode() + body)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer.split(b"\r\n", 1)[0]


def test_webhook_latency(served: Served) -> None:
    """p50 of a valid delivery answered 202, over loopback (printed, not asserted)."""
    port = int(served.url.rsplit(":", 1)[1])
    seconds: list[float] = []
    for _ in range(50):
        headers, body = github_push()
        started = time.perf_counter()
        status_line = _post_in_one_write(port, "/hooks/github", headers, body)
        seconds.append(time.perf_counter() - started)
        assert status_line.startswith(b"HTTP/1.1 202"), status_line
    assert len(served.triggers.repos) == 50
    print(
        f"\nwebhook 202 latency: p50 {statistics.median(seconds) * 1000:.1f} ms, "
        f"max {max(seconds) * 1000:.1f} ms over {len(seconds)} deliveries"
    )
