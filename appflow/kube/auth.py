"""The API server's own authentication and authorization: TokenRequest, TokenReview,
SubjectAccessReview.

The hub mints a pull agent's credential with a TokenRequest (a ServiceAccount token bound to
a Secret, so deleting that Secret revokes it at once), authenticates agents that call its
agent API with a TokenReview, and tests prove an agent's rights with SubjectAccessReviews.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kubernetes import client as k8s

from appflow.kube.client import KubeCluster
from appflow.kube.errors import translate


@dataclass(frozen=True, kw_only=True)
class IssuedToken:
    token: str
    expires: datetime


def _request_token_sync(
    kube: KubeCluster,
    *,
    namespace: str,
    service_account: str,
    seconds: int,
    bound_secret: tuple[str, str] | None,
) -> IssuedToken:
    spec: dict[str, Any] = {"expirationSeconds": seconds}
    if bound_secret is not None:
        name, uid = bound_secret
        spec["boundObjectRef"] = {"apiVersion": "v1", "kind": "Secret", "name": name, "uid": uid}
    body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}
    obj = f"ServiceAccount/{namespace}/{service_account}"
    kube.write_timeout(obj)
    try:
        api: Any = k8s.CoreV1Api(kube.api_client)
        answer = api.create_namespaced_service_account_token(
            service_account, namespace, body, _request_timeout=kube.timeout
        )
    except Exception as err:
        raise translate(err, cluster=kube.name, obj=obj, action="token") from err
    return IssuedToken(token=answer.status.token, expires=answer.status.expiration_timestamp)


async def request_token(
    kube: KubeCluster,
    *,
    namespace: str,
    service_account: str,
    seconds: int,
    bound_secret: tuple[str, str] | None = None,
) -> IssuedToken:
    """A token for SERVICE_ACCOUNT valid SECONDS, bound to the Secret (name, uid) if given."""
    return await kube.run_blocking(  # type: ignore[no-any-return]
        _request_token_sync,
        kube,
        namespace=namespace,
        service_account=service_account,
        seconds=seconds,
        bound_secret=bound_secret,
    )


@dataclass(frozen=True, kw_only=True)
class ReviewedToken:
    authenticated: bool
    username: str = ""
    groups: tuple[str, ...] = ()
    error: str = ""


def _review_token_sync(kube: KubeCluster, token: str) -> ReviewedToken:
    body = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenReview",
        "spec": {"token": token},
    }
    try:
        api: Any = k8s.AuthenticationV1Api(kube.api_client)
        answer = api.create_token_review(body, _request_timeout=kube.timeout)
    except Exception as err:
        raise translate(err, cluster=kube.name, obj="TokenReview", action="review") from err
    status = answer.status
    user = status.user
    return ReviewedToken(
        authenticated=bool(status.authenticated),
        username=str(user.username) if user and user.username else "",
        groups=tuple(user.groups or ()) if user else (),
        error=str(status.error or ""),
    )


async def review_token(kube: KubeCluster, token: str) -> ReviewedToken:
    """Who TOKEN belongs to, as the API server sees it."""
    return await kube.run_blocking(_review_token_sync, kube, token)  # type: ignore[no-any-return]


def _access_review_sync(
    kube: KubeCluster, *, user: str, groups: tuple[str, ...], attributes: dict[str, str]
) -> bool:
    body = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {"user": user, "groups": list(groups), "resourceAttributes": attributes},
    }
    try:
        api: Any = k8s.AuthorizationV1Api(kube.api_client)
        answer = api.create_subject_access_review(body, _request_timeout=kube.timeout)
    except Exception as err:
        raise translate(err, cluster=kube.name, obj="SubjectAccessReview", action="review") from err
    return bool(answer.status.allowed)


def access_allowed(
    kube: KubeCluster, *, user: str, groups: tuple[str, ...], attributes: dict[str, str]
) -> bool:
    """Whether USER (in GROUPS) may do what ATTRIBUTES describe (a SubjectAccessReview's
    resourceAttributes: verb, group, resource, subresource, namespace, name)."""
    return _access_review_sync(kube, user=user, groups=groups, attributes=attributes)


def service_account_user(namespace: str, name: str) -> tuple[str, tuple[str, ...]]:
    """The user name and groups the API server gives ServiceAccount NAMESPACE/NAME."""
    return (
        f"system:serviceaccount:{namespace}:{name}",
        ("system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"),
    )
