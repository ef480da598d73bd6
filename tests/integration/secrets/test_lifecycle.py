"""Secrets over time: a hand edit reverted by self-heal, a rollback to an earlier value, a key
rotated as a normal commit and sync, a catalog install with encrypted values."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from appflow.engine.daemon import Daemon, DaemonOptions
from tests.integration.catalog.conftest import CATALOG
from tests.integration.engine.conftest import Fleet
from tests.integration.engine.support import (
    Space,
    cli,
    kubectl,
    live,
    one_line,
    register_local,
    snapshot,
    write_files,
)
from tests.integration.secrets.support import new_key, sops_encrypt
from tests.integration.secrets.test_push_sync import (
    SECRET_FIELDS,
    hold_group_key,
    leaks,
    new_secret,
    secret_value,
    secret_yaml,
    shown_texts,
)

pytestmark = pytest.mark.cluster


def _app(
    tmp_path: Path,
    space: Space,
    app: str,
    recipients: list[str],
    password: str,
    *,
    heal: bool = False,
) -> Path:
    return write_files(
        tmp_path / "app",
        {
            "appflow.yaml": (
                f"name: {app}\nnamespace: {space.namespace}\n"
                "decryption:\n  paths: ['*.sops.yaml']\n"
                "targets:\n  - clusterSelector: {matchLabels: {env: dev}}\n"
                f"syncPolicy:\n  selfHeal: {str(heal).lower()}\n"
            ),
            "db.sops.yaml": sops_encrypt(
                secret_yaml("db", space.namespace, password=password),
                recipients=recipients,
                encrypted_regex=SECRET_FIELDS,
            ),
        },
    )


async def test_self_heal_reverts_a_hand_edited_secret_and_records_no_value(
    fleet: Fleet, space: Space, tmp_path: Path
) -> None:
    ns, app = space.namespace, space.app("heal")
    key = hold_group_key(tmp_path)
    password, intruder = new_secret("pw"), new_secret("intruder")
    register_local(fleet, app, _app(tmp_path, space, app, [key.recipient], password, heal=True))
    daemon = Daemon(
        fleet.engine, options=DaemonOptions(workers=2, resync_seconds=3600, self_heal_delay=0.2)
    )
    task = asyncio.create_task(daemon.run())

    async def until(check: object, what: str, timeout: float = 90) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while not check():  # type: ignore[operator]
            if asyncio.get_running_loop().time() > deadline:
                pytest.fail(f"timed out waiting for {what}")
            await asyncio.sleep(0.2)

    def value() -> str:
        return secret_value(fleet, 0, "db", ns, "password")

    try:
        await until(
            lambda: any(d.state == "Ready" for d in fleet.store.list_deployments(app=app)),
            "the first sync by the daemon",
        )
        assert value() == password
        # The watch on Secrets opens once the first sync recorded the app's inventory.
        await until(
            lambda: any(e.kind == "sync" for e in fleet.store.list_events(app=app)),
            "the sync event",
        )
        await asyncio.sleep(1.5)
        # A hand edit through stringData: write-only, so only the data's digest can see it.
        kubectl(fleet.sandbox, 0, "-n", ns, "patch", "secret", "db", "--type", "merge",
                "-p", json.dumps({"stringData": {"password": intruder}}))  # fmt: skip
        await until(lambda: value() == password, "self-heal to restore the Secret")
    finally:
        daemon.stop()
        await asyncio.wait_for(task, timeout=60)
    # Reverted because the watch saw the Secret's digest move (the resync is an hour away).
    drift = [e for e in fleet.store.list_events(app=app) if e.kind == "drift"]
    assert drift, [f"{e.kind}: {e.message}" for e in fleet.store.list_events(app=app)]
    assert "self-healing" in drift[0].message
    # `app show` and `status` read the clusters (their own event loop): off this one.
    texts = await asyncio.to_thread(shown_texts, fleet, app)
    for secret in (password, intruder):
        assert leaks(fleet, secret, texts) == []


def test_rollback_restores_the_earlier_secret_value(
    fleet: Fleet, space: Space, tmp_path: Path
) -> None:
    ns, app = space.namespace, space.app("back")
    key = hold_group_key(tmp_path)
    first, second = new_secret("first"), new_secret("second")
    folder = _app(tmp_path, space, app, [key.recipient], first)
    register_local(fleet, app, folder)
    assert cli("sync", app, "--wait").exit_code == 0
    _app(tmp_path, space, app, [key.recipient], second)
    assert cli("sync", app, "--wait").exit_code == 0
    assert secret_value(fleet, 0, "db", ns, "password") == second

    # The store holds revision 1 redacted; the rollback renders its source again. A local
    # folder has no history: while it holds other values the rollback is refused, naming
    # why, and nothing changes.
    before = snapshot(fleet.sandbox, space)
    refused = cli("app", "rollback", app, "--to", "1")
    assert refused.exit_code == 1
    text = one_line(refused.output)
    assert "revision 1 holds redacted secret values" in text, refused.output
    assert first not in refused.output
    assert second not in refused.output
    assert snapshot(fleet.sandbox, space) == before

    # With the folder's values back (encrypted anew: other ciphertext, same values), it applies.
    _app(tmp_path, space, app, [key.recipient], first)
    result = cli("app", "rollback", app, "--to", "1")
    assert result.exit_code == 0, result.output
    assert secret_value(fleet, 0, "db", ns, "password") == first
    for value in (first, second):
        assert leaks(fleet, value, shown_texts(fleet, app)) == []


def test_a_key_is_rotated_by_a_commit_and_a_sync(
    fleet: Fleet, space: Space, tmp_path: Path
) -> None:
    ns, app = space.namespace, space.app("rotate")
    dev = fleet.sandbox.by_env("dev").name
    old_path, old = new_key(tmp_path, "old")
    assert (
        cli(
            "secret", "key", "add", "old", "--cluster", dev, "--age-key-file", str(old_path)
        ).exit_code
        == 0
    )
    password = new_secret("pw")
    folder = _app(tmp_path, space, app, [old.recipient], password)
    register_local(fleet, app, folder)
    assert cli("sync", app, "--wait").exit_code == 0

    new_path, new = new_key(tmp_path, "new")
    assert (
        cli(
            "secret", "key", "add", "new", "--cluster", dev, "--age-key-file", str(new_path)
        ).exit_code
        == 0
    )
    listed = cli("secret", "rotate", "--cluster", dev, "--retire", "old", str(folder), "-o", "json")
    assert listed.exit_code == 0, listed.output
    [row] = json.loads(listed.output)
    assert row["add"] == [new.recipient]
    assert row["remove"] == [old.recipient]
    assert row["rotated"] is False

    done = cli("secret", "rotate", "--cluster", dev, "--retire", "old", str(folder), "--write")
    assert done.exit_code == 0, done.output
    text = (folder / "db.sops.yaml").read_text()
    assert new.recipient in text
    assert old.recipient not in text
    assert password not in text
    assert cli("secret", "key", "remove", "old", "--cluster", dev).exit_code == 0

    # The values did not change: the sync decrypts with the new key and re-applies nothing.
    synced = cli("sync", app, "-o", "json")
    assert synced.exit_code == 0, synced.output
    [report] = json.loads(synced.output)
    assert report["clusters"][0]["counts"]["configured"] == 0
    assert secret_value(fleet, 0, "db", ns, "password") == password


def test_catalog_install_with_encrypted_values_keeps_only_ciphertext(
    fleet: Fleet, space: Space, tmp_path: Path
) -> None:
    name = space.app("mosquitto")
    dev = fleet.sandbox.by_env("dev").name
    key = hold_group_key(tmp_path)
    marker = new_secret("conf")
    values = tmp_path / "extra.sops.yaml"
    values.write_text(
        sops_encrypt(f"extraConfig: 'max_connections 77 # {marker}'\n", recipients=[key.recipient])
    )
    result = cli(
        "catalog", "install", "mosquitto", "--name", name, "-n", space.namespace,
        "--cluster", dev, "--values", str(values), "--catalog", str(CATALOG),
        "--wait", "--timeout", "120",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    config = live(fleet.sandbox, 0, "v1", "ConfigMap", f"{name}", space.namespace)
    assert marker in json.dumps(config["data"])
    record = fleet.store.get_app(name)
    assert record.catalog is not None
    assert record.catalog.encrypted_values[0].name == "extra.sops.yaml"
    assert leaks(fleet, marker, shown_texts(fleet, name)) == []

    # Values that break the schema are refused; the message quotes no decrypted value.
    bad = tmp_path / "bad.sops.yaml"
    bad.write_text(sops_encrypt(f"persistence: {{size: '{marker}'}}\n", recipients=[key.recipient]))
    refused = cli(
        "catalog", "upgrade", name, "--values", str(bad), "--catalog", str(CATALOG)
    )  # fmt: skip
    assert refused.exit_code == 1
    assert "persistence.size" in one_line(refused.output)
    assert marker not in refused.output
    assert cli("catalog", "uninstall", name).exit_code == 0


def test_rollback_of_a_git_app_renders_the_earlier_commit_again(
    fleet: Fleet, space: Space, tmp_path: Path
) -> None:
    from tests.integration.git.gitservers import GitHttpServer, Origin, serve_http

    ns, app = space.namespace, space.app("gitback")
    key = hold_group_key(tmp_path)
    first, second = new_secret("first"), new_secret("second")
    (tmp_path / "srv" / "org").mkdir(parents=True)
    origin = Origin(tmp_path / "srv" / "org" / "fleet.git")

    def files(password: str) -> dict[str, str]:
        folder = _app(tmp_path / password, space, app, [key.recipient], password)
        return {f"apps/db/{p.name}": p.read_text() for p in folder.iterdir()}

    origin.commit(files(first), message="first")
    with serve_http(GitHttpServer(origin.path.parent.parent)) as server:
        repo = f"fleet-{space.suffix}"
        assert (
            cli("repo", "add", repo, server.url("org/fleet.git"), "--path", "apps/db").exit_code
            == 0
        )
        assert cli("sync", app, "--wait").exit_code == 0
        origin.commit(files(second), message="second")
        assert cli("sync", app, "--wait").exit_code == 0
        assert secret_value(fleet, 0, "db", ns, "password") == second

        # Revision 1 is recorded redacted: its commit is checked out and decrypted again.
        result = cli("app", "rollback", app, "--to", "1")
        assert result.exit_code == 0, result.output
        assert secret_value(fleet, 0, "db", ns, "password") == first
    for value in (first, second):
        assert leaks(fleet, value, shown_texts(fleet, app)) == []
