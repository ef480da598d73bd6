"""One exception tree for appflow, translated at the adapter boundaries.

Every error carries where it happened (app, cluster, object, file, line, field)
and what to do about it, so that the CLI and the API can print one line a user
can act on. Adapters map the errors of the systems they own (pygit2, helm, the
Kubernetes API) to the most specific class here, always with ``raise ... from``.

``retryable`` separates errors a later attempt may fix (a cluster that did not
answer) from those it cannot (a YAML syntax error, an immutable field): the
engine backs off and retries the first kind and reports the second kind without
looping, as Fleet does for errors no retry can fix.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Self

_scrub: Callable[[str], str] = str
"""What removes known secret values from a message. ``appflow.redaction`` installs its
own when it is imported, which every path that learns a secret value goes through; the
errors module imports nothing of appflow, so every module may import it (no cycle)."""


def install_scrubber(scrub: Callable[[str], str]) -> None:
    """Make every AppflowError made from now on pass its message and hint through SCRUB."""
    global _scrub
    _scrub = scrub


@dataclass(frozen=True, kw_only=True)
class Where:
    """The place an error is about; every part is optional."""

    app: str | None = None
    repo: str | None = None
    cluster: str | None = None
    object: str | None = None
    file: str | None = None
    line: int | None = None
    column: int | None = None
    field: str | None = None

    def describe(self) -> str:
        parts: list[str] = []
        if self.app:
            parts.append(f"app {self.app}")
        if self.repo:
            parts.append(f"repository {self.repo}")
        if self.cluster:
            parts.append(f"cluster {self.cluster}")
        if self.object:
            parts.append(self.object)
        if self.file:
            loc = self.file
            if self.line is not None:
                loc += f":{self.line}"
                if self.column is not None:
                    loc += f":{self.column}"
            parts.append(loc)
        if self.field:
            parts.append(f"field {self.field}")
        return ", ".join(parts)


class AppflowError(Exception):
    """Base of every error appflow raises on purpose."""

    retryable = False

    def __init__(self, message: str, *, where: Where | None = None, hint: str | None = None):
        # Messages quote what other systems said (helm, the API server), and
        # those may quote a decrypted value: no message keeps one.
        message = _scrub(message)
        super().__init__(message)
        self.message = message
        self.where = where or Where()
        self.hint = _scrub(hint) if hint else hint

    def __str__(self) -> str:
        place = self.where.describe()
        text = f"{place}: {self.message}" if place else self.message
        if self.hint:
            text += f" ({self.hint})"
        return text

    def located(self, **where: str | int | None) -> Self:
        """A copy of this error with more of its place filled in (existing parts win).

        The error itself is left as it is: the same error may be reported for
        several apps or clusters (a shared render, a cached failure).
        """
        current = {k: v for k, v in vars(self.where).items() if v is not None}
        merged = {**{k: v for k, v in where.items() if v is not None}, **current}
        return self.placed(Where(**merged))

    def noted(self, note: str) -> Self:
        """A copy of this error whose message ends with NOTE (what else the user must know)."""
        clone = self.placed(self.where)
        clone.message = f"{self.message}; {note}"
        clone.args = (clone.message, *self.args[1:])
        return clone

    def placed(self, where: Where) -> Self:
        """A copy of this error (same class, message, hint and cause) at WHERE."""
        clone = type(self).__new__(type(self), *self.args)
        clone.__dict__.update(self.__dict__)
        clone.where = where
        clone.__cause__ = self.__cause__
        clone.__suppress_context__ = self.__suppress_context__
        return clone


class ConfigError(AppflowError):
    """Input written by a user is malformed or invalid (YAML, schema, flags)."""


class AppPinnedError(AppflowError):
    """The app is pinned to a revision by a rollback: a sync would move it off that revision."""


class ToolMissingError(AppflowError):
    """An external binary appflow drives (helm, kustomize, kube-apiserver...) is not installed."""


class SourceError(AppflowError):
    """Desired state could not be fetched from its source."""

    retryable = True


class GitAuthError(SourceError):
    """The git server refused the credentials, or none were given where needed."""

    retryable = False


class GitHostKeyError(GitAuthError):
    """The SSH server's host key is not one known for it: a changed server, or another one."""


class GitRefNotFoundError(SourceError):
    """The branch, tag, commit or semver range names nothing in the repository."""

    retryable = False


class RenderError(AppflowError):
    """A chart, kustomization or manifest folder failed to render."""


class DecryptionError(AppflowError):
    """A SOPS-encrypted file could not be decrypted: no key for it, tampered, malformed, or not
    encrypted where it must be. Never carries plaintext."""


class ClusterError(AppflowError):
    """A cluster could not be reached or answered with an unexpected error."""

    retryable = True


class ClusterUnreachableError(ClusterError):
    """The cluster's API server did not answer within the timeout."""


class ApplyError(AppflowError):
    """The API server rejected an object (validation, admission, missing kind)."""


class HookError(AppflowError):
    """A hook did not succeed: its Job or Pod failed or did not finish in time, or it could
    not be created (e.g. an object of its name exists that the app does not own)."""


class ConflictError(ApplyError):
    """Server-side apply conflict: another field manager owns the fields."""


class OwnershipConflictError(ApplyError):
    """The object belongs to another app: two apps cannot own one object."""


class ObjectChangedError(ApplyError):
    """The object changed since appflow read it (a precondition failed); it was left alone."""


class ImmutableFieldError(ApplyError):
    """The object changes a field the API server does not allow to change."""


class MissingKindError(ApplyError):
    """The cluster does not serve the object's kind (its CRD is missing)."""


class MissingNamespaceError(ApplyError):
    """The object's namespace does not exist on the cluster."""


class PolicyError(AppflowError):
    """An operator's policy does not allow what an app asks for (guard rails, helm lookup)."""


class ObjectForbiddenError(ApplyError):
    """The API server forbade one object (HTTP 403: admission, a quota, RBAC for its kind)."""


class ObjectFailedError(ApplyError):
    """The API server failed on one object (HTTP 500, a dropped connection) yet answers its
    health probe: the object's failure, not the cluster's."""


class SyncInProgressError(AppflowError):
    """Another process is syncing the same app on the same cluster."""

    retryable = True


class PruneError(AppflowError):
    """An object could not be deleted, or deleting it was refused as unsafe."""

    retryable = True


class StoreError(AppflowError):
    """The local state store could not be read or written."""


class WriteConflict(StoreError):
    """A conditional write found the record changed since it was read: another attempt reads
    it again."""

    retryable = True


class ContentError(StoreError):
    """Content on the hub is missing, corrupt (its digest does not match), or too large."""


class FencedError(AppflowError):
    """This hub controller replica no longer holds its membership Lease, so it must not write."""

    retryable = True


class SyncNotRecordedError(StoreError):
    """A sync changed the cluster, but the store refused to record it: the next sync must."""

    retryable = True


class SandboxError(AppflowError):
    """The local sandbox clusters could not be started, found or stopped."""


class NotFoundError(AppflowError):
    """A named cluster, app, revision or sandbox does not exist."""


class AuthError(AppflowError):
    """A request's credentials are missing or wrong: an API bearer token, a webhook secret."""


class ForbiddenError(AppflowError):
    """The credential is valid but may not do this: a read-only token asking for a change."""


class WebhookRejectedError(AuthError):
    """A webhook delivery is unsigned, forged, stale or replayed; nothing is fetched for it."""

    def __init__(
        self, message: str, *, reason: str, where: Where | None = None, hint: str | None = None
    ):
        super().__init__(message, where=where, hint=hint)
        self.reason = reason
        """One word for metrics and logs: unsigned, forged, stale, replayed, no-secret."""
