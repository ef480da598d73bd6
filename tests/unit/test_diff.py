"""normalize, changed_paths and unified_diff: what `appflow app diff` shows and compares."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from hypothesis import example, given
from hypothesis import strategies as st

from appflow.model.diff import changed_paths, normalize, unified_diff
from appflow.model.objects import Manifest, ObjectRef
from appflow.model.redact import Redactor

TESTDATA = Path(__file__).parent / "testdata" / "plan"


def load(name: str) -> Manifest:
    data: Manifest = yaml.safe_load((TESTDATA / name).read_text())
    return data


def test_normalize_drops_server_noise_and_keeps_content() -> None:
    live = load("deployment-live.yaml")
    before = copy.deepcopy(live)

    result = normalize(live)

    assert live == before, "normalize must not mutate its input"
    meta = result["metadata"]
    for dropped in ("managedFields", "resourceVersion", "uid", "generation", "creationTimestamp"):
        assert dropped not in meta
    assert "status" not in result
    assert meta["annotations"] == {
        "appflow.dev/owner": "web/inv-1",
        "deployment.kubernetes.io/revision": "3",
    }
    assert meta["labels"]["appflow.dev/app"] == "web"
    assert result["spec"] == live["spec"]


def test_normalize_removes_maps_left_empty() -> None:
    obj: Manifest = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "c",
            "labels": {},
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"},
            "selfLink": "/api/v1/namespaces/x/configmaps/c",
            "deletionGracePeriodSeconds": 30,
        },
        "data": {},
    }
    assert normalize(obj) == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c"},
        "data": {},
    }


def test_live_and_unchanged_dry_run_normalize_equal() -> None:
    assert normalize(load("deployment-live.yaml")) == normalize(
        load("deployment-dry-run-same.yaml")
    )


def test_changed_paths_names_the_fields_a_user_changed() -> None:
    live = normalize(load("deployment-live.yaml"))
    scaled = normalize(load("deployment-dry-run-scaled.yaml"))
    assert changed_paths(live, scaled) == [
        "spec.replicas",
        "spec.template.spec.containers[0].image",
    ]


def test_changed_paths_quotes_keys_with_dots_and_reports_one_sided_keys() -> None:
    a = {"metadata": {"labels": {"app.kubernetes.io/name": "web"}}, "spec": {"ports": [1]}}
    b = {"metadata": {"labels": {"app.kubernetes.io/name": "api", "tier": "x"}}, "spec": {}}
    assert changed_paths(a, b) == [
        'metadata.labels["app.kubernetes.io/name"]',
        "metadata.labels.tier",
        "spec.ports",
    ]


def test_changed_paths_reports_list_growth_and_type_changes() -> None:
    assert changed_paths({"a": [1, 2]}, {"a": [1, 2, 3]}) == ["a[2]"]
    assert changed_paths({"a": 1}, {"a": True}) == ["a"]
    assert changed_paths({"a": {"b": 1}}, {"a": {"b": 1}}) == []


def test_unified_diff_is_empty_when_only_noise_differs() -> None:
    live = load("deployment-live.yaml")
    assert unified_diff(ObjectRef.of(live), live, load("deployment-dry-run-same.yaml")) == ""


def test_unified_diff_shows_changed_lines_with_headers() -> None:
    live = load("deployment-live.yaml")
    text = unified_diff(ObjectRef.of(live), live, load("deployment-dry-run-scaled.yaml"))
    lines = text.splitlines()
    assert lines[0] == "--- live/Deployment.apps/shop/web"
    assert lines[1] == "+++ desired/Deployment.apps/shop/web"
    changed = [line for line in lines[2:] if line[:1] in "+-"]
    assert changed == [
        "-  replicas: 2",
        "+  replicas: 3",
        "-      - image: nginx:1.25",
        "+      - image: nginx:1.27",
    ]
    assert "managedFields" not in text
    assert "resourceVersion" not in text


def test_unified_diff_puts_apiversion_kind_metadata_first() -> None:
    desired: Manifest = {
        "spec": {"z": 1, "a": 2},
        "metadata": {"name": "x", "namespace": "n"},
        "kind": "Thing",
        "apiVersion": "example.com/v1",
    }
    text = unified_diff(ObjectRef.of(desired), None, desired, context=0)
    assert text.splitlines() == [
        "--- /dev/null",
        "+++ desired/Thing.example.com/n/x",
        "@@ -0,0 +1,8 @@",
        "+apiVersion: example.com/v1",
        "+kind: Thing",
        "+metadata:",
        "+  name: x",
        "+  namespace: n",
        "+spec:",
        "+  a: 2",
        "+  z: 1",
    ]


def test_unified_diff_shows_embedded_files_line_by_line() -> None:
    def config(text: str) -> Manifest:
        return {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "conf", "namespace": "shop"},
            "data": {"nginx.conf": text},
        }

    live, desired = config("worker 1;\nlisten 80;\n"), config("worker 1;\nlisten 8080;\n")
    text = unified_diff(ObjectRef.of(live), live, desired)
    assert "-    listen 80;\n+    listen 8080;\n" in text


def test_unified_diff_never_shows_secret_values() -> None:
    def secret(data: dict[str, str]) -> Manifest:
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "db", "namespace": "shop"},
            "data": data,
        }

    live = secret({"user": "YWRtaW4=", "password": "aHVudGVyMg=="})
    desired = secret({"user": "YWRtaW4=", "password": "czNjcjN0", "token": "dG9r"})
    redactor = Redactor(key=b"k")
    text = unified_diff(ObjectRef.of(live), live, desired, redactor=redactor)
    for value in ("YWRtaW4=", "aHVudGVyMg==", "czNjcjN0", "dG9r", "admin", "hunter2", "s3cr3t"):
        assert value not in text
    changed = [line for line in text.splitlines()[2:] if line[:1] in "+-"]
    # The same value shows the same digest (of its decoded bytes): a change is visible.
    assert changed == [
        f"-  password: {redactor.mask(b'hunter2')}",
        f"+  password: {redactor.mask(b's3cr3t')}",
        f"+  token: {redactor.mask(b'tok')}",
    ]
    assert f"   user: {redactor.mask(b'admin')}" in text.splitlines()


def test_unified_diff_hides_known_secret_values_in_any_object() -> None:
    def config(password: str) -> Manifest:
        return {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "conf", "namespace": "shop"},
            "data": {"broker.conf": f"user edge\npassword {password}\n"},
        }

    redactor = Redactor(key=b"k").with_values(["old-pass-1", "new-pass-2"])
    text = unified_diff(
        ObjectRef.of(config("x")), config("old-pass-1"), config("new-pass-2"), redactor=redactor
    )
    assert "old-pass-1" not in text
    assert "new-pass-2" not in text
    assert f"-    password {redactor.mask('old-pass-1')}" in text
    assert f"+    password {redactor.mask('new-pass-2')}" in text


def test_unified_diff_of_removed_object_is_all_minus() -> None:
    live = load("deployment-live.yaml")
    text = unified_diff(ObjectRef.of(live), live, None)
    body = text.splitlines()
    assert body[:2] == ["--- live/Deployment.apps/shop/web", "+++ /dev/null"]
    assert all(line.startswith("-") for line in body[3:])


# Manifests with random content plus the noise normalize must remove.
_scalars = st.one_of(st.integers(), st.text(max_size=5), st.booleans(), st.none())
_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=10,
)
_string_maps = st.dictionaries(st.text(min_size=1, max_size=6), st.text(max_size=6), max_size=3)


@st.composite
def manifests(draw: st.DrawFn) -> Manifest:
    metadata: dict[str, Any] = {"name": draw(st.text(min_size=1, max_size=6))}
    for key in ("resourceVersion", "uid", "generation", "managedFields", "creationTimestamp"):
        if draw(st.booleans()):
            metadata[key] = draw(_values)
    if draw(st.booleans()):
        annotations = draw(_string_maps)
        if draw(st.booleans()):
            annotations["kubectl.kubernetes.io/last-applied-configuration"] = "{}"
        metadata["annotations"] = annotations
    if draw(st.booleans()):
        metadata["labels"] = draw(_string_maps)
    obj: Manifest = {"apiVersion": "v1", "kind": "Thing", "metadata": metadata}
    if draw(st.booleans()):
        obj["status"] = draw(_values)
    obj["spec"] = draw(_values)
    return obj


@given(manifests())
def test_normalize_is_idempotent_and_pure(obj: Manifest) -> None:
    before = copy.deepcopy(obj)
    once = normalize(obj)
    assert normalize(once) == once
    assert obj == before
    assert "status" not in once
    assert "last-applied" not in str(once.get("metadata", {}).get("annotations", {}))


@example(
    {"apiVersion": "v1", "kind": "Thing", "metadata": {"name": "x"}, "spec": 1},
    {"apiVersion": "v1", "kind": "Thing", "metadata": {"name": "x"}, "spec": True},
)
@given(manifests(), manifests())
def test_diff_is_empty_exactly_when_no_path_differs(a: Manifest, b: Manifest) -> None:
    ref = ObjectRef.of(a)
    no_paths = changed_paths(normalize(a), normalize(b)) == []
    assert (unified_diff(ref, a, b) == "") == no_paths
