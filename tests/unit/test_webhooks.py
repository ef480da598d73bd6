"""Webhook signatures, payload parsing, repository matching and replay, with real HMACs."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from appflow.errors import ConfigError, WebhookRejectedError
from appflow.model.records import RepoRecord
from appflow.model.tokens import hash_token, looks_like_token, new_token
from appflow.model.webhooks import (
    MAX_PAYLOAD_DEPTH,
    REPLAY_TTL_SECONDS,
    PushEvent,
    commit_for_ref,
    generic_replay_keys,
    parse_delivery,
    parse_secret_ref,
    push_follows_ref,
    repos_for,
    verify_signature,
)
from appflow.store import SqliteStore, open_store

SECRET = b"s3cret-for-tests"
NOW = 1_700_000_000.0
SHA = "a" * 40


def mac(secret: bytes, message: bytes) -> str:
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def body_of(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload).encode()


GITHUB_PUSH = {
    "ref": "refs/heads/main",
    "after": SHA,
    "deleted": False,
    "repository": {
        "clone_url": "https://github.com/acme/retail.git",
        "ssh_url": "git@github.com:acme/retail.git",
        "html_url": "https://github.com/acme/retail",
        "default_branch": "main",
    },
}


# -- signatures --------------------------------------------------------------------------------


def test_github_signature_accepted_and_forgeries_refused() -> None:
    body = body_of(GITHUB_PUSH)
    good = {"x-hub-signature-256": "sha256=" + mac(SECRET, body)}
    verify_signature("github", secret=SECRET, headers=good, body=body, now=NOW)

    with pytest.raises(WebhookRejectedError) as forged:
        verify_signature("github", secret=b"other", headers=good, body=body, now=NOW)
    assert forged.value.reason == "forged"
    with pytest.raises(WebhookRejectedError) as tampered:
        verify_signature("github", secret=SECRET, headers=good, body=body + b" ", now=NOW)
    assert tampered.value.reason == "forged"
    with pytest.raises(WebhookRejectedError) as unsigned:
        verify_signature("github", secret=SECRET, headers={}, body=body, now=NOW)
    assert unsigned.value.reason == "unsigned"
    # The SHA-1 header GitHub also sends is not enough.
    sha1 = {"x-hub-signature": "sha1=" + hmac.new(SECRET, body, hashlib.sha1).hexdigest()}
    with pytest.raises(WebhookRejectedError):
        verify_signature("github", secret=SECRET, headers=sha1, body=body, now=NOW)


def test_non_ascii_signature_header_is_forged_not_a_crash() -> None:
    with pytest.raises(WebhookRejectedError) as err:
        verify_signature(
            "github",
            secret=SECRET,
            headers={"x-hub-signature-256": "sha256=é"},
            body=b"{}",
            now=NOW,
        )
    assert err.value.reason == "forged"


def test_gitlab_token_compared() -> None:
    verify_signature(
        "gitlab", secret=SECRET, headers={"x-gitlab-token": SECRET.decode()}, body=b"", now=NOW
    )
    with pytest.raises(WebhookRejectedError, match="X-Gitlab-Token"):
        verify_signature(
            "gitlab", secret=SECRET, headers={"x-gitlab-token": "x"}, body=b"", now=NOW
        )


@pytest.mark.parametrize("header", ["x-gitea-signature", "x-gogs-signature"])
def test_gitea_and_gogs_bare_hex_signature(header: str) -> None:
    body = b'{"ref": "refs/heads/main"}'
    verify_signature(
        "gitea", secret=SECRET, headers={header: mac(SECRET, body)}, body=body, now=NOW
    )
    with pytest.raises(WebhookRejectedError):
        verify_signature(
            "gitea", secret=SECRET, headers={header: mac(b"x", body)}, body=body, now=NOW
        )


def test_bitbucket_hub_signature() -> None:
    body = b'{"push": {}}'
    headers = {"x-hub-signature": "sha256=" + mac(SECRET, body)}
    verify_signature("bitbucket", secret=SECRET, headers=headers, body=body, now=NOW)
    with pytest.raises(WebhookRejectedError) as err:
        verify_signature("bitbucket", secret=SECRET, headers={}, body=body, now=NOW)
    assert err.value.reason == "unsigned"


def generic_headers(body: bytes, *, ts: float = NOW, delivery: str = "d-1") -> dict[str, str]:
    stamp = str(int(ts))
    return {
        "x-appflow-timestamp": stamp,
        "x-appflow-delivery": delivery,
        "x-appflow-signature": "sha256=" + mac(SECRET, stamp.encode() + b"." + body),
    }


def test_generic_signature_covers_timestamp_and_body() -> None:
    body = b'{"repository": "https://git.example.com/org/retail"}'
    headers = generic_headers(body)
    verify_signature("generic", secret=SECRET, headers=headers, body=body, now=NOW)
    moved = {**headers, "x-appflow-timestamp": str(int(NOW) + 1)}
    with pytest.raises(WebhookRejectedError) as err:
        verify_signature("generic", secret=SECRET, headers=moved, body=body, now=NOW)
    assert err.value.reason == "forged"


@pytest.mark.parametrize("offset", [-301, 301, -3600])
def test_generic_stale_timestamp_refused(offset: int) -> None:
    body = b"{}"
    headers = generic_headers(body, ts=NOW + offset)
    with pytest.raises(WebhookRejectedError) as err:
        verify_signature("generic", secret=SECRET, headers=headers, body=body, now=NOW)
    assert err.value.reason == "stale"


def test_generic_within_skew_accepted() -> None:
    body = b"{}"
    for offset in (-299, 299):
        headers = generic_headers(body, ts=NOW + offset)
        verify_signature("generic", secret=SECRET, headers=headers, body=body, now=NOW)


def test_generic_needs_delivery_id() -> None:
    body = b"{}"
    headers = generic_headers(body)
    del headers["x-appflow-delivery"]
    with pytest.raises(WebhookRejectedError, match="X-Appflow-Delivery"):
        verify_signature("generic", secret=SECRET, headers=headers, body=body, now=NOW)


# -- replay ------------------------------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    opened = open_store(tmp_path / "appflow.db")
    try:
        yield opened
    finally:
        opened.close()


def test_deliveries_are_remembered_within_the_ttl_and_forgotten_after(store: SqliteStore) -> None:
    assert not store.remember_deliveries(["id:a"], now=0, ttl_seconds=60)
    assert store.remember_deliveries(["id:a"], now=59, ttl_seconds=60)
    assert not store.remember_deliveries(["id:b"], now=59, ttl_seconds=60)
    assert not store.remember_deliveries(["id:a"], now=61, ttl_seconds=60)  # expired, anew


def test_deliveries_survive_reopening_the_store(tmp_path: Path) -> None:
    path = tmp_path / "appflow.db"
    with open_store(path) as first:
        assert not first.remember_deliveries(["id:a"], now=NOW, ttl_seconds=REPLAY_TTL_SECONDS)
    with open_store(path) as second:
        assert second.remember_deliveries(["id:a"], now=NOW + 1, ttl_seconds=REPLAY_TTL_SECONDS)


def test_replay_with_a_fresh_delivery_id_is_caught_by_its_signature(store: SqliteStore) -> None:
    headers = generic_headers(b"{}", delivery="first")
    keys = list(generic_replay_keys(headers))
    assert not store.remember_deliveries(keys, now=NOW, ttl_seconds=REPLAY_TTL_SECONDS)
    renamed = list(generic_replay_keys({**headers, "x-appflow-delivery": "second"}))
    assert store.remember_deliveries(renamed, now=NOW, ttl_seconds=REPLAY_TTL_SECONDS)


@pytest.mark.parametrize("opener", ["[", '{"a":'])
def test_deeply_nested_payloads_are_bad_input_not_a_crash(opener: str) -> None:
    for depth in (MAX_PAYLOAD_DEPTH + 1, 100_000):
        closer = "]" if opener == "[" else "}"
        body = ('{"x":' + opener * depth + "1" + closer * depth + "}").encode()
        with pytest.raises(ConfigError, match="nested more than"):
            parse_delivery("github", {"x-github-event": "push"}, body)


# -- parsing -----------------------------------------------------------------------------------


def test_github_push_parsed() -> None:
    delivery = parse_delivery(
        "github",
        {"x-github-event": "push", "x-github-delivery": "g-1"},
        body_of(GITHUB_PUSH),
    )
    assert delivery.kind == "push"
    (push,) = delivery.pushes
    assert push.branch == "main"
    assert push.commit == SHA
    assert push.delivery_id == "g-1"
    assert push.default_branch == "main"
    assert "git@github.com:acme/retail.git" in push.repo_urls


def test_github_ping_other_events_and_deletions() -> None:
    ping = parse_delivery("github", {"x-github-event": "ping"}, body_of({"zen": "hi"}))
    assert ping.kind == "ping"
    issue = parse_delivery("github", {"x-github-event": "issues"}, b"{}")
    assert issue.kind == "ignored"
    assert "issues" in issue.reason
    deleted = parse_delivery(
        "github",
        {"x-github-event": "push"},
        body_of({**GITHUB_PUSH, "deleted": True, "after": "0" * 40}),
    )
    assert deleted.kind == "ignored"
    assert "deleted" in deleted.reason


def test_github_tag_push() -> None:
    delivery = parse_delivery(
        "github", {"x-github-event": "push"}, body_of({**GITHUB_PUSH, "ref": "refs/tags/v1.2.0"})
    )
    (push,) = delivery.pushes
    assert (push.branch, push.tag) == (None, "v1.2.0")


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (b"payload=%7B%7D", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (body_of({"ref": "refs/heads/main"}), "no repository"),
    ],
)
def test_bad_payloads_are_config_errors(body: bytes, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        parse_delivery("github", {"x-github-event": "push"}, body)


def test_missing_event_header_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="X-GitHub-Event"):
        parse_delivery("github", {}, body_of(GITHUB_PUSH))


def test_gitlab_push_and_tag_push() -> None:
    payload = {
        "object_kind": "push",
        "ref": "refs/heads/main",
        "checkout_sha": SHA,
        "project": {
            "git_http_url": "https://gitlab.example.com/group/app.git",
            "git_ssh_url": "git@gitlab.example.com:group/app.git",
            "default_branch": "main",
        },
    }
    push = parse_delivery("gitlab", {"x-gitlab-event": "Push Hook"}, body_of(payload))
    assert push.pushes[0].branch == "main"
    assert push.pushes[0].commit == SHA
    tag = parse_delivery(
        "gitlab",
        {"x-gitlab-event": "Tag Push Hook"},
        body_of({**payload, "object_kind": "tag_push", "ref": "refs/tags/v2"}),
    )
    assert tag.pushes[0].tag == "v2"
    mr = parse_delivery("gitlab", {"x-gitlab-event": "Merge Request Hook"}, body_of(payload))
    assert mr.kind == "ignored"
    removed = parse_delivery(
        "gitlab", {"x-gitlab-event": "Push Hook"}, body_of({**payload, "checkout_sha": None})
    )
    assert removed.kind == "ignored"


def test_gitea_push() -> None:
    delivery = parse_delivery(
        "gitea", {"x-gitea-event": "push", "x-gitea-delivery": "t-1"}, body_of(GITHUB_PUSH)
    )
    assert delivery.pushes[0].provider == "gitea"
    assert delivery.delivery_id == "t-1"


def test_bitbucket_push_with_several_changes() -> None:
    payload = {
        "repository": {
            "full_name": "team/site",
            "links": {"html": {"href": "https://bitbucket.org/team/site"}},
            "mainbranch": {"name": "main"},
        },
        "push": {
            "changes": [
                {"new": {"type": "branch", "name": "main", "target": {"hash": SHA}}},
                {"new": {"type": "tag", "name": "v1", "target": {"hash": "b" * 40}}},
                {"new": None, "old": {"type": "branch", "name": "gone"}},
            ]
        },
    }
    delivery = parse_delivery("bitbucket", {"x-event-key": "repo:push"}, body_of(payload))
    assert [(p.branch, p.tag, p.commit) for p in delivery.pushes] == [
        ("main", None, SHA),
        (None, "v1", "b" * 40),
    ]
    other = parse_delivery("bitbucket", {"x-event-key": "pullrequest:created"}, body_of(payload))
    assert other.kind == "ignored"


def test_generic_payload() -> None:
    delivery = parse_delivery(
        "generic",
        {"x-appflow-delivery": "d"},
        body_of({"repository": "retail", "branch": "main", "commit": SHA}),
    )
    assert delivery.pushes[0].repo_urls == ("retail",)
    with pytest.raises(ConfigError, match="no repository"):
        parse_delivery("generic", {}, body_of({"branch": "main"}))
    with pytest.raises(ConfigError, match="branch is not a string"):
        parse_delivery("generic", {}, body_of({"repository": "x", "branch": 3}))


# -- matching ----------------------------------------------------------------------------------


def test_repos_match_across_https_ssh_and_dot_git() -> None:
    repos = [
        RepoRecord(name="ssh", url="git@github.com:acme/retail.git"),
        RepoRecord(name="https", url="https://github.com/acme/retail"),
        RepoRecord(name="other", url="https://github.com/acme/other.git"),
    ]
    found = repos_for(["ssh://git@GitHub.com:22/acme/retail.git/"], repos)
    assert [r.name for r in found] == ["ssh", "https"]
    assert repos_for(["not a url at all ::"], repos) == []
    assert [r.name for r in repos_for(["other"], repos, by_name=True)] == ["other"]
    assert repos_for(["other"], repos) == []


def test_push_follows_ref() -> None:
    def push(
        branch: str | None = None, tag: str | None = None, default: str | None = None
    ) -> PushEvent:
        return PushEvent(
            repo_urls=("r",),
            branch=branch,
            tag=tag,
            commit=None,
            delivery_id=None,
            provider="generic",
            default_branch=default,
        )

    assert push_follows_ref(push("main"), "main")
    assert push_follows_ref(push("main"), "refs/heads/main")
    assert not push_follows_ref(push("dev"), "main")
    assert push_follows_ref(push("main", default="main"), "HEAD")
    assert not push_follows_ref(push("dev", default="main"), "HEAD")
    assert push_follows_ref(push("dev"), "HEAD")  # default unknown: fetch and see
    assert push_follows_ref(push(tag="v1"), "tag:v1")
    assert not push_follows_ref(push(tag="v2"), "tag:v1")
    assert push_follows_ref(push(tag="v2"), "semver:>=1")
    assert not push_follows_ref(push("main"), "semver:>=1")
    assert not push_follows_ref(push("main"), "commit:abc")
    assert not push_follows_ref(push(tag="main"), "main")


# -- secret references and tokens --------------------------------------------------------------


def test_secret_refs() -> None:
    assert parse_secret_ref("file:/etc/appflow/hook") == ("file", "/etc/appflow/hook")
    assert parse_secret_ref("env:HOOK_SECRET") == ("env", "HOOK_SECRET")
    for bad in ("hook", "file:relative/path", "env:", "vault:x"):
        with pytest.raises(ConfigError):
            parse_secret_ref(bad)


def test_tokens_are_random_and_hashed() -> None:
    a, b = new_token(), new_token()
    assert a != b
    assert a.startswith("af_")
    assert len(a) == 35
    assert looks_like_token(a)
    assert not looks_like_token("af_short")
    assert hash_token(a) == hashlib.sha256(a.encode()).hexdigest()
    assert a not in hash_token(a)


def _push(
    *, branch: str | None = "main", tag: str | None = None, default: str | None = None
) -> PushEvent:
    return PushEvent(
        repo_urls=("https://git.example.com/retail.git",),
        branch=branch,
        tag=tag,
        commit="AB" * 20,
        delivery_id="1",
        provider="github",
        default_branch=default,
    )


def test_a_push_names_the_commit_of_the_ref_a_repository_follows() -> None:
    assert commit_for_ref(_push(), "main") == "ab" * 20
    assert commit_for_ref(_push(branch=None, tag="v1.2.0"), "tag:v1.2.0") == "ab" * 20
    assert commit_for_ref(_push(default="main"), "HEAD") == "ab" * 20


def test_a_push_that_may_not_move_the_followed_ref_names_no_commit() -> None:
    assert commit_for_ref(_push(branch="dev"), "main") is None
    # HEAD without the default branch in the payload: any branch passes the filter.
    assert commit_for_ref(_push(), "HEAD") is None
    # A new tag need not be the highest match of the range: the fetch resolves it.
    assert commit_for_ref(_push(branch=None, tag="v1.3.0"), "semver:1.x") is None
    assert commit_for_ref(replace(_push(), commit="main"), "main") is None
