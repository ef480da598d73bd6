"""SOPS-encrypted apps synced in push mode to the sandbox fleet.

Every test encrypts its inputs with the real sops CLI for keys it makes, lets appflow hold
them (`appflow secret key add`), syncs, and checks the Secret on the clusters. The values are
random per test, and the tests then search for them everywhere appflow keeps or shows
something: every row of the store (revisions decompressed), the render cache folder, the data
folder, events, history, `app show`, `app diff`, `--debug` logs and the HTTP API.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from appflow.model.records import SyncTrigger
from appflow.secrets import age
from appflow.server.app import create_app
from tests.integration.engine.conftest import Fleet
from tests.integration.engine.support import (
    Space,
    cli,
    configmap,
    exists,
    kubectl,
    live,
    one_line,
    register_local,
    snapshot,
    write_files,
)
from tests.integration.secrets.support import new_key, places_holding, sops_encrypt

pytestmark = pytest.mark.cluster

SECRET_FIELDS = "^(data|stringData)$"


def secret_yaml(name: str, namespace: str, **string_data: str) -> str:
    lines = "".join(f"  {k}: {json.dumps(v)}\n" for k, v in string_data.items())
    return (
        f"apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: {namespace}\n"
        f"type: Opaque\nstringData:\n{lines}"
    )


def secret_value(fleet: Fleet, index: int, name: str, namespace: str, key: str) -> str:
    found = live(fleet.sandbox, index, "v1", "Secret", name, namespace)
    return base64.b64decode(found["data"][key]).decode()


def hold_group_key(tmp_path: Path, name: str = "fleet") -> age.Identity:
    """A key held for a group of every sandbox cluster."""
    path, identity = new_key(tmp_path, name)
    assert cli("group", "add", "all", "-l", "appflow.dev/sandbox=true").exit_code == 0
    added = cli("secret", "key", "add", name, "--group", "all", "--age-key-file", str(path))
    assert added.exit_code == 0, added.output
    assert identity.recipient in added.output
    assert identity.secret not in added.output
    return identity


def new_secret(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(8)}"


def sync_with_debug_log(*args: str) -> subprocess.CompletedProcess[str]:
    """`appflow --debug ARGS` in a process of its own, as a user runs it (its log on stderr)."""
    return subprocess.run(
        [sys.executable, "-m", "appflow", "--debug", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "1000"},
        check=False,
    )


class _Triggers:
    def trigger_repo(self, repo: str, *, trigger: SyncTrigger, commit: str | None = None) -> None:
        raise AssertionError("the API was only read")

    def trigger_app(self, app: str, *, trigger: SyncTrigger, cluster: str | None = None) -> None:
        raise AssertionError("the API was only read")

    def queue_depth(self) -> int:
        return 0

    def ready(self) -> bool:
        return True


def api_answers(fleet: Fleet, app: str) -> dict[str, str]:
    client = TestClient(create_app(store=fleet.store, triggers=_Triggers(), require_token=False))
    answers = {}
    for path in (
        f"/api/v1/apps/{app}",
        f"/api/v1/apps/{app}/history",
        f"/api/v1/deployments?app={app}",
        f"/api/v1/events?app={app}",
        "/api/v1/status",
        "/api/v1/apps",
    ):
        response = client.get(path)
        assert response.status_code == 200, (path, response.text)
        answers[f"API {path}"] = response.text
    return answers


def shown_texts(fleet: Fleet, app: str) -> dict[str, str]:
    """What a user sees of APP: show, history, events (table and JSON), status, the API."""
    texts = {}
    for args in (
        ("app", "show", app, "-o", "json"),
        ("app", "history", app, "-o", "json"),
        ("events", "--app", app, "-o", "json"),
        ("events", "--app", app),
        ("status", "-o", "json"),
    ):
        result = cli(*args)
        assert result.exit_code == 0, result.output
        texts[" ".join(args)] = result.output
    texts.update(api_answers(fleet, app))
    return texts


def leaks(fleet: Fleet, value: str, texts: dict[str, str]) -> list[str]:
    home = fleet.home
    cache = Path(os.environ["APPFLOW_CACHE_DIR"])
    return places_holding(value, store=home / "appflow.db", folders=[home, cache], texts=texts)


# --- plain manifests ---------------------------------------------------------------------------


def test_encrypted_manifests_sync_and_their_values_appear_nowhere_else(
    fleet: Fleet, space: Space, tmp_path: Path
) -> None:
    ns = space.namespace
    app = space.app("vault")
    key = hold_group_key(tmp_path)
    password, token = new_secret("pw"), new_secret("tok")
    folder = write_files(
        tmp_path / "app",
        {
            "appflow.yaml": f"name: {app}\nnamespace: {ns}\ndecryption:\n  paths: [secrets/]\n",
            "config.yaml": [configmap("settings", ns, {"mode": "edge"})],
            # Partly encrypted (data and stringData only), and the whole file.
            "secrets/db.sops.yaml": sops_encrypt(
                secret_yaml("db", ns, password=password),
                recipients=[key.recipient],
                encrypted_regex=SECRET_FIELDS,
            ),
            "secrets/api.sops.yaml": sops_encrypt(
                secret_yaml("api", ns, token=token), recipients=[key.recipient]
            ),
        },
    )
    register_local(fleet, app, folder)

    synced = sync_with_debug_log("sync", app, "--wait", "--timeout", "120")
    assert synced.returncode == 0, synced.stdout + synced.stderr
    assert "DEBUG" in synced.stderr  # the log at its most verbose
    for index in range(len(fleet.cluster_names)):
        assert secret_value(fleet, index, "db", ns, "password") == password
        assert secret_value(fleet, index, "api", ns, "token") == token

    # A hand edit on one cluster, so that `app diff` has a Secret to show.
    kubectl(fleet.sandbox, 0, "-n", ns, "patch", "secret", "db", "--type", "merge",
            "-p", json.dumps({"stringData": {"password": new_secret("hand")}}))  # fmt: skip
    diff = cli("app", "diff", app)
    assert diff.exit_code == 1, diff.output
    assert f"--- live/Secret/{ns}/db" in diff.output
    assert "password: <redacted digest:" in diff.output

    texts = {"sync output": synced.stdout, "--debug log": synced.stderr, "app diff": diff.output}
    texts |= shown_texts(fleet, app)
    for value in (password, token):
        assert leaks(fleet, value, texts) == []

    # `app show` lists the Secrets with a digest per value: the same everywhere, no value.
    show = json.loads(texts[f"app show {app} -o json"])
    shown = {(s["cluster"], s["object"]): s["data"] for s in show["secrets"]}
    digests = {shown[(c, f"Secret/{ns}/db")]["password"] for c in fleet.cluster_names}
    assert len(digests) == 1
    assert next(iter(digests)).startswith("<redacted digest:")


# --- keys ----------------------------------------------------------------------------------------


def test_a_cluster_without_the_key_blocks_the_revision_on_every_cluster(
    fleet: Fleet, space: Space, tmp_path: Path
) -> None:
    ns = space.namespace
    app = space.app("nokey")
    first, second, third = fleet.cluster_names
    recipients = []
    for cluster in (first, second):
        path, identity = new_key(tmp_path, cluster)
        result = cli(
            "secret", "key", "add", "site", "--cluster", cluster, "--age-key-file", str(path)
        )
        assert result.exit_code == 0, result.output
        recipients.append(identity.recipient)
    password = new_secret("pw")
    folder = write_files(
        tmp_path / "app",
        {
            "appflow.yaml": f"name: {app}\nnamespace: {ns}\ndecryption:\n  paths: ['*.sops.yaml']\n",
            "config.yaml": [configmap("settings", ns, {"mode": "edge"})],
            "db.sops.yaml": sops_encrypt(
                secret_yaml("db", ns, password=password),
                recipients=recipients,
                encrypted_regex=SECRET_FIELDS,
            ),
        },
    )
    register_local(fleet, app, folder)
    before = snapshot(fleet.sandbox, space)

    result = cli("sync", app)
    assert result.exit_code == 1
    text = one_line(result.output)
    assert f"app {app}, cluster {third}, db.sops.yaml: cannot decrypt" in text, result.output
    assert f"cluster {third} holds no age identity for this file" in text
    for recipient in recipients:
        assert recipient in text
    assert f"cluster {first}," not in text
    assert password not in result.output
    # The clusters that could decrypt were not touched either.
    assert snapshot(fleet.sandbox, space) == before
    assert not exists(fleet.sandbox, 0, "v1", "ConfigMap", "settings", ns)

    # `appflow secret encrypt --cluster` encrypts for exactly that cluster's keys.
    plain = tmp_path / "plain.yaml"
    plain.write_text(secret_yaml("db", ns, password=password))
    encrypted = cli("secret", "encrypt", str(plain), "--cluster", first)
    assert encrypted.exit_code == 0, encrypted.output
    assert recipients[0] in encrypted.output
    assert recipients[1] not in encrypted.output
    assert "encrypted_regex: ^(data|stringData)$" in encrypted.output
    assert password not in encrypted.output


@pytest.mark.parametrize(
    ("problem", "expected"),
    [
        ("tampered", "does not match its MAC"),
        ("not-marked", "SOPS-encrypted but not marked for decryption"),
        ("no-decryption", "SOPS-encrypted but not marked for decryption"),
        ("plain-but-marked", "marked for decryption but is not SOPS-encrypted"),
        ("malformed", "malformed SOPS file"),
    ],
)
def test_bad_input_is_refused_before_any_cluster_is_touched(
    fleet: Fleet, space: Space, tmp_path: Path, problem: str, expected: str
) -> None:
    ns = space.namespace
    app = space.app("bad")
    key = hold_group_key(tmp_path)
    password = new_secret("pw")
    good = sops_encrypt(
        secret_yaml("db", ns, password=password),
        recipients=[key.recipient],
        encrypted_regex=SECRET_FIELDS,
    )
    files: dict[str, Any] = {
        "appflow.yaml": f"name: {app}\nnamespace: {ns}\ndecryption:\n  paths: [secrets/]\n",
        "config.yaml": [configmap("settings", ns, {"mode": "edge"})],
    }
    if problem == "tampered":
        files["secrets/db.yaml"] = good.replace("name: db", "name: db2")
    elif problem == "not-marked":
        files["db.sops.yaml"] = good
    elif problem == "no-decryption":
        # An app that marks nothing: its render is checked for ciphertext, and the file named.
        files["appflow.yaml"] = f"name: {app}\nnamespace: {ns}\n"
        files["db.sops.yaml"] = good
    elif problem == "plain-but-marked":
        files["secrets/db.yaml"] = secret_yaml("db", ns, password=password)
    else:
        files["secrets/db.yaml"] = good[: good.index("mac:")]
    register_local(fleet, app, write_files(tmp_path / "app", files))
    before = snapshot(fleet.sandbox, space)

    result = cli("sync", app)
    assert result.exit_code == 1
    text = one_line(result.output)
    assert expected in text, result.output
    named = "db.sops.yaml" if problem in ("not-marked", "no-decryption") else "secrets/db.yaml"
    assert f"{named}:" in text
    assert password not in result.output
    assert snapshot(fleet.sandbox, space) == before


# --- Helm --------------------------------------------------------------------------------------

CHART_SCHEMA = {
    "type": "object",
    "properties": {
        "auth": {
            "type": "object",
            "properties": {
                "password": {"type": "string", "x-sensitive": True},
                "apiKey": {"type": "string", "writeOnly": True},
            },
        }
    },
}
SECRET_TEMPLATE = """\
{{- if lt (len .Values.auth.password) 12 }}
{{- fail (printf "auth.password %s is shorter than 12 characters" .Values.auth.password) }}
{{- end }}
apiVersion: v1
kind: Secret
metadata:
  name: {{ .Release.Name }}-auth
type: Opaque
data:
  password: {{ .Values.auth.password | b64enc }}
  api-key: {{ .Values.auth.apiKey | b64enc }}
"""


def test_helm_values_encrypted_or_marked_sensitive_render_but_are_never_kept(
    fleet: Fleet, space: Space, tmp_path: Path
) -> None:
    ns = space.namespace
    app = space.app("chart")
    key = hold_group_key(tmp_path)
    password, api_key = new_secret("chart-pw"), new_secret("api-key")
    folder = write_files(
        tmp_path / "chart",
        {
            "appflow.yaml": (
                f"name: {app}\nnamespace: {ns}\nhelm:\n  valuesFiles: [secret-values.yaml]\n"
                "decryption:\n  paths: [secret-values.yaml]\n"
                "targets:\n  - clusterSelector: {matchLabels: {env: dev}}\n"
            ),
            "Chart.yaml": "apiVersion: v2\nname: guarded\nversion: 0.1.0\n",
            # Not encrypted, but the schema marks it sensitive (writeOnly).
            "values.yaml": f"auth:\n  apiKey: {api_key}\n",
            "values.schema.json": json.dumps(CHART_SCHEMA),
            "templates/secret.yaml": SECRET_TEMPLATE,
            "secret-values.yaml": sops_encrypt(
                f"auth:\n  password: {password}\n", recipients=[key.recipient]
            ),
        },
    )
    register_local(fleet, app, folder)
    synced = sync_with_debug_log("sync", app, "--wait", "--timeout", "120")
    assert synced.returncode == 0, synced.stdout + synced.stderr
    assert secret_value(fleet, 0, f"{app}-auth", ns, "password") == password
    assert secret_value(fleet, 0, f"{app}-auth", ns, "api-key") == api_key
    before = snapshot(fleet.sandbox, space)

    # A helm template error that quotes the value: the message shows its digest only.
    short = new_secret("x")[:10]
    write_files(
        folder,
        {
            "secret-values.yaml": sops_encrypt(
                f"auth:\n  password: {short}\n", recipients=[key.recipient]
            )
        },
    )
    failed = sync_with_debug_log("sync", app)
    assert failed.returncode == 1
    text = one_line(failed.stdout + failed.stderr)
    assert "is shorter than 12 characters" in text, text
    assert "auth.password <redacted digest:" in text
    assert snapshot(fleet.sandbox, space) == before

    texts = {
        "sync": synced.stdout,
        "--debug log": synced.stderr,
        "failed sync": failed.stdout,
        "failed --debug log": failed.stderr,
    }
    texts |= shown_texts(fleet, app)
    for value in (password, api_key, short):
        assert leaks(fleet, value, texts) == []


# --- kustomize ---------------------------------------------------------------------------------


def test_kustomize_decrypts_after_the_build_resources_and_generated_secrets(
    fleet: Fleet, space: Space, tmp_path: Path
) -> None:
    ns = space.namespace
    app = space.app("kust")
    key = hold_group_key(tmp_path)
    password, user_password = new_secret("k-pw"), new_secret("env-pw")
    folder = write_files(
        tmp_path / "kust",
        {
            "appflow.yaml": (
                f"name: {app}\nnamespace: {ns}\ndecryption:\n  paths: ['*.sops.*']\n"
                "targets:\n  - clusterSelector: {matchLabels: {env: dev}}\n"
            ),
            "kustomization.yaml": (
                f"namespace: {ns}\n"
                "labels:\n  - pairs: {tier: edge}\n"
                "resources: [db.sops.yaml, settings.yaml]\n"
                "secretGenerator:\n  - name: creds\n    envs: [creds.sops.env]\n"
            ),
            "settings.yaml": [configmap("settings", ns, {"mode": "edge"})],
            "db.sops.yaml": sops_encrypt(
                secret_yaml("db", ns, password=password),
                recipients=[key.recipient],
                encrypted_regex=SECRET_FIELDS,
            ),
            "creds.sops.env": sops_encrypt(
                f"USER=sensor-gw\nPASSWORD={user_password}\n",
                recipients=[key.recipient],
                fmt="dotenv",
            ),
        },
    )
    register_local(fleet, app, folder)
    synced = cli("sync", app, "--wait", "--timeout", "120")
    assert synced.exit_code == 0, synced.output
    db = live(fleet.sandbox, 0, "v1", "Secret", "db", ns)
    assert base64.b64decode(db["data"]["password"]).decode() == password
    assert db["metadata"]["labels"]["tier"] == "edge"  # kustomize's transforms kept
    kube = fleet.sandbox.kube(0)
    try:
        generated = [
            s for s in kube.list_sync("v1", "Secret", namespace=ns)
            if s["metadata"]["name"].startswith("creds-")
        ]  # fmt: skip
    finally:
        kube.close()
    assert len(generated) == 1
    data = {k: base64.b64decode(v).decode() for k, v in generated[0]["data"].items()}
    assert data == {"USER": "sensor-gw", "PASSWORD": user_password}
    for value in (password, user_password):
        assert leaks(fleet, value, shown_texts(fleet, app)) == []
