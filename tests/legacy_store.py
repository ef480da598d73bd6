"""A store written by an earlier appflow, and the files it was written from.

``tests/unit/testdata/store-v3.sql`` is a SQL dump of a store that appflow's schema
version 3 wrote (the main branch before typed records), by running that version's own
engine with ``tests/unit/testdata/make_store_v3.py``. Paths and names in it are
placeholders, so that a test can load it into a folder of its own, point it at the
sandbox and at app folders written by :func:`write_sources`, and sync from it:

    @HOME@   the appflow data folder (cluster kubeconfigs are in @HOME@/clusters)
    @CACHE@  the appflow cache folder
    @SRC@    the folder holding the apps' sources (see write_sources)
    @SFX@    a suffix in every app name and namespace (tests share the sandbox)

Only pyyaml and git are used here: the generator imports this file while running the
old appflow.
"""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path

import yaml

DUMP = Path(__file__).parent / "unit" / "testdata" / "store-v3.sql"
APPS = ("plain", "rel", "cat", "git")
DUMP_V9 = Path(__file__).parent / "unit" / "testdata" / "store-v9.sql"
"""Schema version 9 (main before hook state had a field of its own), written by
``tests/unit/testdata/make_store_v9.py``: the apps of :func:`write_hook_sources`."""
HOOK_APPS = ("hooked", "done")


def app_name(kind: str, suffix: str) -> str:
    return f"legacy-{kind}-{suffix}"


def namespace(suffix: str) -> str:
    return f"legacy-{suffix}"


def _configmap(name: str, ns: str, data: dict[str, str]) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": ns},
        "data": data,
    }


def write_sources(src: Path, suffix: str, *, generation: int = 1) -> None:
    """The apps' sources under SRC: a plain app with a rollout, a release-mode Helm app, a
    one-entry catalog and a git repository (served as file://SRC/gitrepo)."""
    ns = namespace(suffix)
    plain = src / "plain"
    plain.mkdir(parents=True, exist_ok=True)
    (plain / "appflow.yaml").write_text(
        yaml.safe_dump(
            {
                "name": app_name("plain", suffix),
                "namespace": ns,
                "syncPolicy": {"selfHeal": True},
                "rollout": {"maxUnavailable": 1, "autoPartitionSize": 1},
            }
        )
    )
    (plain / "config.yaml").write_text(
        yaml.safe_dump(_configmap("settings", ns, {"generation": str(generation)}))
    )

    rel = src / "rel"
    (rel / "templates").mkdir(parents=True, exist_ok=True)
    (rel / "Chart.yaml").write_text(
        yaml.safe_dump({"apiVersion": "v2", "name": "rel", "version": "0.1.0"})
    )
    (rel / "values.yaml").write_text(yaml.safe_dump({"generation": generation}))
    (rel / "templates" / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: rel-settings\n"
        'data:\n  generation: "{{ .Values.generation }}"\n'
    )
    (rel / "appflow.yaml").write_text(
        yaml.safe_dump(
            {
                "name": app_name("rel", suffix),
                "namespace": ns,
                "helm": {"chart": ".", "mode": "release"},
                "syncPolicy": {"auto": False},
            }
        )
    )

    entry = src / "catalog" / "tiny"
    (entry / "chart" / "templates").mkdir(parents=True, exist_ok=True)
    (entry / "app.yaml").write_text(
        yaml.safe_dump(
            {
                "name": "tiny",
                "displayName": "Tiny",
                "description": "One ConfigMap, for store migration tests.",
                "category": "other",
                "chart": {"path": "chart"},
                "version": "^1.0.0",
            }
        )
    )
    (entry / "chart" / "Chart.yaml").write_text(
        yaml.safe_dump({"apiVersion": "v2", "name": "tiny", "version": "1.0.0"})
    )
    (entry / "chart" / "values.yaml").write_text(yaml.safe_dump({"greeting": "hello"}))
    (entry / "chart" / "templates" / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: tiny\n"
        "data:\n  greeting: {{ .Values.greeting | quote }}\n"
    )

    repo = src / "gitrepo"
    if not (repo / ".git").is_dir():
        repo.mkdir(parents=True, exist_ok=True)
        _git(repo, "init", "-q", "-b", "main")
    (repo / "web").mkdir(exist_ok=True)
    (repo / "web" / "config.yaml").write_text(
        yaml.safe_dump(_configmap("git-settings", ns, {"generation": str(generation)}))
    )
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "--allow-empty", "-m", f"generation {generation}")


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        [
            "git",
            "-c",
            "user.name=appflow tests",
            "-c",
            "user.email=tests@appflow.dev",
            "-C",
            str(repo),
            *args,
        ],
        check=True,
        capture_output=True,
    )


def write_hook_sources(src: Path, suffix: str, *, generation: int = 1) -> None:
    """Two apps of one Helm chart (template mode) with Helm's hooks: a pre-install Job
    (``<app>-first``), a pre-upgrade Job (``<app>-upgrade``) and a post-install Job
    (``<app>-welcome``). In generation 1 app "hooked"'s welcome fails (its install failed,
    after its objects were applied); app "done"'s succeeds. Generation 2 changes a value
    and lets every hook succeed."""
    ns = namespace(suffix)
    for kind in HOOK_APPS:
        chart = src / kind
        (chart / "templates").mkdir(parents=True, exist_ok=True)
        (chart / "Chart.yaml").write_text(
            yaml.safe_dump({"apiVersion": "v2", "name": kind, "version": "0.1.0"})
        )
        fails = kind == "hooked" and generation == 1
        (chart / "values.yaml").write_text(
            yaml.safe_dump({"generation": generation, "welcomeExit": "1" if fails else "0"})
        )
        (chart / "templates" / "cm.yaml").write_text(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-settings\n"
            'data:\n  generation: "{{ .Values.generation }}"\n'
        )
        for job, hook, code in (
            ("first", "pre-install", '"0"'),
            ("upgrade", "pre-upgrade", '"0"'),
            ("welcome", "post-install", "{{ .Values.welcomeExit | quote }}"),
        ):
            (chart / "templates" / f"{job}.yaml").write_text(
                "apiVersion: batch/v1\nkind: Job\nmetadata:\n"
                f"  name: {{{{ .Release.Name }}}}-{job}\n"
                f'  annotations:\n    "helm.sh/hook": {hook}\n'
                "spec:\n  backoffLimit: 0\n  template:\n    metadata:\n      annotations:\n"
                f"        sandbox.appflow.dev/exit-code: {code}\n"
                "    spec:\n      restartPolicy: Never\n      containers:\n"
                f"        - name: {job}\n          image: registry.example/{job}:1\n"
            )
        (chart / "appflow.yaml").write_text(
            yaml.safe_dump(
                {
                    "name": hook_app_name(kind, suffix),
                    "namespace": ns,
                    "helm": {"chart": "."},
                    "syncPolicy": {"auto": False},
                }
            )
        )


def hook_app_name(kind: str, suffix: str) -> str:
    return f"legacy9-{kind}-{suffix}"


def load_dump(
    db: Path, *, home: Path, cache: Path, src: Path, suffix: str, dump: Path = DUMP
) -> None:
    """Create the store file DB from DUMP, placeholders filled in."""
    text = dump.read_text()
    for placeholder, value in (
        ("@HOME@", str(home)),
        ("@CACHE@", str(cache)),
        ("@SRC@", str(src)),
        ("@SFX@", suffix),
    ):
        text = text.replace(placeholder, value)
    db.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(db)
    try:
        conn.executescript(text)
    finally:
        conn.close()
