"""Translate the kubernetes client's errors into appflow's, in one place.

Low-level failures become the most specific class of appflow.errors, carrying
the cluster and object they concern, and the API server's own words.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any

from appflow.errors import (
    AppflowError,
    ApplyError,
    ClusterError,
    ClusterUnreachableError,
    ConflictError,
    ImmutableFieldError,
    MissingKindError,
    MissingNamespaceError,
    ObjectChangedError,
    ObjectForbiddenError,
    Where,
)
from appflow.kube.rest import ApiStatusError

_MANAGER = re.compile(r'conflicts? with "([^"]+)"')


def _status_body(err: BaseException) -> dict[str, Any]:
    body = getattr(err, "body", None)
    if isinstance(body, bytes):
        body = body.decode(errors="replace")
    if isinstance(body, str):
        try:
            parsed = json.loads(body)
        except ValueError:
            return {"message": body}
        return parsed if isinstance(parsed, dict) else {}
    return {}


def conflicting_managers(message: str) -> list[str]:
    """The field managers named in a server-side-apply conflict message."""
    return sorted(set(_MANAGER.findall(message)))


def translate(
    err: BaseException, *, cluster: str, obj: str | None = None, action: str = "apply"
) -> AppflowError:
    """Map ERR (raised while talking to CLUSTER about OBJ) to an appflow error."""
    where = Where(cluster=cluster, object=obj)
    if isinstance(err, AppflowError):
        return err.located(cluster=cluster, object=obj)
    # The kubernetes package's errors can only have been raised once it was imported
    # (reads go through appflow.kube.rest, which does not import it).
    if "kubernetes.dynamic.exceptions" in sys.modules:
        from kubernetes.dynamic.exceptions import ResourceNotFoundError

        if isinstance(err, ResourceNotFoundError):
            return MissingKindError(
                f"the cluster does not serve this kind: {err}",
                where=where,
                hint="install its CustomResourceDefinition first, or add it to the app",
            )
    if isinstance(err, OSError | TimeoutError) or _unreachable(err):
        return ClusterUnreachableError(
            f"the API server did not answer: {_short(err)}",
            where=where,
            hint="check that the cluster is up and reachable; appflow retries with backoff",
        )
    if isinstance(err, ApiStatusError) or _api_exception(err):
        status = _status_body(err)
        message = str(status.get("message") or getattr(err, "reason", "") or err)
        code = int(getattr(err, "status", 0) or 0)
        if code == 409 and action == "apply":
            managers = conflicting_managers(message)
            owners = ", ".join(managers) or "another field manager"
            return ConflictError(
                f"server-side apply conflict with {owners}: {message}",
                where=where,
                hint="another tool owns these fields; use --force-conflicts to take them over",
            )
        if code == 409 and action == "patch":
            return ConflictError(
                f"the object changed since it was read: {message}",
                where=where,
                hint="read it again and retry",
            )
        if code == 409 and action == "delete":
            return ObjectChangedError(
                f"changed since it was read, so it was not deleted: {message}",
                where=where,
                hint="the next sync looks at it again",
            )
        if code == 422 or code == 400:
            causes = (status.get("details") or {}).get("causes") or []
            if (
                any("immutable" in str(c.get("message", "")) for c in causes)
                or "immutable" in message
            ):
                return ImmutableFieldError(
                    message,
                    where=where,
                    hint="annotate the object with appflow.dev/replace-on-immutable=true to delete and re-create it",
                )
            return ApplyError(f"rejected by the API server: {message}", where=where)
        if code == 404:
            details = status.get("details") or {}
            if details.get("kind") == "namespaces":
                return MissingNamespaceError(
                    f"namespace {details.get('name')!r} does not exist",
                    where=where,
                    hint="create it in the app (a Namespace object) or set the app's namespace",
                )
            return ApplyError(f"not found: {message}", where=where)
        if code == 403 and obj is not None and action in ("apply", "delete"):
            # The API server answered, about this object: admission (a policy, a
            # webhook, an exhausted quota) or RBAC for its kind refused it.
            return ObjectForbiddenError(
                f"forbidden by the cluster (HTTP 403): {message}",
                where=where,
                hint=_forbidden_hint(message),
            )
        if code in (401, 403):
            return ClusterError(
                f"the API server refused appflow's credentials (HTTP {code}): {message}",
                where=where,
                hint="check the cluster's kubeconfig and its RBAC permissions",
            )
        if code in (429, 500, 502, 503, 504):
            return ClusterError(
                f"the API server is overloaded or failing (HTTP {code}): {message}", where=where
            )
        return ApplyError(f"HTTP {code}: {message}", where=where)
    return ClusterError(f"{type(err).__name__}: {_short(err)}", where=where)


def _unreachable(err: BaseException) -> bool:
    if "urllib3.exceptions" not in sys.modules:
        return False
    import urllib3.exceptions

    return isinstance(err, urllib3.exceptions.HTTPError)


def _api_exception(err: BaseException) -> bool:
    if "kubernetes.client.exceptions" not in sys.modules:
        return False
    from kubernetes.client.exceptions import ApiException

    return isinstance(err, ApiException)


def _forbidden_hint(message: str) -> str:
    if "exceeded quota" in message:
        return "the namespace's ResourceQuota has no room for it: raise the quota or remove objects"
    if "denied" in message or "admission" in message.lower():
        return "an admission policy of the cluster refused it: change the object or the policy"
    return "appflow's credentials may not write this kind here: grant it in the cluster's RBAC"


def _short(err: BaseException) -> str:
    text = str(err)
    return text if len(text) < 300 else text[:297] + "..."
