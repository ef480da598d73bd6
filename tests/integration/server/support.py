"""Signed webhook deliveries as each provider sends them, for the server tests."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from typing import Any

SECRET = "webhook-secret-for-tests"

# -- signed deliveries, as each provider sends them ---------------------------------------------

SHA = "0123456789abcdef0123456789abcdef01234567"


def _mac(secret: str, message: bytes) -> str:
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def github_push(
    url: str = "https://github.com/acme/retail.git",
    *,
    branch: str = "main",
    secret: str | None = SECRET,
    event: str = "push",
) -> tuple[dict[str, str], bytes]:
    body = json.dumps(
        {
            "ref": f"refs/heads/{branch}",
            "after": SHA,
            "repository": {"clone_url": url, "html_url": url.removesuffix(".git")},
        }
    ).encode()
    headers = {
        "Content-Type": "application/json",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": str(uuid.uuid4()),
    }
    if secret is not None:
        headers["X-Hub-Signature-256"] = "sha256=" + _mac(secret, body)
    return headers, body


def gitlab_push(
    url: str = "git@gitlab.example.com:edge/lab.git",
    *,
    branch: str = "main",
    secret: str | None = SECRET,
    event: str = "Push Hook",
) -> tuple[dict[str, str], bytes]:
    body = json.dumps(
        {
            "object_kind": "push",
            "ref": f"refs/heads/{branch}",
            "checkout_sha": SHA,
            "project": {"git_ssh_url": url, "default_branch": "main"},
        }
    ).encode()
    headers = {"Content-Type": "application/json", "X-Gitlab-Event": event}
    if secret is not None:
        headers["X-Gitlab-Token"] = secret
    return headers, body


def gitea_push(
    url: str = "ssh://git@gitea.example.com:2222/org/site.git",
    *,
    branch: str = "main",
    secret: str | None = SECRET,
    event: str = "push",
) -> tuple[dict[str, str], bytes]:
    body = json.dumps(
        {
            "ref": f"refs/heads/{branch}",
            "after": SHA,
            "repository": {"ssh_url": url, "default_branch": "main"},
        }
    ).encode()
    headers = {"Content-Type": "application/json", "X-Gitea-Event": event}
    if secret is not None:
        headers["X-Gitea-Signature"] = _mac(secret, body)
    return headers, body


def bitbucket_push(
    url: str = "https://bitbucket.org/team/kiosk",
    *,
    branch: str = "main",
    secret: str | None = SECRET,
    event: str = "repo:push",
) -> tuple[dict[str, str], bytes]:
    body = json.dumps(
        {
            "repository": {"links": {"html": {"href": url}}},
            "push": {
                "changes": [{"new": {"type": "branch", "name": branch, "target": {"hash": SHA}}}]
            },
        }
    ).encode()
    headers = {
        "Content-Type": "application/json",
        "X-Event-Key": event,
        "X-Request-UUID": str(uuid.uuid4()),
    }
    if secret is not None:
        headers["X-Hub-Signature"] = "sha256=" + _mac(secret, body)
    return headers, body


def generic_push(
    url: str = "https://git.example.com/ops/tools",
    *,
    branch: str = "main",
    secret: str | None = SECRET,
    event: str = "",
    timestamp: float | None = None,
    delivery: str | None = None,
) -> tuple[dict[str, str], bytes]:
    del event  # the generic receiver has one kind of event
    body = json.dumps({"repository": url, "branch": branch, "commit": SHA}).encode()
    stamp = str(int(time.time() if timestamp is None else timestamp))
    headers = {
        "Content-Type": "application/json",
        "X-Appflow-Timestamp": stamp,
        "X-Appflow-Delivery": delivery or str(uuid.uuid4()),
    }
    if secret is not None:
        headers["X-Appflow-Signature"] = "sha256=" + _mac(secret, stamp.encode() + b"." + body)
    return headers, body


BUILDERS: dict[str, Any] = {
    "github": github_push,
    "gitlab": gitlab_push,
    "gitea": gitea_push,
    "bitbucket": bitbucket_push,
    "generic": generic_push,
}
REPO_OF = {
    "github": "retail",
    "gitlab": "lab",
    "gitea": "site",
    "bitbucket": "kiosk",
    "generic": "tools",
}
