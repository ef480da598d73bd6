"""The catalog served as a Helm repository: ``index.yaml`` plus packaged ``.tgz`` charts."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from pathlib import Path

from appflow.errors import AppflowError
from appflow.model.catalog import ChartVersion
from appflow.render import helm as render_helm
from appflow.sources import catalog as source
from appflow.sources.folders import folder_digest


class CatalogPublisher:
    """The local catalog packaged as a Helm repository: ``index.yaml`` plus ``.tgz`` charts.

    Charts are packaged with ``helm package`` into OUT_DIR, again only when their
    folder changed; ``refresh`` is cheap when nothing under the catalog did (one
    stat walk), so a server may call it on every index request.
    """

    def __init__(self, catalog_dir: Path, out_dir: Path) -> None:
        self.catalog_dir = catalog_dir
        self.out_dir = out_dir
        self._signature: str | None = None
        self._lock = asyncio.Lock()
        self.problems: list[str] = []

    def _stat_signature(self) -> str:
        h = hashlib.sha256()
        if self.catalog_dir.is_dir():
            for path in sorted(self.catalog_dir.rglob("*")):
                with contextlib.suppress(OSError):
                    st = path.stat()
                    h.update(f"{path}:{st.st_mtime_ns}:{st.st_size}\n".encode())
        return h.hexdigest()

    async def refresh(self) -> Path:
        """Package what changed and rewrite index.yaml if needed; the index path."""
        async with self._lock:
            signature = await asyncio.to_thread(self._stat_signature)
            index = self.out_dir / "index.yaml"
            if signature == self._signature and index.is_file():
                return index
            await self._publish()
            self._signature = signature
            return index

    async def _publish(self) -> None:
        import datetime

        import yaml

        from appflow.model.catalog import index_document

        self.out_dir.mkdir(parents=True, exist_ok=True)
        entries, problems = await asyncio.to_thread(source.load_catalog, self.catalog_dir)
        self.problems = [f"{p.folder.name}: {p.error}" for p in problems]
        charts: list[ChartVersion] = []
        keep: set[str] = {"index.yaml"}
        for entry in entries:
            if entry.chart.kind != "local" or entry.chart.path is None:
                continue
            folder = Path(entry.folder) / entry.chart.path
            meta = source.chart_meta(folder)
            digest = await asyncio.to_thread(folder_digest, folder)
            archive = self.out_dir / f"{meta['name']}-{meta['version']}.tgz"
            stamp = self.out_dir / f".{entry.name}.digest"
            if not archive.is_file() or not stamp.is_file() or stamp.read_text() != digest:
                try:
                    archive = await render_helm.helm_package(folder, self.out_dir)
                except AppflowError as err:
                    self.problems.append(f"{entry.name}: {err}")
                    continue
                stamp.write_text(digest)
            keep.update({archive.name, stamp.name})
            sha = hashlib.sha256(archive.read_bytes()).hexdigest()
            created = datetime.datetime.fromtimestamp(archive.stat().st_mtime, datetime.UTC)
            icon = entry.icon
            if icon and not icon.startswith(("http://", "https://")):
                icon = f"icons/{entry.name}/{icon}"
            charts.append(
                ChartVersion(
                    name=str(meta["name"]),
                    version=str(meta["version"]),
                    app_version=str(meta.get("appVersion") or ""),
                    description=entry.description,
                    keywords=entry.keywords,
                    icon=icon,
                    home=entry.home,
                    urls=(archive.name,),
                    digest=sha,
                    created=created.isoformat().replace("+00:00", "Z"),
                )
            )
        for stale in self.out_dir.iterdir():
            if stale.name not in keep and stale.is_file():
                stale.unlink()
        now = datetime.datetime.now(datetime.UTC).isoformat().replace("+00:00", "Z")
        document = index_document(charts, generated=now)
        tmp = self.out_dir / "index.yaml.tmp"
        tmp.write_text(yaml.safe_dump(document, sort_keys=False))
        tmp.replace(self.out_dir / "index.yaml")

    def icon(self, entry: str, name: str) -> Path | None:
        """The icon file of ENTRY, if NAME is it (no other file of the catalog is served)."""
        folder = self.catalog_dir / entry
        try:
            loaded = source.load_entry(folder)
        except AppflowError:
            return None
        if loaded.icon != name or name.startswith("/") or ".." in Path(name).parts:
            return None
        path = folder / name
        return path if path.is_file() else None
