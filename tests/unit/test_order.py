"""Apply stages and deletion order."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from appflow.errors import ConfigError
from appflow.model.objects import Manifest, ObjectRef
from appflow.model.order import Stage, deletion_order, plan_stages, sync_wave


def obj(
    api_version: str, kind: str, name: str, namespace: str = "", wave: object = None
) -> Manifest:
    metadata: dict[str, object] = {"name": name}
    if namespace:
        metadata["namespace"] = namespace
    if wave is not None:
        metadata["annotations"] = {"appflow.dev/sync-wave": wave}
    return {"apiVersion": api_version, "kind": kind, "metadata": metadata}


def crd(group: str, kind: str, plural: str, scope: str = "Namespaced") -> Manifest:
    manifest = obj("apiextensions.k8s.io/v1", "CustomResourceDefinition", f"{plural}.{group}")
    manifest["spec"] = {"group": group, "names": {"kind": kind, "plural": plural}, "scope": scope}
    return manifest


def layout(stages: list[Stage]) -> list[tuple[str, list[str]]]:
    """What a user sees of the stages: names and object identities."""
    return [(stage.name, [str(ref) for ref in stage.refs()]) for stage in stages]


PODINFO: list[Manifest] = [
    obj("networking.k8s.io/v1", "Ingress", "web", "shop"),
    obj("apps/v1", "Deployment", "web", "shop"),
    obj("v1", "Service", "web", "shop"),
    obj("monitoring.coreos.com/v1", "ServiceMonitor", "web", "shop"),
    obj("v1", "ConfigMap", "web", "shop"),
    obj("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", "web"),
    obj("v1", "Namespace", "shop"),
    obj("v1", "ServiceAccount", "web", "shop"),
    obj("rbac.authorization.k8s.io/v1", "ClusterRole", "web"),
    crd("monitoring.coreos.com", "ServiceMonitor", "servicemonitors"),
    obj("v1", "Secret", "web", "shop"),
    obj("v1", "PersistentVolumeClaim", "data", "shop"),
]


def test_stages_follow_crds_namespaces_cluster_namespaced() -> None:
    stages = plan_stages(PODINFO)
    assert layout(stages) == [
        (
            "crds",
            ["CustomResourceDefinition.apiextensions.k8s.io/servicemonitors.monitoring.coreos.com"],
        ),
        ("namespaces", ["Namespace/shop"]),
        (
            "cluster",
            [
                "ClusterRole.rbac.authorization.k8s.io/web",
                "ClusterRoleBinding.rbac.authorization.k8s.io/web",
            ],
        ),
        (
            "wave 0",
            [
                "ServiceAccount/shop/web",
                "Secret/shop/web",
                "ConfigMap/shop/web",
                "PersistentVolumeClaim/shop/data",
                "Service/shop/web",
                "Deployment.apps/shop/web",
                "Ingress.networking.k8s.io/shop/web",
                "ServiceMonitor.monitoring.coreos.com/shop/web",
            ],
        ),
    ]
    assert [stage.wait_established for stage in stages] == [True, False, False, False]


def test_stages_do_not_depend_on_input_order() -> None:
    shuffled = PODINFO[:]
    random.Random(7).shuffle(shuffled)
    assert layout(plan_stages(shuffled)) == layout(plan_stages(PODINFO))


def test_waves_split_stages_and_negative_waves_come_first() -> None:
    manifests = [
        obj("batch/v1", "Job", "migrate", "shop", wave="-1"),
        obj("apps/v1", "Deployment", "web", "shop"),
        obj("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration", "hook", wave="2"),
        obj("apps/v1", "Deployment", "hook", "shop", wave=1),
        obj("v1", "Namespace", "shop", wave="5"),
    ]
    assert layout(plan_stages(manifests)) == [
        ("namespaces", ["Namespace/shop"]),
        ("wave -1", ["Job.batch/shop/migrate"]),
        ("wave 0", ["Deployment.apps/shop/web"]),
        ("wave 1", ["Deployment.apps/shop/hook"]),
        ("cluster wave 2", ["ValidatingWebhookConfiguration.admissionregistration.k8s.io/hook"]),
    ]


def test_crd_in_the_set_decides_the_scope_of_its_kind() -> None:
    manifests = [
        obj("cert-manager.io/v1", "ClusterIssuer", "letsencrypt"),
        crd("cert-manager.io", "ClusterIssuer", "clusterissuers", scope="Cluster"),
    ]
    # The default table does not know ClusterIssuer; its CRD says it is cluster-scoped.
    assert [s.name for s in plan_stages(manifests)] == ["crds", "cluster"]


def test_is_namespaced_comes_from_the_caller() -> None:
    manifests = [obj("example.com/v1", "Widget", "w")]
    assert [s.name for s in plan_stages(manifests)] == ["wave 0"]
    cluster = plan_stages(manifests, is_namespaced=lambda ref: ref.kind != "Widget")
    assert [s.name for s in cluster] == ["cluster"]


@pytest.mark.parametrize(
    ("value", "expected"), [("3", 3), ("-2", -2), (" 1 ", 1), ("+4", 4), (7, 7), (None, 0)]
)
def test_sync_wave_reads_integers(value: object, expected: int) -> None:
    assert sync_wave(obj("v1", "ConfigMap", "c", "shop", wave=value)) == expected


@pytest.mark.parametrize("value", ["early", "1.5", "", "1_000", True])
def test_non_integer_wave_is_a_config_error_naming_object_and_annotation(value: object) -> None:
    manifests = [obj("v1", "ConfigMap", "settings", "shop", wave=value)]
    with pytest.raises(ConfigError) as caught:
        plan_stages(manifests)
    text = str(caught.value)
    assert "ConfigMap/shop/settings" in text
    assert "appflow.dev/sync-wave" in text
    assert repr(value) in text


def test_deletion_order_is_reverse_apply_order() -> None:
    refs = [ObjectRef.of(m) for m in PODINFO]
    order = [str(ref) for ref in deletion_order(refs)]
    assert order[0] == "ServiceMonitor.monitoring.coreos.com/shop/web"
    assert order.index("Deployment.apps/shop/web") < order.index("ConfigMap/shop/web")
    assert order[-3:] == [
        "ClusterRole.rbac.authorization.k8s.io/web",
        "Namespace/shop",
        "CustomResourceDefinition.apiextensions.k8s.io/servicemonitors.monitoring.coreos.com",
    ]
    applied = [str(ref) for stage in plan_stages(PODINFO) for ref in stage.refs()]
    assert order == list(reversed(applied))


# Random sets of CRDs, their custom resources, namespaces and namespaced
# objects, with random waves: the ordering guarantees must always hold.
_names = st.sampled_from(["a", "b", "c", "d"])
_waves = st.one_of(st.none(), st.integers(-3, 3).map(str))


@st.composite
def fleets(draw: st.DrawFn) -> list[Manifest]:
    manifests: list[Manifest] = []
    kinds = draw(st.lists(_names, unique=True, max_size=3))
    for kind in kinds:
        scope = draw(st.sampled_from(["Namespaced", "Cluster"]))
        c = crd(f"{kind}.example.com", f"K{kind}", f"k{kind}s", scope)
        if draw(st.booleans()):
            c["metadata"]["annotations"] = {"appflow.dev/sync-wave": "9"}
        manifests.append(c)
        for name in draw(st.lists(_names, unique=True, max_size=3)):
            ns = draw(_names) if scope == "Namespaced" else ""
            manifests.append(obj(f"{kind}.example.com/v1", f"K{kind}", name, ns, draw(_waves)))
    for ns in draw(st.lists(_names, unique=True, max_size=3)):
        manifests.append(obj("v1", "Namespace", ns, wave=draw(_waves)))
    for name in draw(st.lists(_names, unique=True, max_size=3)):
        kind = draw(st.sampled_from(["ConfigMap", "Service", "ServiceAccount"]))
        manifests.append(obj("v1", kind, name, draw(_names), draw(_waves)))
    return draw(st.permutations(manifests))


@given(fleets())
def test_crds_precede_custom_resources_and_namespaces_precede_their_objects(
    manifests: list[Manifest],
) -> None:
    stages = plan_stages(manifests)
    position = {ref: index for index, stage in enumerate(stages) for ref in stage.refs()}
    assert sorted(position) == sorted(ObjectRef.of(m) for m in manifests)
    crd_stage = {
        f"{m['spec']['names']['kind']}.{m['spec']['group']}": position[ObjectRef.of(m)]
        for m in manifests
        if m["kind"] == "CustomResourceDefinition"
    }
    namespace_stage = {ref.name: i for ref, i in position.items() if ref.kind == "Namespace"}
    for ref, index in position.items():
        if ref.group_kind in crd_stage:
            assert crd_stage[ref.group_kind] < index, f"{ref} applied before its CRD"
        if ref.namespace in namespace_stage:
            assert namespace_stage[ref.namespace] < index, f"{ref} applied before its Namespace"
