"""`appflow token` and `appflow repo set-webhook-secret`, against the running server."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from appflow.cli.main import cli
from tests.integration.server.conftest import Served
from tests.integration.server.support import github_push


def test_token_create_list_revoke(served: Served) -> None:
    runner = CliRunner()
    created = runner.invoke(cli, ["token", "create", "ci"])
    assert created.exit_code == 0, created.output
    token = created.stdout.strip()
    assert token.startswith("af_")
    assert len(token) == 35
    assert "not shown again" in created.stderr

    with served.client(token=token) as client:
        assert client.get("/api/v1/apps").status_code == 200

    listed = runner.invoke(cli, ["token", "list", "-o", "json"])
    assert listed.exit_code == 0, listed.output
    assert token not in listed.output
    rows = {t["name"]: t for t in json.loads(listed.stdout)}
    assert set(rows) == {"tests", "ci"}
    assert rows["ci"]["lastUsed"] is not None

    duplicate = runner.invoke(cli, ["token", "create", "ci"])
    assert duplicate.exit_code == 1
    assert "a token named 'ci' exists" in duplicate.stderr

    revoked = runner.invoke(cli, ["token", "revoke", "ci"])
    assert revoked.exit_code == 0, revoked.output
    with served.client(token=token) as client:
        assert client.get("/api/v1/apps").status_code == 401
    again = runner.invoke(cli, ["token", "revoke", "ci"])
    assert again.exit_code == 1
    assert "no token named 'ci'" in again.stderr


def test_set_webhook_secret_from_a_file_then_from_the_environment(
    served: Served, tmp_path: Path
) -> None:
    runner = CliRunner()
    secret = tmp_path / "unguarded-secret"
    secret.write_text("fresh-secret\n")
    secret.chmod(0o600)
    result = runner.invoke(
        cli, ["repo", "set-webhook-secret", "unguarded", "--secret-file", str(secret)]
    )
    assert result.exit_code == 0, result.output
    assert served.store.get_repo("unguarded").webhook_secret_ref == f"file:{secret}"

    headers, body = github_push("https://github.com/acme/unguarded", secret="fresh-secret")
    with served.client() as client:
        response = client.post("/hooks/github", headers=headers, content=body)
    assert response.status_code == 202, response.text

    result = runner.invoke(
        cli, ["repo", "set-webhook-secret", "unguarded", "--secret-env", "UNGUARDED_HOOK"]
    )
    assert result.exit_code == 0, result.output
    assert "UNGUARDED_HOOK is not set here" in result.stderr
    assert served.store.get_repo("unguarded").webhook_secret_ref == "env:UNGUARDED_HOOK"

    result = runner.invoke(cli, ["repo", "set-webhook-secret", "unguarded", "--clear"])
    assert result.exit_code == 0, result.output
    assert served.store.get_repo("unguarded").webhook_secret_ref is None


def test_set_webhook_secret_refuses_bad_input(served: Served, tmp_path: Path) -> None:
    runner = CliRunner()
    empty = tmp_path / "empty"
    empty.write_text("\n")
    for args, message in (
        (["--secret-file", str(empty)], "the secret file is empty"),
        (["--secret-file", str(tmp_path / "missing")], "cannot read the secret file"),
        ([], "give exactly one of"),
        (["--secret-env", "A", "--clear"], "give exactly one of"),
        (["--secret-env", "NOT-A-NAME"], "is not an environment variable name"),
    ):
        result = runner.invoke(cli, ["repo", "set-webhook-secret", "retail", *args])
        assert result.exit_code != 0, args
        assert message in result.output, result.output
    missing_repo = runner.invoke(
        cli, ["repo", "set-webhook-secret", "nothing", "--secret-env", "X"]
    )
    assert missing_repo.exit_code == 1
    assert "no repo named 'nothing'" in missing_repo.output
    assert served.store.get_repo("retail").webhook_secret_ref == f"file:{served.secret_file}"


def test_a_read_only_token_reads_the_api_and_changes_nothing(served: Served) -> None:
    runner = CliRunner()
    created = runner.invoke(cli, ["token", "create", "wall", "--read-only"])
    assert created.exit_code == 0, created.output
    token = created.stdout.strip()
    listed = runner.invoke(cli, ["token", "list", "-o", "json"])
    scopes = {t["name"]: t["scope"] for t in json.loads(listed.stdout)}
    assert scopes == {"tests": "admin", "wall": "read-only"}
    with served.client(token=token) as client:
        assert client.get("/api/v1/status").status_code == 200
        refused = client.post("/api/v1/apps/web/sync")
        assert refused.status_code == 403
        assert refused.json()["error"] == "token wall is read-only: it may not sync apps"
    assert served.triggers.apps == []
