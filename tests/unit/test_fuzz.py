"""Fuzzing what repositories and webhook senders control (issue 10, must-show).

Hypothesis writes ``appflow.yaml`` and ``fleet.yaml`` files (shaped like the
real ones, with values of every type where a field expects one, and raw text),
values with Fleet templates rendered for clusters of any labels, and webhook
bodies and headers for every provider. Whatever it writes, appflow either
accepts it or raises one of its own errors with a message that names where the
problem is: never a traceback.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from appflow.engine.desired import render_request
from appflow.errors import AppflowError
from appflow.model.appdef import AppDefinition
from appflow.model.capabilities import Capabilities
from appflow.model.targeting import ClusterInfo
from appflow.model.webhooks import PROVIDERS, Delivery, parse_delivery, verify_signature
from appflow.sources.appdef import load_app_definitions

# In CI the same examples every run; locally new ones each time.
FUZZ = settings(
    max_examples=200,
    deadline=None,
    derandomize=bool(os.environ.get("CI")),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
    | st.sampled_from(["${ .ClusterName }", "${ .ClusterLabels.env }", "${ bad", "}}", "&a", "*a"])
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
names = st.sampled_from(["web", "Web_1", "", "a" * 70, "x.y", "-"]) | st.text(max_size=12)


def field(key: str, good: st.SearchStrategy[Any]) -> st.SearchStrategy[tuple[str, Any]]:
    """KEY with a value of the expected shape, or of any shape at all."""
    return st.tuples(st.just(key), good | values)


selector = st.fixed_dictionaries(
    {},
    optional={
        "matchLabels": st.dictionaries(names, names, max_size=3) | values,
        "matchExpressions": st.lists(
            st.fixed_dictionaries(
                {"key": names, "operator": st.sampled_from(["In", "NotIn", "Exists", "Bad"])},
                optional={"values": st.lists(names, max_size=3)},
            ),
            max_size=2,
        )
        | values,
    },
)
target = st.fixed_dictionaries(
    {},
    optional={
        "name": names,
        "clusterName": names,
        "clusterGroup": names,
        "clusterSelector": selector | values,
        "namespace": names,
        "helm": st.fixed_dictionaries({}, optional={"values": values, "valuesFiles": values}),
        "kustomize": st.fixed_dictionaries({}, optional={"dir": names}),
        "yaml": st.fixed_dictionaries({}, optional={"overlays": st.lists(names, max_size=2)}),
    },
)
helm = st.fixed_dictionaries(
    {},
    optional={
        "chart": st.sampled_from([".", "chart", "../outside", "oci://r/c", "a::b"]) | names,
        "repo": st.sampled_from(["https://charts.example.com", ""]) | names,
        "version": st.sampled_from(["1.2.3", "1.x", "^2", "bad version"]) | values,
        "releaseName": names,
        "values": values,
        "valuesFiles": st.lists(st.sampled_from(["values.yaml", "../../etc/passwd"]), max_size=2),
        "mode": st.sampled_from(["template", "release", "other"]),
        "lookup": st.booleans() | values,
        "disablePreProcess": st.booleans() | values,
    },
)


def document(extra: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[dict[str, Any]]:
    common: dict[str, st.SearchStrategy[Any]] = {
        "name": names,
        "namespace": names,
        "defaultNamespace": names,
        "helm": helm | values,
        "kustomize": st.fixed_dictionaries({}, optional={"dir": names}) | values,
        "yaml": st.fixed_dictionaries({}, optional={"overlays": st.lists(names)}) | values,
        "targetCustomizations": st.lists(target, max_size=3) | values,
        "dependsOn": st.lists(
            st.fixed_dictionaries({}, optional={"name": names, "selector": selector}), max_size=2
        )
        | values,
    }
    return st.fixed_dictionaries({}, optional={**common, **extra}) | values


appflow_docs = document(
    {
        "source": st.sampled_from(["helm", "kustomize", "yaml", "git"]),
        "targets": st.lists(target, max_size=3) | values,
        "syncPolicy": st.fixed_dictionaries(
            {}, optional={"auto": values, "prune": values, "selfHeal": values}
        )
        | values,
        "rollout": st.fixed_dictionaries(
            {},
            optional={
                "maxUnavailable": st.sampled_from([1, "25%", "x%", -1]) | values,
                "autoPartitionSize": st.sampled_from(["25%", 0, "a"]) | values,
                "healthTimeoutSeconds": values,
                "partitions": values,
            },
        )
        | values,
    }
)
fleet_docs = document(
    {
        "paused": values,
        "rolloutStrategy": values,
        "diff": values,
        "overrideTargets": values,
        "imageScans": values,
        "keepResources": values,
    }
)


def assert_clear(err: AppflowError, file: str) -> None:
    """An error a user can act on: a message, and the place (the file at least)."""
    text = str(err)
    assert err.message.strip(), repr(err)
    assert file in text or err.where.file, text
    assert "Traceback" not in text


def write_app(folder: Path, file: str, content: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.iterdir():
        old.unlink()
    (folder / file).write_text(content)
    (folder / "values.yaml").write_text("replicas: 1\n")


def caught(call: Callable[[], object]) -> AppflowError | None:
    """The AppflowError CALL raised, or None; any other exception fails the test."""
    try:
        call()
    except AppflowError as err:
        return err
    return None


def load_and_request(folder: Path, file: str, labels: dict[str, str]) -> None:
    loaded: list[AppDefinition] = []
    err = caught(lambda: loaded.extend(load_app_definitions(folder)))
    if err is not None:
        assert_clear(err, file)
        return
    cluster = ClusterInfo(name="edge-1", labels=labels)
    for app in loaded:
        err = caught(
            lambda app=app: render_request(  # type: ignore[misc]
                app,
                repo_root=folder,
                source_digest="fuzz",
                cluster=cluster,
                groups={},
                capabilities=Capabilities(kube_version="v1.36.0"),
            )
        )
        assert err is None or err.message.strip()


def yaml_text(doc: Any) -> str:
    try:
        return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)
    except (yaml.YAMLError, ValueError):
        return json.dumps(doc, default=str)


labels = st.dictionaries(st.sampled_from(["env", "region", "site", ""]), names, max_size=3)


definitions = st.tuples(st.just("appflow.yaml"), appflow_docs) | st.tuples(
    st.just("fleet.yaml"), fleet_docs
)


@FUZZ
@given(definition=definitions, cluster_labels=labels)
def test_any_definition_loads_or_says_what_is_wrong(
    tmp_path_factory: Any, definition: tuple[str, Any], cluster_labels: dict[str, str]
) -> None:
    file, doc = definition
    folder = tmp_path_factory.mktemp("fuzz") / "app"
    write_app(folder, file, yaml_text(doc))
    load_and_request(folder, file, cluster_labels)


yaml_junk = st.lists(
    st.sampled_from([*"ab:-[]{}&*!|>'\"#%@`,? \n\t\\", "${", "<<: *a", "&a ", "helm:\n  "]),
    max_size=80,
).map("".join)


@FUZZ
@given(text=yaml_junk, file=st.sampled_from(["appflow.yaml", "fleet.yaml"]))
@example(text="~: 1\n", file="appflow.yaml")  # a key null once crashed the schema report
@example(text="a: &a [*a]\n", file="fleet.yaml")
def test_any_text_as_a_definition_loads_or_says_what_is_wrong(
    tmp_path_factory: Any, text: str, file: str
) -> None:
    folder = tmp_path_factory.mktemp("fuzz") / "app"
    write_app(folder, file, text)
    load_and_request(folder, file, {"env": "prod"})


@FUZZ
@given(doc=values, cluster_labels=labels)
def test_any_values_render_per_cluster_or_say_what_is_wrong(
    tmp_path_factory: Any, doc: Any, cluster_labels: dict[str, str]
) -> None:
    folder = tmp_path_factory.mktemp("fuzz") / "app"
    text = yaml_text(
        {
            "helm": {"chart": ".", "values": {"v": doc}},
            "targetCustomizations": [
                {"name": "all", "clusterSelector": {}, "helm": {"values": {"w": doc}}}
            ],
        }
    )
    write_app(folder, "fleet.yaml", text)
    (folder / "Chart.yaml").write_text("apiVersion: v2\nname: c\nversion: 0.1.0\n")
    load_and_request(folder, "fleet.yaml", cluster_labels)


# -- webhook bodies -----------------------------------------------------------------------------

push_like = st.fixed_dictionaries(
    {},
    optional={
        "ref": st.sampled_from(["refs/heads/main", "refs/tags/v1", "main", ""]) | values,
        "after": st.sampled_from(["0" * 40, "a" * 40]) | values,
        "deleted": values,
        "checkout_sha": values,
        "object_kind": st.sampled_from(["push", "tag_push"]) | values,
        "repository": st.fixed_dictionaries(
            {},
            optional={
                "clone_url": st.sampled_from(["https://git.example.com/a/b.git", "::"]) | values,
                "full_name": values,
                "links": values,
                "default_branch": values,
                "mainbranch": values,
            },
        )
        | values,
        "project": values,
        "push": st.fixed_dictionaries({}, optional={"changes": st.lists(values, max_size=3)})
        | values,
        "branch": values,
        "commit": values,
        "tag": values,
    },
)
bodies = (
    push_like.map(lambda d: json.dumps(d, default=str).encode())
    | values.map(lambda d: json.dumps(d, default=str).encode())
    | st.binary(max_size=300)
    | st.integers(min_value=1, max_value=5000).map(lambda n: b'{"a":' + b"[" * n + b"]" * n + b"}")
)
header_values = st.text(max_size=40) | st.sampled_from(["push", "ping", "Push Hook", "repo:push"])
headers = st.dictionaries(
    st.sampled_from(
        [
            "x-github-event",
            "x-gitlab-event",
            "x-gitea-event",
            "x-event-key",
            "x-hub-signature-256",
            "x-hub-signature",
            "x-gitlab-token",
            "x-gitea-signature",
            "x-appflow-timestamp",
            "x-appflow-signature",
            "x-appflow-delivery",
        ]
    ),
    header_values,
)


@settings(FUZZ, max_examples=400)
@given(provider=st.sampled_from(PROVIDERS), body=bodies, sent=headers)
@example(provider="github", body=b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}", sent={})
def test_any_webhook_body_is_a_delivery_or_a_clear_refusal(
    provider: str, body: bytes, sent: dict[str, str]
) -> None:
    delivered: list[Delivery] = []
    err = caught(lambda: delivered.append(parse_delivery(provider, sent, body)))
    assert err is not None or delivered[0].kind in ("push", "ping", "ignored")
    assert err is None or err.message.strip()
    err = caught(
        lambda: verify_signature(provider, secret=b"s3cret", headers=sent, body=body, now=1.7e9)
    )
    assert err is None or err.message.strip()
