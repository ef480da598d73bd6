"""Webhook deliveries from git servers and CI: who signed them, and which push they announce.

Pure: no I/O. The HTTP server (``appflow.server.webhooks``) reads the body and the
repository's secret and hands them here; everything that decides whether a delivery
is genuine and what it asks for lives in this module, so it is tested without a server.

Providers and how each one signs (every comparison is ``hmac.compare_digest``):

- ``github``: ``X-Hub-Signature-256: sha256=HEX``, HMAC-SHA256 of the body.
- ``gitlab``: ``X-Gitlab-Token``, the secret itself (GitLab does not sign bodies).
- ``gitea`` (and Gogs): ``X-Gitea-Signature`` / ``X-Gogs-Signature``, bare HEX of the
  HMAC-SHA256 of the body (Gitea's ``X-Hub-Signature-256`` is accepted too).
- ``bitbucket`` (Bitbucket Cloud): Bitbucket Cloud signs nothing unless the webhook has a
  secret; with one it sends ``X-Hub-Signature: sha256=HEX`` (HMAC-SHA256 of the body).
  appflow requires the secret: an unsigned Bitbucket delivery is refused like any other.
- ``generic`` (CI systems, scripts): ``X-Appflow-Timestamp`` (unix seconds),
  ``X-Appflow-Delivery`` (a unique id) and ``X-Appflow-Signature: sha256=HEX`` of
  ``timestamp + "." + body``; the body is ``{"repository": URL, "branch": B, "commit": C}``.
  A timestamp more than five minutes off is stale; a delivery id or a signature seen
  within REPLAY_TTL_SECONDS is a replay (the server keeps them in the store, so a
  restart forgets none).

Why the secret is checked after the payload is parsed: secrets are per repository, and
only the payload says which repository a delivery is about. Parsing untrusted JSON is
safe; nothing is fetched until the signature of a registered repository matched.

Payloads must be JSON (``Content-Type: application/json`` in the git server's webhook
settings); GitHub's form-encoded variant is refused with a hint saying so.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

from appflow.errors import ConfigError, WebhookRejectedError
from appflow.model.giturl import normalize_repo_url
from appflow.model.limits import Limits, document_problem
from appflow.model.records import RepoRecord

Provider = Literal["github", "gitlab", "gitea", "bitbucket", "generic"]
PROVIDERS: tuple[str, ...] = get_args(Provider)

MAX_CLOCK_SKEW_SECONDS = 300
"""A generic delivery whose timestamp is further than this from now is stale."""

REPLAY_TTL_SECONDS = 2 * MAX_CLOCK_SKEW_SECONDS + 60
"""How long a delivery is remembered: longer than any timestamp stays acceptable (a
timestamp up to five minutes ahead stays fresh for ten minutes), so every replay that
would pass the clock check is still remembered."""

ZERO_COMMIT = "0" * 40
"""The ``after`` commit of a push that deleted its branch or tag."""

JSON_HINT = "set the webhook's content type to application/json"

MAX_PAYLOAD_DEPTH = 64
"""Push payloads nest a few levels; anything deeper is refused before it is walked."""
_PAYLOAD_LIMITS = Limits(max_yaml_depth=MAX_PAYLOAD_DEPTH)


@dataclass(frozen=True, kw_only=True)
class PushEvent:
    """One pushed branch or tag, as a delivery announces it.

    ``repo_urls`` holds every URL the payload gives for the repository (HTTPS, SSH, web),
    so that whichever spelling was registered matches. ``branch`` is None for a tag push,
    which names its tag in ``tag``.
    """

    repo_urls: tuple[str, ...]
    branch: str | None
    commit: str | None
    delivery_id: str | None
    provider: str
    tag: str | None = None
    default_branch: str | None = None
    """The repository's default branch when the payload says it (repos that follow HEAD)."""


@dataclass(frozen=True, kw_only=True)
class Delivery:
    """What a delivery asks for: pushes to act on, a ping to answer, or nothing (ignored)."""

    provider: str
    kind: Literal["push", "ping", "ignored"]
    pushes: tuple[PushEvent, ...] = ()
    repo_urls: tuple[str, ...] = ()
    """The repository the delivery is about (for a push, the union of its pushes' URLs)."""
    delivery_id: str | None = None
    reason: str = ""
    """For ``ignored``: why, in words a user reads in the git server's delivery log."""


# -- parsing ------------------------------------------------------------------------------------


def lower_headers(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Header names lowercased (HTTP header names are case-insensitive)."""
    return {k.lower(): v for k, v in headers}


def parse_delivery(provider: str, headers: Mapping[str, str], body: bytes) -> Delivery:
    """Read a delivery of PROVIDER; HEADERS has lowercase names.

    Raises ConfigError when the body is not a JSON object, or when a push lacks the
    fields every push of that provider has (the answer is 400, nothing else happens).
    An event that is not a push comes back as ``ignored``.
    """
    if provider not in PROVIDERS:
        raise ConfigError(
            f"no webhook receiver for {provider!r}", hint=f"use one of {', '.join(PROVIDERS)}"
        )
    payload = _json_object(body)
    match provider:
        case "github":
            return _parse_github(headers, payload)
        case "gitlab":
            return _parse_gitlab(headers, payload)
        case "gitea":
            return _parse_gitea(headers, payload)
        case "bitbucket":
            return _parse_bitbucket(headers, payload)
        case _:
            return _parse_generic(headers, payload)


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body)
    except RecursionError as err:
        raise _too_deep() from err
    except (UnicodeDecodeError, ValueError) as err:
        raise ConfigError("the webhook payload is not JSON", hint=JSON_HINT) from err
    if not isinstance(payload, dict):
        raise ConfigError("the webhook payload is not a JSON object", hint=JSON_HINT)
    if document_problem(payload, _PAYLOAD_LIMITS, aliases=False) is not None:
        raise _too_deep()
    return payload


def _too_deep() -> ConfigError:
    return ConfigError(
        f"the webhook payload is nested more than {MAX_PAYLOAD_DEPTH} levels deep",
        hint="send a push event as the git server sends it",
    )


def _ignored(provider: str, reason: str, delivery_id: str | None = None) -> Delivery:
    return Delivery(provider=provider, kind="ignored", reason=reason, delivery_id=delivery_id)


def _pushes(provider: str, pushes: Sequence[PushEvent], delivery_id: str | None) -> Delivery:
    urls: list[str] = []
    for push in pushes:
        urls.extend(u for u in push.repo_urls if u not in urls)
    return Delivery(
        provider=provider,
        kind="push",
        pushes=tuple(pushes),
        repo_urls=tuple(urls),
        delivery_id=delivery_id,
    )


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _urls(obj: Mapping[str, Any], keys: Sequence[str]) -> tuple[str, ...]:
    found: list[str] = []
    for key in keys:
        url = _str(obj.get(key))
        if url and url not in found:
            found.append(url)
    return tuple(found)


def _split_ref(ref: str) -> tuple[str | None, str | None]:
    """``refs/heads/B`` -> (B, None); ``refs/tags/T`` -> (None, T); else (None, None)."""
    if ref.startswith("refs/heads/"):
        return ref.removeprefix("refs/heads/"), None
    if ref.startswith("refs/tags/"):
        return None, ref.removeprefix("refs/tags/")
    return None, None


_GITHUB_LIKE_URL_KEYS = ("clone_url", "ssh_url", "html_url", "git_url", "url")


def _github_like_push(
    provider: str, payload: Mapping[str, Any], delivery_id: str | None
) -> Delivery:
    # GitHub, Gitea and Gogs send the same push shape.
    repository = _dict(payload.get("repository"))
    urls = _urls(repository, _GITHUB_LIKE_URL_KEYS)
    ref = _str(payload.get("ref"))
    if not urls or ref is None:
        raise ConfigError("the push payload has no repository URL or no ref")
    commit = _str(payload.get("after"))
    if payload.get("deleted") is True or commit == ZERO_COMMIT:
        return _ignored(provider, f"{ref} was deleted", delivery_id)
    branch, tag = _split_ref(ref)
    if branch is None and tag is None:
        return _ignored(provider, f"{ref} is neither a branch nor a tag", delivery_id)
    push = PushEvent(
        repo_urls=urls,
        branch=branch,
        tag=tag,
        commit=commit,
        delivery_id=delivery_id,
        provider=provider,
        default_branch=_str(repository.get("default_branch")),
    )
    return _pushes(provider, [push], delivery_id)


def _parse_github(headers: Mapping[str, str], payload: Mapping[str, Any]) -> Delivery:
    delivery_id = headers.get("x-github-delivery")
    event = headers.get("x-github-event")
    if not event:
        raise ConfigError(
            "the delivery has no X-GitHub-Event header", hint="is this a GitHub webhook?"
        )
    if event == "ping":
        urls = _urls(_dict(payload.get("repository")), _GITHUB_LIKE_URL_KEYS)
        return Delivery(provider="github", kind="ping", repo_urls=urls, delivery_id=delivery_id)
    if event != "push":
        return _ignored("github", f"event {event!r} is not a push", delivery_id)
    return _github_like_push("github", payload, delivery_id)


def _parse_gitea(headers: Mapping[str, str], payload: Mapping[str, Any]) -> Delivery:
    delivery_id = headers.get("x-gitea-delivery") or headers.get("x-gogs-delivery")
    event = headers.get("x-gitea-event") or headers.get("x-gogs-event")
    if not event:
        raise ConfigError(
            "the delivery has no X-Gitea-Event or X-Gogs-Event header",
            hint="is this a Gitea or Gogs webhook?",
        )
    if event != "push":
        return _ignored("gitea", f"event {event!r} is not a push", delivery_id)
    return _github_like_push("gitea", payload, delivery_id)


_GITLAB_PUSH_EVENTS = {"Push Hook": "push", "Tag Push Hook": "tag_push"}


def _parse_gitlab(headers: Mapping[str, str], payload: Mapping[str, Any]) -> Delivery:
    delivery_id = headers.get("x-gitlab-event-uuid")
    event = headers.get("x-gitlab-event")
    if not event:
        raise ConfigError(
            "the delivery has no X-Gitlab-Event header", hint="is this a GitLab webhook?"
        )
    kind = payload.get("object_kind")
    # A system hook carries pushes of every project, marked by object_kind only.
    if event not in _GITLAB_PUSH_EVENTS and not (
        event == "System Hook" and kind in ("push", "tag_push")
    ):
        return _ignored("gitlab", f"event {event!r} is not a push", delivery_id)
    project = _dict(payload.get("project"))
    repository = _dict(payload.get("repository"))
    urls = _urls(project, ("git_http_url", "git_ssh_url", "http_url", "ssh_url", "web_url"))
    urls += tuple(
        u
        for u in _urls(repository, ("git_http_url", "git_ssh_url", "url", "homepage"))
        if u not in urls
    )
    ref = _str(payload.get("ref"))
    if not urls or ref is None:
        raise ConfigError("the push payload has no project URL or no ref")
    commit = _str(payload.get("checkout_sha")) or _str(payload.get("after"))
    if commit is None or commit == ZERO_COMMIT:
        return _ignored("gitlab", f"{ref} was deleted", delivery_id)
    branch, tag = _split_ref(ref)
    if branch is None and tag is None:
        return _ignored("gitlab", f"{ref} is neither a branch nor a tag", delivery_id)
    push = PushEvent(
        repo_urls=urls,
        branch=branch,
        tag=tag,
        commit=commit,
        delivery_id=delivery_id,
        provider="gitlab",
        default_branch=_str(project.get("default_branch")),
    )
    return _pushes("gitlab", [push], delivery_id)


def _parse_bitbucket(headers: Mapping[str, str], payload: Mapping[str, Any]) -> Delivery:
    delivery_id = headers.get("x-request-uuid") or headers.get("x-hook-uuid")
    event = headers.get("x-event-key")
    if not event:
        raise ConfigError(
            "the delivery has no X-Event-Key header", hint="is this a Bitbucket Cloud webhook?"
        )
    repository = _dict(payload.get("repository"))
    urls: tuple[str, ...] = ()
    href = _str(_dict(_dict(repository.get("links")).get("html")).get("href"))
    if href:
        urls += (href,)
    full_name = _str(repository.get("full_name"))
    if full_name and f"https://bitbucket.org/{full_name}" not in urls:
        urls += (f"https://bitbucket.org/{full_name}",)
    if event == "diagnostics:ping":
        return Delivery(provider="bitbucket", kind="ping", repo_urls=urls, delivery_id=delivery_id)
    if event != "repo:push":
        return _ignored("bitbucket", f"event {event!r} is not a push", delivery_id)
    changes = _dict(payload.get("push")).get("changes")
    if not urls or not isinstance(changes, list):
        raise ConfigError("the push payload has no repository or no push.changes")
    # One delivery may push several branches and tags: one PushEvent each.
    pushes: list[PushEvent] = []
    for change in changes:
        new = _dict(_dict(change).get("new"))
        name = _str(new.get("name"))
        if name is None:
            continue  # a deleted branch or tag: nothing to fetch
        kind = new.get("type")
        if kind not in ("branch", "tag"):
            continue
        pushes.append(
            PushEvent(
                repo_urls=urls,
                branch=name if kind == "branch" else None,
                tag=name if kind == "tag" else None,
                commit=_str(_dict(new.get("target")).get("hash")),
                delivery_id=delivery_id,
                provider="bitbucket",
                default_branch=_str(_dict(repository.get("mainbranch")).get("name")),
            )
        )
    if not pushes:
        return _ignored("bitbucket", "the push only deleted branches or tags", delivery_id)
    return _pushes("bitbucket", pushes, delivery_id)


def _parse_generic(headers: Mapping[str, str], payload: Mapping[str, Any]) -> Delivery:
    delivery_id = headers.get("x-appflow-delivery")
    repository = _str(payload.get("repository"))
    if repository is None:
        raise ConfigError(
            "the payload has no repository",
            hint='send {"repository": URL, "branch": BRANCH, "commit": SHA}',
        )
    for key in ("branch", "commit", "tag"):
        if payload.get(key) is not None and not isinstance(payload.get(key), str):
            raise ConfigError(f"the payload's {key} is not a string")
    push = PushEvent(
        repo_urls=(repository,),
        branch=_str(payload.get("branch")),
        tag=_str(payload.get("tag")),
        commit=_str(payload.get("commit")),
        delivery_id=delivery_id,
        provider="generic",
    )
    return _pushes("generic", [push], delivery_id)


# -- matching pushes to repositories ------------------------------------------------------------


def _key(url: str) -> str | None:
    try:
        return normalize_repo_url(url)
    except ConfigError:
        return None


def repos_for(
    urls: Iterable[str], repos: Iterable[RepoRecord], *, by_name: bool = False
) -> list[RepoRecord]:
    """The registered repositories any of URLS names, across https/ssh spellings and ``.git``.

    With BY_NAME a URL may also be a registered repository's name (the generic receiver
    accepts ``{"repository": "retail"}`` from CI scripts).
    """
    wanted = list(urls)
    keys = {k for k in (_key(u) for u in wanted) if k is not None}
    return [r for r in repos if _key(r.url) in keys or (by_name and r.name in wanted)]


def push_follows_ref(push: PushEvent, ref: str) -> bool:
    """Does PUSH move what a repository following REF (``RepoRecord.ref``) syncs?

    ``HEAD`` follows the default branch (any branch when the payload does not say which
    is the default: a fetch that finds nothing new costs little), ``tag:T`` and
    ``refs/tags/T`` follow tag T, ``semver:R`` any tag (the fetch resolves the range),
    ``commit:SHA`` nothing, anything else is a branch name.
    """
    if ref.startswith("commit:"):
        return False
    if ref.startswith(("tag:", "refs/tags/")):
        return push.tag == ref.removeprefix("tag:").removeprefix("refs/tags/")
    if ref.startswith("semver:"):
        return push.tag is not None
    if push.branch is None:
        return False
    if ref in ("", "HEAD"):
        return push.default_branch is None or push.branch == push.default_branch
    return push.branch == ref.removeprefix("refs/heads/")


def commit_for_ref(push: PushEvent, ref: str) -> str | None:
    """The commit PUSH moved REF to, when the push says so for certain; else None.

    A branch or tag push to exactly the ref a repository follows names its new head:
    the poll it triggers syncs that commit without asking the remote again. A repository
    following HEAD trusts it only when the payload names the default branch; a semver
    range is resolved by the fetch (a new tag need not be the highest match).
    """
    if push.commit is None or not push_follows_ref(push, ref):
        return None
    if ref.startswith("semver:"):
        return None
    if ref in ("", "HEAD") and push.default_branch is None:
        return None
    commit = push.commit.lower()
    if len(commit) not in (40, 64) or any(c not in "0123456789abcdef" for c in commit):
        return None
    return commit


# -- signatures ---------------------------------------------------------------------------------


def _equal(expected: str | bytes, given: str | bytes) -> bool:
    # compare_digest refuses non-ASCII str: compare bytes, whatever arrived in the header.
    a = expected.encode("utf-8", "surrogateescape") if isinstance(expected, str) else expected
    b = given.encode("utf-8", "surrogateescape") if isinstance(given, str) else given
    return hmac.compare_digest(a, b)


def hmac_sha256_hex(secret: bytes, message: bytes) -> str:
    """Lowercase hex HMAC-SHA256, as every provider here sends it."""
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def _unsigned(header: str) -> WebhookRejectedError:
    return WebhookRejectedError(
        f"the delivery is not signed (no {header} header)",
        reason="unsigned",
        hint="set the webhook secret in the git server to the repository's webhook secret",
    )


def forged(header: str) -> WebhookRejectedError:
    return WebhookRejectedError(
        f"the {header} signature does not match the repository's webhook secret",
        reason="forged",
        hint="the secrets in the git server and in appflow differ: "
        "`appflow repo set-webhook-secret` sets appflow's",
    )


def _check_prefixed(
    header: str, value: str | None, *, secret: bytes, body: bytes, prefix: str
) -> None:
    if not value:
        raise _unsigned(header)
    expected = prefix + hmac_sha256_hex(secret, body)
    if not _equal(expected, value.strip().lower()):
        raise forged(header)


def verify_signature(
    provider: str,
    *,
    secret: bytes,
    headers: Mapping[str, str],
    body: bytes,
    now: float,
    max_skew_seconds: int = MAX_CLOCK_SKEW_SECONDS,
) -> None:
    """Check that the delivery was signed with SECRET; raise WebhookRejectedError if not.

    HEADERS has lowercase names; NOW is unix time (the generic receiver's clock check).
    """
    if not secret:
        raise WebhookRejectedError("the repository's webhook secret is empty", reason="no-secret")
    match provider:
        case "github":
            _check_prefixed(
                "X-Hub-Signature-256",
                headers.get("x-hub-signature-256"),
                secret=secret,
                body=body,
                prefix="sha256=",
            )
        case "bitbucket":
            _check_prefixed(
                "X-Hub-Signature",
                headers.get("x-hub-signature"),
                secret=secret,
                body=body,
                prefix="sha256=",
            )
        case "gitea":
            bare = headers.get("x-gitea-signature") or headers.get("x-gogs-signature")
            if bare:
                _check_prefixed("X-Gitea-Signature", bare, secret=secret, body=body, prefix="")
            else:
                _check_prefixed(
                    "X-Gitea-Signature",
                    headers.get("x-hub-signature-256"),
                    secret=secret,
                    body=body,
                    prefix="sha256=",
                )
        case "gitlab":
            token = headers.get("x-gitlab-token")
            if not token:
                raise _unsigned("X-Gitlab-Token")
            if not _equal(secret, token):
                raise forged("X-Gitlab-Token")
        case "generic":
            _verify_generic(
                secret=secret, headers=headers, body=body, now=now, max_skew=max_skew_seconds
            )
        case _:
            raise ConfigError(f"no webhook receiver for {provider!r}")


def _verify_generic(
    *, secret: bytes, headers: Mapping[str, str], body: bytes, now: float, max_skew: int
) -> None:
    timestamp = headers.get("x-appflow-timestamp")
    signature = headers.get("x-appflow-signature")
    if not timestamp:
        raise _unsigned("X-Appflow-Timestamp")
    if not signature:
        raise _unsigned("X-Appflow-Signature")
    if not headers.get("x-appflow-delivery"):
        raise WebhookRejectedError(
            "the delivery has no X-Appflow-Delivery id",
            reason="unsigned",
            hint="send a unique id per delivery (e.g. a UUID) in X-Appflow-Delivery",
        )
    # The signature covers the timestamp exactly as sent, so check it before reading it.
    expected = "sha256=" + hmac_sha256_hex(secret, timestamp.encode("utf-8") + b"." + body)
    if not _equal(expected, signature.strip().lower()):
        raise forged("X-Appflow-Signature")
    try:
        sent = int(timestamp.strip())
    except ValueError:
        raise WebhookRejectedError(
            "X-Appflow-Timestamp is not unix seconds", reason="stale"
        ) from None
    if abs(now - sent) > max_skew:
        raise WebhookRejectedError(
            f"the delivery's timestamp is {int(now - sent)} seconds off "
            f"(at most {max_skew} are accepted)",
            reason="stale",
            hint="check the sender's clock, and sign each delivery when it is sent",
        )


def generic_replay_keys(headers: Mapping[str, str]) -> tuple[str, ...]:
    """What identifies a generic delivery against replays: its id and its signature.

    The delivery id header is not covered by the signature, so a replay with a fresh id
    would pass a guard of ids alone; the signature covers timestamp and body and cannot be
    changed without the secret.
    """
    keys: list[str] = []
    delivery_id = headers.get("x-appflow-delivery")
    if delivery_id:
        keys.append(f"id:{delivery_id}")
    signature = headers.get("x-appflow-signature")
    if signature:
        keys.append(f"sig:{signature.strip().lower()}")
    return tuple(keys)


# -- secret references ----------------------------------------------------------------------------

SecretKind = Literal["file", "env"]


def parse_secret_ref(ref: str) -> tuple[SecretKind, str]:
    """Split a secret reference ``file:/abs/path`` or ``env:NAME`` into its kind and target.

    The store keeps only such references, never secrets: the secret is read when a
    delivery arrives, so rotating it needs no restart.
    """
    kind, sep, target = ref.partition(":")
    if sep and target:
        if kind == "file":
            if not target.startswith("/"):
                raise ConfigError(
                    f"secret file {target!r} is not an absolute path",
                    hint="write file:/absolute/path",
                )
            return "file", target
        if kind == "env":
            return "env", target
    raise ConfigError(
        f"{ref!r} is not a secret reference", hint="write file:/absolute/path or env:VARIABLE"
    )
