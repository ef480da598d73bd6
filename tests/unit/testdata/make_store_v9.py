"""Write tests/unit/testdata/store-v9.sql with appflow schema version 9's own engine.

Run it with the appflow that wrote schema version 9 (main before hook state had a field
of its own, where a Deployment's hook state was a fingerprint under "appflow.dev/hooks"),
on a running sandbox whose clusters are test-1..3 (the test suite's names):

    git worktree add --detach /tmp/oldmain d30a014
    PYTHONPATH=/tmp/oldmain .venv/bin/python tests/unit/testdata/make_store_v9.py \\
        /work/sandbox-shared

It syncs the two apps of tests/legacy_store.py's write_hook_sources once (one install
that failed in its post-install hook, one that succeeded), dumps the store as SQL with
placeholders for paths and names, and then removes what it applied from the clusters.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SUFFIX = "qzx7k"
"""Replaced by @SFX@ in the dump: letters no digest or path here contains."""


def _module(name: str, path: Path):  # type: ignore[no-untyped-def]
    # By path: the `tests` package on sys.path may be the old checkout's.
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def _fill(sandbox_root: Path, src: Path, legacy, dump) -> Path:  # type: ignore[no-untyped-def]
    from appflow import sandbox as sb
    from appflow.engine.clusters import add_cluster
    from appflow.engine.engine import Engine
    from appflow.model.records import AppRecord
    from appflow.store import open_store

    store = open_store()
    # Only read the sandbox: it may be shared, and is never started or stopped from here.
    for info in sb.list_sandbox(root=sandbox_root):
        assert info.status == "Running", info
        await add_cluster(
            store, name=info.name, kind="imported", kubeconfig=info.kubeconfig, labels=info.labels
        )
    names = {kind: legacy.hook_app_name(kind, SUFFIX) for kind in legacy.HOOK_APPS}
    legacy.write_hook_sources(src, SUFFIX, generation=1)
    for kind, name in names.items():
        store.put_app(AppRecord(name=name, source="local", local_path=str(src / kind), path=""))
    engine = Engine(store)
    try:
        failed = await engine.sync(names["hooked"])
        assert not failed.ok, "the post-install hook of 'hooked' was to fail"
        done = await engine.sync(names["done"])
        assert done.ok, done
        for d in store.list_deployments():
            assert "appflow.dev/hooks" in d.applied, d
        path = dump(store.path)
        for name in names.values():
            await engine.uninstall(name)
        # Namespaces appflow created are kept on prune: remove them by hand.
        for cluster in store.list_clusters():
            await engine.kube(cluster).delete("v1", "Namespace", legacy.namespace(SUFFIX))
        return path
    finally:
        engine.close()
        store.close()


def main() -> None:
    sandbox_root = Path(sys.argv[1])
    legacy = _module("legacy_store", HERE.parent.parent / "legacy_store.py")
    v3 = _module("make_store_v3", HERE / "make_store_v3.py")
    with tempfile.TemporaryDirectory(prefix="legacy-store-") as tmp:
        root = Path(tmp)
        home, cache, src = root / "home", root / "cache", root / "src"
        os.environ["APPFLOW_HOME"] = str(home)
        os.environ["APPFLOW_CACHE_DIR"] = str(cache)
        dump = asyncio.run(_fill(sandbox_root, src, legacy, v3._dump))
        text = dump.read_text()
        for value, placeholder in ((home, "@HOME@"), (cache, "@CACHE@"), (src, "@SRC@")):
            text = text.replace(str(value), placeholder)
        text = text.replace(SUFFIX, "@SFX@")
        assert tmp not in text, "a temporary path was left in the dump"
        legacy.DUMP_V9.write_text(text)
    print(f"wrote {legacy.DUMP_V9}")


if __name__ == "__main__":
    main()
