"""The `appflow` entry point reads the handed-over forms of `sync` and `status` as their
click commands do, and leaves every other form (and every form without a daemon) to click."""

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
