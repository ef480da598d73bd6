"""`appflow controller` refuses what it cannot serve before it reaches a hub."""

from __future__ import annotations

from click.testing import CliRunner

from appflow.cli.main import cli


def test_an_empty_workspace_is_refused_naming_the_option() -> None:
    # A replica serves one workspace: an empty one once ran with work keys 'appflow/None/...'.
    result = CliRunner().invoke(cli, ["controller", "--workspace", ""])

    assert result.exit_code == 2
    assert "--workspace" in result.output
    assert "name the hub namespace of the apps (default: appflow)" in result.output
