"""The catalog served as a Helm repository: ``index.yaml``, packaged charts, icons.

``catalog_router`` is a FastAPI router (the daemon mounts it at ``/catalog``);
``create_catalog_app`` is the stand-alone app of ``appflow catalog serve``. The
index is refreshed on each request when something under ``catalog/`` changed,
so `helm repo update` sees edits without a restart. Chart URLs in the index are
relative, as helm allows, so the same files work under any prefix.
"""

from __future__ import annotations

import re

from fastapi import APIRouter, FastAPI, HTTPException
from fastapi.responses import FileResponse

from appflow.engine.catalog.publisher import CatalogPublisher

_ARCHIVE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*\.tgz$")


def catalog_router(publisher: CatalogPublisher) -> APIRouter:
    router = APIRouter()

    @router.get("/index.yaml")
    async def index() -> FileResponse:
        path = await publisher.refresh()
        return FileResponse(path, media_type="application/x-yaml")

    @router.get("/icons/{entry}/{name}")
    async def icon(entry: str, name: str) -> FileResponse:
        path = publisher.icon(entry, name)
        if path is None:
            raise HTTPException(status_code=404, detail="no such icon")
        return FileResponse(path)

    @router.get("/{name}")
    async def archive(name: str) -> FileResponse:
        if not _ARCHIVE.match(name):
            raise HTTPException(status_code=404, detail="not a chart archive")
        await publisher.refresh()
        path = publisher.out_dir / name
        if not path.is_file():
            raise HTTPException(status_code=404, detail=f"no chart archive {name}")
        return FileResponse(path, media_type="application/gzip")

    return router


def create_catalog_app(publisher: CatalogPublisher) -> FastAPI:
    """`appflow catalog serve`: the catalog repository at the root of the server."""
    app = FastAPI(title="appflow catalog", docs_url=None, redoc_url=None, openapi_url=None)
    app.include_router(catalog_router(publisher))
    return app
