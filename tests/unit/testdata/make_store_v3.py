"""Write tests/unit/testdata/store-v3.sql with appflow schema version 3's own engine.

Run it with the appflow that wrote schema version 3 (main before typed records), on a
running sandbox whose clusters are test-1..3 (the test suite's names):

    git worktree add --detach /tmp/oldmain f042237
    PYTHONPATH=/tmp/oldmain /tmp/oldmain/.venv/bin/python \\
        tests/unit/testdata/make_store_v3.py /work/sandbox-shared

It syncs the apps of tests/legacy_store.py twice (two revisions each, two Helm release
revisions), installs a catalog entry, pauses a rollout, dumps the store as SQL with
placeholders for paths and names, and then removes what it applied from the clusters.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import sqlite3
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

HERE = Path(__file__).resolve().parent
SUFFIX = "qzx7k"
"""Replaced by @SFX@ in the dump: letters no digest or path here contains."""


def _legacy_store():  # type: ignore[no-untyped-def]
    # By path: the `tests` package on sys.path may be the old checkout's.
    spec = importlib.util.spec_from_file_location(
        "legacy_store", HERE.parent.parent / "legacy_store.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def _fill(sandbox_root: Path, src: Path, legacy) -> Path:  # type: ignore[no-untyped-def]
    from appflow import sandbox as sb
    from appflow.engine import catalog
    from appflow.engine.clusters import add_cluster
    from appflow.engine.engine import Engine
    from appflow.model.catalog import TargetChoice
    from appflow.model.records import AppRecord, RepoRecord
    from appflow.store import open_store

    store = open_store()
    # Only read the sandbox: it may be shared, and is never started or stopped from here.
    for info in sb.list_sandbox(root=sandbox_root):
        assert info.status == "Running", info
        await add_cluster(
            store, name=info.name, kind="imported", kubeconfig=info.kubeconfig, labels=info.labels
        )
    names = {kind: legacy.app_name(kind, SUFFIX) for kind in legacy.APPS}
    for kind in ("plain", "rel"):
        store.put_app(
            AppRecord(name=names[kind], source="local", local_path=str(src / kind), path="")
        )
    store.put_repo(
        RepoRecord(name=names["git"], url=f"file://{src / 'gitrepo'}", ref="main", paths=("web",))
    )
    store.put_app(AppRecord(name=names["git"], source="git", repo=names["git"], path="web"))
    engine = Engine(store)
    try:
        for generation in (1, 2):
            legacy.write_sources(src, SUFFIX, generation=generation)
            for kind in ("plain", "rel", "git"):
                report = await engine.sync(names[kind])
                assert report.ok, report
        request = catalog.InstallRequest(
            entry="tiny",
            name=names["cat"],
            targets=TargetChoice(all=True),
            catalog_dir=src / "catalog",
        )
        _, report = await catalog.install(engine, request)
        assert report.ok, report
        rollout = store.get_rollout(names["plain"])
        store.put_rollout(replace(rollout, state="Paused", message="paused by user"))
        path = store.path
        dump = _dump(path)
        for name in names.values():
            await engine.uninstall(name)
        # Namespaces appflow created are kept on prune: remove them by hand.
        for cluster in store.list_clusters():
            for namespace in (legacy.namespace(SUFFIX), names["cat"]):
                await engine.kube(cluster).delete("v1", "Namespace", namespace)
        return dump
    finally:
        engine.close()
        store.close()


def _dump(path: Path) -> Path:
    conn = sqlite3.connect(path)
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    app_id = conn.execute("PRAGMA application_id").fetchone()[0]
    lines = [f"PRAGMA application_id = {app_id};", f"PRAGMA user_version = {version};"]
    lines += list(conn.iterdump())
    conn.close()
    out = path.with_suffix(".sql")
    out.write_text("\n".join(lines) + "\n")
    return out


def main() -> None:
    sandbox_root = Path(sys.argv[1])
    legacy = _legacy_store()
    with tempfile.TemporaryDirectory(prefix="legacy-store-") as tmp:
        root = Path(tmp)
        home, cache, src = root / "home", root / "cache", root / "src"
        os.environ["APPFLOW_HOME"] = str(home)
        os.environ["APPFLOW_CACHE_DIR"] = str(cache)
        dump = asyncio.run(_fill(sandbox_root, src, legacy))
        text = dump.read_text()
        for value, placeholder in ((home, "@HOME@"), (cache, "@CACHE@"), (src, "@SRC@")):
            text = text.replace(str(value), placeholder)
        text = text.replace(SUFFIX, "@SFX@")
        assert tmp not in text, "a temporary path was left in the dump"
        legacy.DUMP.write_text(text)
    print(f"wrote {legacy.DUMP}")


if __name__ == "__main__":
    main()
