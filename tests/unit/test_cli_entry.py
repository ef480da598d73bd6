"""The `appflow` entry point reads the handed-over forms of `sync` and `status` as their
click commands do, syncs a sync form no daemon answers itself, and leaves every other form
to click."""

from __future__ import annotations

from pathlib import Path

import click
import pytest

from appflow.cli import entry
from appflow.cli.apps import app_sync, status
from appflow.model.summary import SyncAsk


@pytest.mark.parametrize(("command", "form"), [(app_sync, entry._SYNC), (status, entry._STATUS)])
def test_the_parser_knows_every_option_of_the_click_command_and_its_default(
    command: click.Command, form: entry._Form
) -> None:
    known = {**form.flags, **form.values}
    for param in command.params:
        if isinstance(param, click.Argument):
            continue
        for spelling in param.opts:
            assert known.get(spelling) == param.name, spelling
        multiple = bool(getattr(param, "multiple", False))
        assert (param.name in form.multiple) == multiple, param.name
        if multiple:
            assert form.defaults[param.name or ""] == (), param.name
        elif not getattr(param, "is_flag", False):
            assert form.defaults[param.name or ""] == param.default, param.name


def test_sync_forms_read_as_click_reads_them() -> None:
    parsed = entry._parse(
        ["web", "-ojson", "--cluster", "a", "--cluster=b", "--wait", "db", "--timeout", "9"],
        entry._SYNC,
    )
    assert parsed is not None
    parsed.pop("output")
    assert SyncAsk(**parsed) == SyncAsk(
        names=("web", "db"), clusters=("a", "b"), wait=True, timeout=9.0
    )


@pytest.mark.parametrize(
    "args",
    [
        ["web", "--help"],
        ["web", "-h"],
        ["--", "web"],
        ["web", "--timeout"],
        ["web", "--timeout", "soon"],
        ["web", "--wait=yes"],
        ["web", "--prune"],
    ],
)
def test_anything_else_is_clicks(args: list[str]) -> None:
    assert entry._parse(args, entry._SYNC) is None


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["--debug", "sync", "web"],
        ["--hub", "k:c", "status"],
        ["app", "sync", "web"],
        ["sync", "web", "-o", "xml"],
        ["sync", "web", "--lock-timeout", "-1"],
        ["status", "web"],
        ["sync", "web"],  # no daemon in this home
        ["status"],
    ],
)
def test_no_handover_leaves_the_command_to_click(
    args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APPFLOW_HOME", str(tmp_path))
    monkeypatch.delenv("APPFLOW_HUB", raising=False)
    assert entry.handed_over(args) is None


def test_a_hub_in_the_environment_leaves_the_command_to_click(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APPFLOW_HOME", str(tmp_path))
    (tmp_path / "serve.sock").touch()  # no daemon behind it: never reached
    monkeypatch.setenv("APPFLOW_HUB", "/nowhere/kubeconfig")
    assert entry.handed_over(["status"]) is None


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["status"],
        ["--debug", "sync", "web"],
        ["app", "sync", "web"],
        ["sync", "web", "-o", "xml"],
        ["sync", "web", "--lock-timeout", "-1"],
        ["sync", "web", "--timeout", "soon"],
        ["sync", "--help"],
    ],
)
def test_what_the_entry_point_does_not_sync_itself_is_left_to_click(
    args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APPFLOW_HOME", str(tmp_path))
    monkeypatch.delenv("APPFLOW_HUB", raising=False)
    assert entry.synced_here(args) is None


def test_a_hub_leaves_a_sync_to_click(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APPFLOW_HOME", str(tmp_path))
    monkeypatch.setenv("APPFLOW_HUB", "/nowhere/kubeconfig")
    assert entry.synced_here(["sync", "--all"]) is None


def test_a_sync_without_a_daemon_is_run_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("APPFLOW_HOME", str(tmp_path))
    monkeypatch.delenv("APPFLOW_HUB", raising=False)
    # An empty home: the engine refuses the unknown app, said as click's command says it.
    assert entry.synced_here(["sync", "web"]) == 1
    assert capsys.readouterr().err.startswith("error:")
