"""Webhook receivers: ``POST /hooks/{github,gitlab,gitea,bitbucket,generic}``.

Each delivery is answered within milliseconds: the receiver reads the body (refusing
more than the size limit while reading), finds the registered repositories the
payload names, checks the signature with each one's secret, and hands the repositories
to ``Triggers.trigger_repo``, which only enqueues. No git or cluster I/O happens in the
request. The decisions themselves are pure and live in ``appflow.model.webhooks``.

Answers: 202 ``queued`` (a fetch was enqueued), 202 ``ignored`` (not a push, a
repository that is not registered, a branch that is not followed), 200 ``pong``, 400 (not
JSON, nested too deeply, not a push payload), 401 (unsigned, forged, stale, replayed, or
no secret set for the repository), 408 (the body did not arrive within the read
timeout), 413 (body over the limit). Only ``queued`` starts any work. Every refusal is
one log line; a client that goes away mid-body is one line too, and gets no answer.

Replays: the generic receiver remembers delivery ids and signatures in the store, for
as long as the clock check would let a replay through, and refuses a repeat with 401,
after a restart too. The git providers' deliveries carry no timestamp to bound a
replay window, and GitHub's "Redeliver" button re-sends the same delivery id on
purpose; a repeated push there costs one fetch that finds nothing new, so it is not
refused.

Probing: the generic receiver takes a repository's name, so its answers must not tell
which names exist. A name that is not registered is answered exactly as a registered
repository with a wrong signature (the signature is even checked, against a secret
nobody knows), and a repository without a secret is answered that way too; the log
says what really happened.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from appflow.errors import AppflowError, ConfigError, WebhookRejectedError, Where
from appflow.model.records import RepoRecord
from appflow.model.webhooks import (
    PROVIDERS,
    REPLAY_TTL_SECONDS,
    Delivery,
    PushEvent,
    commit_for_ref,
    forged,
    generic_replay_keys,
    lower_headers,
    parse_delivery,
    parse_secret_ref,
    push_follows_ref,
    repos_for,
    verify_signature,
)
from appflow.server.bodies import (
    DEFAULT_BODY_TIMEOUT_SECONDS,
    BodyTimeoutError,
    BodyTooLargeError,
    ClientGoneError,
    read_body,
)
from appflow.server.metrics import Metrics
from appflow.server.schemas import ErrorBody, WebhookResult
from appflow.server.triggers import Triggers
from appflow.store import Store

log = logging.getLogger("appflow.server.webhooks")


def read_webhook_secret(ref: str) -> bytes:
    """Read the secret a ``file:/path`` or ``env:NAME`` reference points at, now.

    Surrounding whitespace (the newline an editor adds to a file) is dropped. Raises
    ConfigError when the reference is malformed, the file unreadable or the variable unset.
    """
    kind, target = parse_secret_ref(ref)
    if kind == "env":
        value = os.environ.get(target)
        if not value:
            raise ConfigError(f"environment variable {target} is not set or empty")
        return value.strip().encode("utf-8")
    try:
        data = Path(target).read_bytes().strip()
    except OSError as err:
        raise ConfigError(
            f"cannot read the webhook secret file: {err.strerror}", where=Where(file=target)
        ) from err
    if not data:
        raise ConfigError("the webhook secret file is empty", where=Where(file=target))
    return data


@dataclass(kw_only=True)
class WebhookReceiver:
    """Everything the receivers share: where repositories are, whom to trigger, what to count."""

    store: Store
    triggers: Triggers
    metrics: Metrics
    max_body_bytes: int
    body_timeout_seconds: float = DEFAULT_BODY_TIMEOUT_SECONDS
    clock: Callable[[], float] = time.time
    read_secret: Callable[[str], bytes] = read_webhook_secret
    decoy_secret: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    """Checks generic deliveries for unregistered names: no one can sign for it."""

    async def receive(self, provider: str, request: Request) -> Response:
        client = request.client.host if request.client else "?"
        try:
            result, status = await self._receive(provider, request)
        except ClientGoneError:
            log.warning("%s webhook from %s: the client went away mid-body", provider, client)
            self.metrics.webhook_delivery(provider, "disconnected")
            return Response(status_code=400)
        except BodyTimeoutError:
            return self._refuse(
                provider,
                client,
                "timeout",
                408,
                ErrorBody(
                    error=f"the webhook payload did not arrive within "
                    f"{self.body_timeout_seconds:g} seconds",
                    hint="send the whole body at once",
                ),
            )
        except BodyTooLargeError:
            return self._refuse(
                provider,
                client,
                "too_large",
                413,
                ErrorBody(
                    error=f"the webhook payload is larger than {self.max_body_bytes} bytes",
                    hint="send only push events to appflow",
                ),
            )
        except WebhookRejectedError as err:
            # The log line says what happened; the answer may say less (see the module doc).
            log.warning("%s webhook from %s refused (%s): %s", provider, client, err.reason, err)
            if provider == "generic" and err.reason == "no-secret":
                err = forged("X-Appflow-Signature")
            return self._refuse(
                provider, None, err.reason, 401, ErrorBody(error=str(err.message), hint=err.hint)
            )
        except ConfigError as err:
            return self._refuse(
                provider, client, "invalid", 400, ErrorBody(error=err.message, hint=err.hint)
            )
        self.metrics.webhook_delivery(provider, result.result)
        return JSONResponse(result.model_dump(), status_code=status)

    def _refuse(
        self, provider: str, client: str | None, result: str, status: int, body: ErrorBody
    ) -> JSONResponse:
        if client is not None:  # one line per refused delivery
            log.warning("%s webhook from %s refused (%s): %s", provider, client, result, body.error)
        self.metrics.webhook_delivery(provider, result)
        return JSONResponse(body.model_dump(), status_code=status)

    async def _receive(self, provider: str, request: Request) -> tuple[WebhookResult, int]:
        body = await read_body(request, self.max_body_bytes, timeout=self.body_timeout_seconds)
        headers = lower_headers(request.headers.items())
        # A megabyte of JSON takes milliseconds to parse: not on the event loop.
        delivery = await asyncio.to_thread(parse_delivery, provider, headers, body)
        if delivery.kind == "ignored":
            return WebhookResult(result="ignored", reason=delivery.reason), 202
        repos = await asyncio.to_thread(self.store.list_repos)
        matched = repos_for(delivery.repo_urls, repos, by_name=provider == "generic")
        if not matched:
            if provider == "generic":
                # Answered as a known name with a wrong signature: names cannot be probed.
                self._refuse_unknown(delivery, headers, body)
            if delivery.kind == "ping":
                return WebhookResult(result="pong"), 200
            names = ", ".join(delivery.repo_urls)
            return WebhookResult(
                result="ignored", reason=f"no registered repository is {names}"
            ), 202
        verified = await self._verified(provider, delivery, headers, body, matched)
        if provider == "generic" and await asyncio.to_thread(
            self.store.remember_deliveries,
            list(generic_replay_keys(headers)),
            now=self.clock(),
            ttl_seconds=REPLAY_TTL_SECONDS,
        ):
            raise WebhookRejectedError(
                f"delivery {delivery.delivery_id} was received before",
                reason="replayed",
                hint="send each delivery once, with a new X-Appflow-Delivery id and timestamp",
            )
        if delivery.kind == "ping":
            return WebhookResult(result="pong", repos=[r.name for r in verified]), 200
        return self._trigger(delivery, verified)

    def _refuse_unknown(self, delivery: Delivery, headers: dict[str, str], body: bytes) -> None:
        """Raise what a registered repository with a wrong signature gets (see the module doc)."""
        verify_signature(
            "generic", secret=self.decoy_secret, headers=headers, body=body, now=self.clock()
        )
        raise forged("X-Appflow-Signature")  # signed with the decoy: not going to happen

    async def _verified(
        self,
        provider: str,
        delivery: Delivery,
        headers: dict[str, str],
        body: bytes,
        matched: list[RepoRecord],
    ) -> list[RepoRecord]:
        """The matched repositories whose secret signed this delivery; 401 if none did."""
        verified: list[RepoRecord] = []
        refusal: WebhookRejectedError | None = None
        now = self.clock()
        for repo in matched:
            try:
                secret = await self._secret(repo)
                verify_signature(provider, secret=secret, headers=headers, body=body, now=now)
            except WebhookRejectedError as err:
                # A forged signature says more than a missing secret: report the worst.
                if refusal is None or refusal.reason == "no-secret":
                    refusal = err
                continue
            verified.append(repo)
        if not verified:
            assert refusal is not None  # matched is not empty
            raise refusal
        return verified

    async def _secret(self, repo: RepoRecord) -> bytes:
        if repo.webhook_secret_ref is None:
            raise WebhookRejectedError(
                f"repository {repo.name} has no webhook secret, so its deliveries cannot be "
                "verified",
                reason="no-secret",
                hint=f"appflow repo set-webhook-secret {repo.name} --secret-file FILE",
            )
        try:
            return await asyncio.to_thread(self.read_secret, repo.webhook_secret_ref)
        except AppflowError as err:
            log.error("webhook secret of repository %s cannot be read: %s", repo.name, err)
            raise WebhookRejectedError(
                f"the webhook secret of repository {repo.name} cannot be read on the "
                "appflow server",
                reason="no-secret",
                hint="see the appflow server's log",
            ) from err

    def _trigger(self, delivery: Delivery, verified: list[RepoRecord]) -> tuple[WebhookResult, int]:
        due: dict[str, PushEvent] = {}
        skipped: list[str] = []
        for repo in verified:
            for push in delivery.pushes:
                if not repos_for(push.repo_urls, [repo], by_name=delivery.provider == "generic"):
                    continue
                if push_follows_ref(push, repo.ref):
                    due[repo.name] = push
                else:
                    pushed = f"branch {push.branch}" if push.branch else f"tag {push.tag}"
                    skipped.append(
                        f"repository {repo.name} follows {repo.ref or 'HEAD'}, not {pushed}"
                    )
        if not due:
            return WebhookResult(result="ignored", reason="; ".join(skipped)), 202
        for name, push in due.items():
            # Enqueue only: the fetch and the syncs run in the daemon's workers.
            repo = next(r for r in verified if r.name == name)
            self.triggers.trigger_repo(
                name, trigger="webhook", commit=commit_for_ref(push, repo.ref)
            )
        return WebhookResult(result="queued", repos=sorted(due)), 202


_WEBHOOK_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
}

_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": WebhookResult, "description": "A ping, answered."},
    202: {"model": WebhookResult, "description": "Queued, or ignored (see reason)."},
    400: {"model": ErrorBody, "description": "Not JSON, or not a push payload."},
    401: {"model": ErrorBody, "description": "Unsigned, forged, stale or replayed."},
    408: {"model": ErrorBody, "description": "The body did not arrive in time."},
    413: {"model": ErrorBody, "description": "Body over the size limit."},
}


def webhook_router(receiver: WebhookReceiver) -> APIRouter:
    """The ``/hooks/...`` routes; they authenticate by signature, not by bearer token."""
    router = APIRouter(prefix="/hooks", tags=["webhooks"])

    def add(provider: str) -> None:
        async def hook(request: Request) -> Response:
            return await receiver.receive(provider, request)

        router.add_api_route(
            f"/{provider}",
            hook,
            methods=["POST"],
            name=f"{provider}_webhook",
            summary=f"Receive a {provider} push webhook",
            status_code=202,
            responses=_RESPONSES,
            openapi_extra=_WEBHOOK_BODY,
            response_model=None,
        )

    for provider in PROVIDERS:
        add(provider)
    return router
