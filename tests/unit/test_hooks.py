"""Hooks, as pure planning: which objects are hooks, which run when and in which order,
what their delete policies remove, and which operation a sync is.

The fixtures are a chart's `helm template` output and an Argo CD repository, written from
Helm's and Argo CD's documentation (tests/unit/testdata/hooks).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from appflow.errors import ConfigError
from appflow.model.hooks import (
    HOOKS_KEY,
    DeletePolicy,
    Hook,
    HookRun,
    HookStep,
    Operation,
    Outcome,
    Phase,
    apply_schedule,
    deleted_before_creation,
    deletions_after,
    due_in_sync,
    hook_of,
    hook_record_among,
    hook_record_apart,
    hooks_in,
    left_behind_on_delete,
    main_objects,
    outcome,
    record_after,
    split_hooks,
    sync_operation,
)
from appflow.model.objects import Manifest, ObjectRef
from appflow.model.order import Stage, plan_stages, sync_wave
from appflow.model.records import HookRecord

TESTDATA = Path(__file__).parent / "testdata"


def load(name: str) -> list[Manifest]:
    text = (TESTDATA / "hooks" / name).read_text()
    return [d for d in yaml.safe_load_all(text) if d]


def names(hooks: tuple[Hook, ...]) -> list[str]:
    return [h.ref.name for h in hooks]


HELM = load("helm-template.yaml")
ARGO = load("argocd-repo.yaml")


def hook(manifest: Manifest) -> Hook:
    found = hook_of(manifest)
    assert found is not None, f"{ObjectRef.of(manifest)} is not a hook"
    return found


def job(name: str, annotations: dict[str, Any], *, generate: bool = False) -> Manifest:
    meta: dict[str, Any] = {"namespace": "shop", "annotations": annotations}
    meta["generateName" if generate else "name"] = name
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": meta, "spec": {}}


# -- which objects are hooks ------------------------------------------------------------


def test_chart_hooks_leave_the_main_objects() -> None:
    split = split_hooks(HELM)
    assert [ObjectRef.of(m).name for m in split.main] == ["shop", "shop"]
    assert {m["kind"] for m in split.main} == {"Service", "Deployment"}
    assert sorted(h.ref.name for h in split.hooks) == [
        "shop-cleanup",
        "shop-drain",
        "shop-migrate",
        "shop-migrate-config",
        "shop-notify",
        "shop-restore",
        "shop-seed",
        "shop-test-connection",
    ]
    assert split.refs() == {h.ref for h in split.hooks}
    # What inventory and health see: no hook, whatever family marked it.
    assert main_objects(HELM) == split.main
    assert [ObjectRef.of(m).name for m in main_objects(ARGO)] == [
        "settings",
        "web",
        "web",
        "worker",
    ]


def test_argo_skip_is_neither_applied_nor_run() -> None:
    split = split_hooks(ARGO)
    assert split.skipped == (ObjectRef("", "ConfigMap", "shop", "local-notes"),)
    assert "local-notes" not in [ObjectRef.of(m).name for m in split.main]
    assert "local-notes" not in names(split.hooks)


def test_generate_name_hooks_are_named_by_their_prefix() -> None:
    migrate = next(h for h in split_hooks(ARGO).hooks if h.ref.name == "schema-migrate-")
    assert migrate.generated_name
    assert str(migrate.ref) == "Job.batch/shop/schema-migrate-"
    named = next(h for h in split_hooks(ARGO).hooks if h.ref.name == "warm-cache")
    assert not named.generated_name


# -- which hooks run when, in which order ----------------------------------------------------


def test_helm_install_runs_pre_install_hooks_by_weight() -> None:
    hooks = split_hooks(HELM).hooks
    # Helm: weight ascending (-5, 0, 5), as documented; pre-upgrade-only ones are not run.
    assert names(hooks_in(hooks, Phase.PRE_SYNC, Operation.INSTALL)) == [
        "shop-migrate-config",
        "shop-migrate",
        "shop-seed",
    ]
    assert names(hooks_in(hooks, Phase.POST_SYNC, Operation.INSTALL)) == ["shop-notify"]


def test_helm_upgrade_runs_only_upgrade_hooks() -> None:
    hooks = split_hooks(HELM).hooks
    assert names(hooks_in(hooks, Phase.PRE_SYNC, Operation.UPGRADE)) == [
        "shop-migrate-config",
        "shop-migrate",
    ]
    assert names(hooks_in(hooks, Phase.POST_SYNC, Operation.UPGRADE)) == ["shop-notify"]


def test_helm_rollback_delete_and_test_hooks() -> None:
    hooks = split_hooks(HELM).hooks
    assert names(hooks_in(hooks, Phase.PRE_SYNC, Operation.ROLLBACK)) == ["shop-restore"]
    assert names(hooks_in(hooks, Phase.POST_SYNC, Operation.ROLLBACK)) == []
    assert names(hooks_in(hooks, Phase.PRE_DELETE, Operation.DELETE)) == ["shop-drain"]
    assert names(hooks_in(hooks, Phase.POST_DELETE, Operation.DELETE)) == ["shop-cleanup"]
    assert names(hooks_in(hooks, Phase.TEST, Operation.TEST)) == ["shop-test-connection"]
    # A sync never runs tests or delete hooks.
    for operation in (Operation.INSTALL, Operation.UPGRADE, Operation.ROLLBACK):
        for phase in Phase:
            ran = names(hooks_in(hooks, phase, operation))
            assert "shop-test-connection" not in ran
            assert "shop-drain" not in ran


def test_hooks_describe_the_annotation_they_run_by() -> None:
    hook = next(h for h in split_hooks(HELM).hooks if h.ref.name == "shop-migrate")
    assert hook.describe(Phase.PRE_SYNC, Operation.UPGRADE) == (
        "pre-upgrade hook Job.batch/shop/shop-migrate"
    )
    argo = next(h for h in split_hooks(ARGO).hooks if h.ref.name == "warm-cache")
    assert argo.describe(Phase.SYNC, Operation.INSTALL) == "Sync hook Job.batch/shop/warm-cache"


def test_argo_phases_run_in_every_sync_operation() -> None:
    hooks = split_hooks(ARGO).hooks
    for operation in (Operation.INSTALL, Operation.UPGRADE, Operation.ROLLBACK):
        assert names(hooks_in(hooks, Phase.PRE_SYNC, operation)) == ["schema-migrate-"]
        assert names(hooks_in(hooks, Phase.SYNC, operation)) == ["warm-cache"]
        assert names(hooks_in(hooks, Phase.POST_SYNC, operation)) == ["integration-test-"]
        assert names(hooks_in(hooks, Phase.SYNC_FAIL, operation)) == [
            "app-slack-notification-fail-"
        ]
    assert names(hooks_in(hooks, Phase.POST_DELETE, Operation.DELETE)) == ["deregister"]


def test_same_weight_runs_by_kind_then_name() -> None:
    hooks = [
        hook(job("b-job", {"helm.sh/hook": "pre-install"})),
        hook(job("a-job", {"helm.sh/hook": "pre-install"})),
        hook(
            {
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": {
                    "name": "z-account",
                    "namespace": "shop",
                    "annotations": {"helm.sh/hook": "pre-install"},
                },
            }
        ),
    ]
    ordered = hooks_in(hooks, Phase.PRE_SYNC, Operation.INSTALL)
    # ServiceAccounts are applied before Jobs; Jobs by name.
    assert names(ordered) == ["z-account", "a-job", "b-job"]


def test_argo_sync_wave_orders_hooks_and_objects_alike() -> None:
    assert sync_wave(next(m for m in ARGO if m["metadata"].get("name") == "settings")) == -1
    assert sync_wave(next(m for m in ARGO if m["metadata"].get("name") == "worker")) == 2
    warm = next(h for h in split_hooks(ARGO).hooks if h.ref.name == "warm-cache")
    assert warm.weight == 1


def test_conflicting_waves_are_refused() -> None:
    both = job("x", {"appflow.dev/sync-wave": "1", "argocd.argoproj.io/sync-wave": "2"})
    with pytest.raises(ConfigError) as caught:
        sync_wave(both)
    assert "disagree" in str(caught.value)
    assert "Job.batch/shop/x" in str(caught.value)


def test_argo_hook_wins_over_helm_hook_on_one_object() -> None:
    found = hook(job("x", {"argocd.argoproj.io/hook": "PostSync", "helm.sh/hook": "pre-install"}))
    assert [t.phase for t in found.triggers] == [Phase.POST_SYNC]
    assert found.annotation == "argocd.argoproj.io/hook"


def test_appflow_hook_annotation_names_the_phases() -> None:
    found = hook(job("x", {"appflow.dev/hook": "PreSync,Test"}))
    assert [t.phase for t in found.triggers] == [Phase.PRE_SYNC, Phase.TEST]


# -- where hooks run within an apply ----------------------------------------------------------


def layout(schedule: list[Stage | HookStep]) -> list[str]:
    out = []
    for step in schedule:
        if isinstance(step, HookStep):
            out.append(f"{step.phase.value}: {', '.join(names(step.hooks))}")
        else:
            out.append(f"{step.name}: {', '.join(r.name for r in step.refs())}")
    return out


def test_argo_repo_deploys_in_argo_order() -> None:
    split = split_hooks(ARGO)
    namespace: Manifest = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}
    stages = plan_stages([namespace, *split.main])
    assert layout(apply_schedule(stages, split.hooks, Operation.INSTALL)) == [
        "namespaces: shop",
        "PreSync: schema-migrate-",
        "wave -1: settings",
        "wave 0: web, web",
        "Sync: warm-cache",
        "wave 2: worker",
    ]


def test_sync_hook_of_a_wave_without_objects_still_runs_in_order() -> None:
    split = split_hooks(ARGO)
    # Only the worker changed: wave 1 has nothing to apply, but its Sync hook runs before wave 2.
    worker = [m for m in split.main if m["metadata"]["name"] == "worker"]
    assert layout(apply_schedule(plan_stages(worker), split.hooks, Operation.UPGRADE)) == [
        "PreSync: schema-migrate-",
        "Sync: warm-cache",
        "wave 2: worker",
    ]


def test_no_operation_means_no_hooks_in_the_apply() -> None:
    split = split_hooks(ARGO)
    stages = plan_stages(split.main)
    assert apply_schedule(stages, split.hooks, None) == stages


def test_chart_schedule_puts_pre_install_hooks_first() -> None:
    split = split_hooks(HELM)
    schedule = apply_schedule(plan_stages(split.main), split.hooks, Operation.INSTALL)
    assert layout(schedule) == [
        "PreSync: shop-migrate-config, shop-migrate, shop-seed",
        "wave 0: shop, shop",
    ]


# -- delete policies --------------------------------------------------------------------------


def test_default_delete_policy_is_before_hook_creation() -> None:
    migrate = next(h for h in split_hooks(HELM).hooks if h.ref.name == "shop-migrate")
    assert migrate.delete_policies == {DeletePolicy.BEFORE_HOOK_CREATION}
    assert deleted_before_creation(migrate)


def test_argo_and_helm_policy_names_are_read() -> None:
    drain = next(h for h in split_hooks(HELM).hooks if h.ref.name == "shop-drain")
    assert drain.delete_policies == {DeletePolicy.HOOK_SUCCEEDED, DeletePolicy.HOOK_FAILED}
    assert not deleted_before_creation(drain)
    deregister = next(h for h in split_hooks(ARGO).hooks if h.ref.name == "deregister")
    assert deregister.delete_policies == {
        DeletePolicy.BEFORE_HOOK_CREATION,
        DeletePolicy.HOOK_FAILED,
    }
    both = hook(
        job(
            "x",
            {
                "argocd.argoproj.io/hook": "PreSync",
                "argocd.argoproj.io/hook-delete-policy": "HookFailed",
                "helm.sh/hook-delete-policy": "hook-succeeded",
            },
        )
    )
    assert both.delete_policies == {DeletePolicy.HOOK_FAILED, DeletePolicy.HOOK_SUCCEEDED}


def test_generated_names_never_collide_so_nothing_is_deleted_before_creation() -> None:
    migrate = next(h for h in split_hooks(ARGO).hooks if h.ref.name == "schema-migrate-")
    assert DeletePolicy.BEFORE_HOOK_CREATION in migrate.delete_policies
    assert not deleted_before_creation(migrate)


def test_after_a_phase_succeeded_hook_succeeded_ones_go_in_reverse_order() -> None:
    hooks = hooks_in(split_hooks(HELM).hooks, Phase.PRE_SYNC, Operation.INSTALL)
    config, migrate, seed = hooks
    assert deletions_after(hooks) == (seed,)
    ran = tuple(
        hook(
            job(n, {"helm.sh/hook": "pre-install", "helm.sh/hook-delete-policy": "hook-succeeded"})
        )
        for n in ("first", "second")
    )
    assert names(deletions_after(ran)) == ["second", "first"]
    assert migrate not in deletions_after(hooks)
    assert config not in deletions_after(hooks)


def test_after_a_failure_the_failed_hook_goes_only_with_hook_failed() -> None:
    succeeded = hook(
        job("ok", {"helm.sh/hook": "pre-install", "helm.sh/hook-delete-policy": "hook-succeeded"})
    )
    kept = hook(job("kept", {"helm.sh/hook": "pre-install"}))
    failing = hook(
        job("broken", {"helm.sh/hook": "pre-install", "helm.sh/hook-delete-policy": "hook-failed"})
    )
    assert names(deletions_after((succeeded,), failing)) == ["broken", "ok"]
    assert names(deletions_after((succeeded,), kept)) == ["ok"]


def test_crds_are_never_deleted_by_a_policy() -> None:
    crd = hook(
        {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {
                "name": "widgets.example.com",
                "annotations": {
                    "helm.sh/hook": "pre-install",
                    "helm.sh/hook-delete-policy": "hook-succeeded,before-hook-creation",
                },
            },
        }
    )
    assert not deleted_before_creation(crd)
    assert deletions_after((crd,)) == ()


def test_app_delete_removes_sync_and_test_hooks_but_not_delete_hooks() -> None:
    hooks = split_hooks(HELM).hooks
    gone = names(left_behind_on_delete(hooks))
    assert "shop-migrate" in gone
    assert "shop-test-connection" in gone
    assert "shop-drain" not in gone
    assert "shop-cleanup" not in gone
    keep = hook(job("x", {"helm.sh/hook": "pre-install", "helm.sh/resource-policy": "keep"}))
    assert left_behind_on_delete((keep,)) == ()


# -- which operation a sync is ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("record", "owns", "rollback", "expected"),
    [
        (None, False, False, Operation.INSTALL),
        # Synced before it had hooks: it is upgraded.
        (None, True, False, Operation.UPGRADE),
        (HookRecord(revision="r1"), True, False, Operation.UPGRADE),
        (HookRecord(revision="r2"), True, False, None),
        # The write-ahead inventory of a failed install names objects: still an install.
        (HookRecord(install_failed=True), True, False, Operation.INSTALL),
        (HookRecord(revision="r1"), True, True, Operation.ROLLBACK),
        (HookRecord(revision="r2"), True, True, None),
    ],
)
def test_sync_operation(
    record: HookRecord | None, owns: bool, rollback: bool, expected: Operation | None
) -> None:
    assert sync_operation(record, owns_objects=owns, revision="r2", rollback=rollback) is expected


def test_record_after_a_sync() -> None:
    previous = HookRecord(revision="r1")
    assert record_after(
        Operation.UPGRADE, revision="r2", succeeded=True, previous=previous
    ) == HookRecord(revision="r2")
    assert record_after(Operation.UPGRADE, revision="r2", succeeded=False, previous=previous) == (
        previous
    )
    failed = record_after(Operation.INSTALL, revision="r1", succeeded=False, previous=None)
    assert failed == HookRecord(install_failed=True)
    assert failed is not None
    assert HookRecord.decode(failed.encode()) == failed
    assert HookRecord.decode(previous.encode()) == previous
    assert HookRecord.decode(None) is None


def test_the_agents_edge_state_keeps_the_hook_record_among_its_fingerprints() -> None:
    objects = {"web_default_apps_Deployment": "f:g:u"}
    record = HookRecord(revision="r2")
    kept = hook_record_among(objects, record)
    assert kept == {**objects, HOOKS_KEY: "r2"}
    assert hook_record_apart(kept) == (objects, record)
    assert hook_record_apart(objects) == (objects, None)
    assert hook_record_among(objects, None) == objects


# -- hook objects on the cluster ---------------------------------------------------------------


def health_fixture(name: str) -> Manifest:
    data: Manifest = yaml.safe_load((TESTDATA / "health" / name).read_text())
    return data


@pytest.mark.parametrize(
    ("fixture", "expected"),
    [
        ("job-complete.yaml", Outcome.SUCCEEDED),
        ("job-failed.yaml", Outcome.FAILED),
        ("job-running.yaml", Outcome.RUNNING),
        ("pod-succeeded.yaml", Outcome.SUCCEEDED),
        ("pod-failed.yaml", Outcome.FAILED),
    ],
)
def test_jobs_and_pods_are_awaited_until_they_finish(fixture: str, expected: Outcome) -> None:
    live = health_fixture(fixture)
    test = hook({**live, "metadata": {**live["metadata"], "annotations": {"helm.sh/hook": "test"}}})
    assert outcome(test, live)[0] is expected


def test_other_kinds_are_done_once_they_exist() -> None:
    config = next(h for h in split_hooks(HELM).hooks if h.ref.name == "shop-migrate-config")
    assert outcome(config, None)[0] is Outcome.RUNNING
    assert outcome(config, config.manifest)[0] is Outcome.SUCCEEDED


# -- what is refused ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("annotations", "says"),
    [
        ({"helm.sh/hook": "crd-install"}, "unknown hook crd-install in annotation helm.sh/hook"),
        ({"argocd.argoproj.io/hook": "Presync"}, "unknown hook Presync"),
        ({"appflow.dev/hook": ""}, "unknown hook"),
        (
            {"helm.sh/hook": "pre-install", "helm.sh/hook-delete-policy": "on-success"},
            "unknown hook delete policy 'on-success'",
        ),
        (
            {
                "argocd.argoproj.io/hook": "PreSync",
                "argocd.argoproj.io/hook-delete-policy": "Never",
            },
            "unknown hook delete policy 'Never'",
        ),
        (
            {"helm.sh/hook": "pre-install", "helm.sh/hook-weight": "first"},
            "annotation helm.sh/hook-weight must be an integer",
        ),
    ],
)
def test_bad_hook_annotations_name_object_and_annotation(
    annotations: dict[str, str], says: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        hook_of(job("migrate", annotations))
    text = str(caught.value)
    assert says in text
    assert "Job.batch/shop/migrate" in text
    assert caught.value.hint


def test_helm_hook_names_are_case_insensitive_as_in_helm() -> None:
    found = hook(job("x", {"helm.sh/hook": " Pre-Install , POST-UPGRADE"}))
    assert [t.name for t in found.triggers] == ["pre-install", "post-upgrade"]


def test_a_hook_run_says_what_it_created_and_what_became_of_it() -> None:
    named = HookRun(
        hook="pre-install hook Job.batch/shop/shop-seed",
        name="shop-seed",
        outcome=Outcome.SUCCEEDED,
        message="Job completed: 1 pod succeeded",
        deleted=True,
    )
    assert str(named) == (
        "pre-install hook Job.batch/shop/shop-seed: succeeded (Job completed: 1 pod succeeded);"
        " deleted by its delete policy"
    )
    generated = HookRun(
        hook="PreSync hook Job.batch/shop/schema-migrate-",
        name="schema-migrate-x7k2p",
        outcome=Outcome.FAILED,
    )
    assert str(generated) == (
        "PreSync hook Job.batch/shop/schema-migrate- (created as schema-migrate-x7k2p): failed"
    )


def test_a_sync_may_run_its_sync_phase_hooks_only() -> None:
    hooks = split_hooks(HELM).hooks
    assert names(due_in_sync(hooks, None)) == []
    assert sorted(names(due_in_sync(hooks, Operation.UPGRADE))) == [
        "shop-migrate",
        "shop-migrate-config",
        "shop-notify",
    ]
    assert names(due_in_sync(hooks, Operation.ROLLBACK)) == ["shop-restore"]
