"""The dashboard's routes under ``/ui``: pages rendered on the server, actions as forms.

Pages are Jinja2 templates over ``FleetService`` (the API's code): nothing here reads
the store in its own way. Every POST checks the session's CSRF token; a read-only token
gets pages without buttons, and a 403 if it posts anyway. Errors become a message on
the page (never a traceback); a session whose token was revoked or expired is sent to
the sign-in page with that message.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from importlib import resources
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qsl, urlencode

import jinja2
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    StreamingResponse,
)
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from markdown_it import MarkdownIt

from appflow.errors import AppflowError, ConfigError, ForbiddenError, NotFoundError
from appflow.model.codec import to_json
from appflow.model.overview import MAX_PER_PAGE, OverviewQuery, paginate
from appflow.model.records import DEPLOYMENT_STATES, TargetChoice, TokenRecord
from appflow.model.tokens import hash_token
from appflow.server.auth import find_token
from appflow.server.bodies import (
    DEFAULT_BODY_TIMEOUT_SECONDS,
    BodyTimeoutError,
    BodyTooLargeError,
    ClientGoneError,
    read_body,
)
from appflow.server.service import (
    Actor,
    ChartView,
    FleetService,
    describe,
    problem_paths,
    report_problems,
)
from appflow.server.ui import forms
from appflow.server.ui.session import (
    COOKIE,
    CSRF_FIELD,
    CSRF_HEADER,
    LOGIN_COOKIE,
    Session,
    SessionEnded,
    Sessions,
)
from appflow.store import Store

log = logging.getLogger("appflow.ui")

FLASH_COOKIE = "appflow_flash"
MAX_FORM_BYTES = 256 * 1024
"""An install form is a few KB; anything near this is not a person typing."""
STREAM_TICK = 1.0
STREAM_REFRESH = 5.0
"""Seconds between re-reads of the shown apps' cells (health changes record no event)."""
STREAM_SESSION_CHECK = 10.0
STREAM_MAX_SECONDS = 600.0
"""An event stream ends after this long; the browser reconnects by itself."""

_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
_HEADERS = {
    "Content-Security-Policy": _CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class _Redirect(Exception):
    def __init__(self, url: str, *, flash: str = "") -> None:
        self.url = url
        self.flash = flash


class _Page(Exception):
    """A response decided deep in a handler (a form shown again with its errors)."""

    def __init__(self, response: Response) -> None:
        self.response = response


def _templates() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("appflow.server.ui", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["since"] = _since
    env.filters["short"] = lambda text, n=12: str(text or "")[:n]
    env.globals["STATES"] = DEPLOYMENT_STATES
    return env


def _since(value: Any) -> str:
    """A time as 'YYYY-MM-DD HH:MM:SS UTC' (what an operator compares with logs)."""
    if value is None:
        return "never"
    return str(value.strftime("%Y-%m-%d %H:%M:%S UTC"))


_markdown = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")
"""READMEs come from charts: raw HTML is shown as text, javascript: links are refused."""


class Dashboard:
    """The dashboard's state: templates, sessions, the service, static files."""

    def __init__(self, *, service: FleetService, require_token: bool, key: bytes) -> None:
        self.service = service
        self.store = service.store
        self.require_token = require_token
        self.sessions = Sessions(key)
        self.env = _templates()
        self._anonymous_nonce = secrets.token_urlsafe(16)

    # -- sessions ------------------------------------------------------------------------

    async def session(self, request: Request) -> Session:
        """The signed-in session of REQUEST; redirects to the sign-in page otherwise."""
        if not self.require_token:
            return Session(
                token_hash="",
                nonce=self._anonymous_nonce,
                issued=0.0,
                token=TokenRecord(id=0, name="anonymous"),
            )
        session = self.sessions.read(request.cookies.get(COOKIE))
        if session is None:
            raise _Redirect("/ui/login?" + urlencode({"next": _next_of(request)}))
        try:
            return await asyncio.to_thread(self.sessions.check, self.store, session)
        except SessionEnded as ended:
            raise _Redirect("/ui/login", flash=ended.message) from None

    async def live_session(self, request: Request) -> tuple[Session, int]:
        """The session of a page with a live stream, and the newest event's id, read before
        the page reads what it shows: its stream starts there, so nothing recorded in between
        is missed."""
        session = await self.session(request)
        return session, await asyncio.to_thread(_newest_event, self.store)

    async def writer(self, request: Request, action: str) -> tuple[Session, Actor, dict[str, str]]:
        """The session of a state-changing REQUEST, its actor, and its form fields:
        refused without the session's CSRF token, or for a read-only token."""
        session = await self.session(request)
        form = await _form(request)
        sent = request.headers.get(CSRF_HEADER) or form.get(CSRF_FIELD)
        if not self.sessions.csrf_ok(session, sent):
            raise ForbiddenError(
                "the request carries no valid CSRF token; reload the page and try again",
                hint="every change must come from a page of this dashboard",
            )
        actor = Actor(name=session.name, read_only=session.read_only)
        actor.require_write(action)
        return session, actor, form

    # -- rendering ---------------------------------------------------------------------------

    def render(
        self,
        request: Request,
        template: str,
        *,
        session: Session | None,
        status: int = 200,
        **context: Any,
    ) -> HTMLResponse:
        flash = request.cookies.get(FLASH_COOKIE, "")
        html = self.env.get_template(template).render(
            request=request,
            session=session,
            can_write=session is not None and not session.read_only,
            csrf=self.sessions.csrf(session) if session else "",
            csrf_field=CSRF_FIELD,
            flash=flash,
            path=request.url.path,
            **context,
        )
        response = HTMLResponse(html, status_code=status, headers=_HEADERS)
        if flash:
            response.delete_cookie(FLASH_COOKIE, path="/ui")
        return response

    def error_page(self, request: Request, status: int, message: str) -> HTMLResponse:
        session = self.sessions.read(request.cookies.get(COOKIE)) if self.require_token else None
        return self.render(request, "error.html", session=session, status=status, message=message)


def _next_of(request: Request) -> str:
    query = f"?{request.url.query}" if request.url.query else ""
    return f"{request.url.path}{query}" if request.method == "GET" else "/ui/"


def _safe_next(target: str) -> str:
    # Only a path of this dashboard: never another site (an open redirect).
    return target if target.startswith("/ui") and not target.startswith("//") else "/ui/"


async def _form(request: Request) -> dict[str, str]:
    """The urlencoded form of REQUEST (last value wins; lists under ``name[]`` keys)."""
    if request.method != "POST":
        return {}
    try:
        body = await read_body(request, MAX_FORM_BYTES, timeout=DEFAULT_BODY_TIMEOUT_SECONDS)
    except BodyTooLargeError:
        raise ConfigError(f"the form is larger than {MAX_FORM_BYTES // 1024} KiB") from None
    except (BodyTimeoutError, ClientGoneError):
        raise ConfigError(
            f"the form did not arrive within {DEFAULT_BODY_TIMEOUT_SECONDS:g} seconds"
        ) from None
    out: dict[str, str] = {}
    for key, value in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True):
        if key.endswith("[]"):
            out[key] = f"{out[key]}\n{value}" if key in out else value
        else:
            out[key] = value
    return out


def _redirect(url: str, *, flash: str = "") -> RedirectResponse:
    response = RedirectResponse(url, status_code=303)
    if flash:
        response.set_cookie(
            FLASH_COOKIE, flash[:1500], path="/ui", httponly=True, samesite="strict", max_age=60
        )
    return response


def _status(err: AppflowError) -> int:
    if isinstance(err, NotFoundError):
        return 404
    if isinstance(err, ForbiddenError):
        return 403
    if isinstance(err, ConfigError):
        return 400
    return 502


def _int(value: str | None, default: int, *, low: int = 1, high: int = 10**9) -> int:
    try:
        return min(max(int(value or default), low), high)
    except ValueError:
        return default


def mount_dashboard(app: FastAPI, *, service: FleetService, require_token: bool) -> None:
    """Serve the dashboard under /ui (and send / there)."""
    ui = Dashboard(service=service, require_token=require_token, key=service.store.session_key())
    app.state.dashboard = ui

    class UiRoute(APIRoute):
        """Turns what a handler raises into a page: a redirect, a message, never a traceback."""

        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            original = super().get_route_handler()

            async def handler(request: Request) -> Response:
                try:
                    return await original(request)
                except _Redirect as redirect:
                    return _redirect(redirect.url, flash=redirect.flash)
                except _Page as page:
                    return page.response
                except AppflowError as err:
                    return ui.error_page(request, _status(err), describe(err))
                except Exception:
                    log.exception("%s %s failed", request.method, request.url.path)
                    return ui.error_page(
                        request, 500, "internal error in appflow; see the appflow server's log"
                    )

            return handler

    router = APIRouter(prefix="/ui", route_class=UiRoute, include_in_schema=False)
    static = resources.files("appflow.server.ui").joinpath("static")
    app.mount("/ui/static", StaticFiles(directory=str(static)), name="ui-static")

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/ui/", status_code=307)

    # -- sign-in ---------------------------------------------------------------------------

    @router.get("/login")
    async def login_page(request: Request, next: str = "/ui/", ended: str = "") -> Response:
        nonce = ui.sessions.login_nonce()
        error = (
            "your token was revoked or has expired: sign in again with a valid token"
            if ended
            else ""
        )
        response = ui.render(
            request, "login.html", session=None, nonce=nonce, next=_safe_next(next), error=error
        )
        response.set_cookie(
            LOGIN_COOKIE, nonce, path="/ui/login", httponly=True, samesite="strict", max_age=900
        )
        return response

    @router.post("/login")
    async def login(request: Request) -> Response:
        form = await _form(request)
        target = _safe_next(form.get("next", "/ui/"))
        nonce = request.cookies.get(LOGIN_COOKIE, "")
        if not nonce or not secrets.compare_digest(nonce, form.get("nonce", "")):
            raise _Redirect("/ui/login", flash="the sign-in form expired; please try again")
        token = await asyncio.to_thread(find_token, ui.store, form.get("token", ""))
        if token is None:
            fresh = ui.sessions.login_nonce()
            response = ui.render(
                request,
                "login.html",
                session=None,
                status=401,
                nonce=fresh,
                next=target,
                error="that token is not valid (revoked, expired, or never issued)",
            )
            response.set_cookie(
                LOGIN_COOKIE, fresh, path="/ui/login", httponly=True, samesite="strict", max_age=900
            )
            return response
        signed_in = _redirect(target)
        signed_in.set_cookie(
            COOKIE,
            ui.sessions.issue(hash_token(form.get("token", "").strip())),
            path="/",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            max_age=int(ui.sessions.lifetime),
        )
        signed_in.delete_cookie(LOGIN_COOKIE, path="/ui/login")
        return signed_in

    @router.post("/logout")
    async def logout(request: Request) -> Response:
        session = await ui.session(request)
        form = await _form(request)
        if not ui.sessions.csrf_ok(session, form.get(CSRF_FIELD)):
            raise ForbiddenError("the request carries no valid CSRF token; reload the page")
        response = _redirect("/ui/login", flash="signed out")
        response.delete_cookie(COOKIE, path="/")
        return response

    # -- overview ----------------------------------------------------------------------------

    @router.get("/")
    async def overview(request: Request) -> Response:
        session, since = await ui.live_session(request)
        q = request.query_params
        try:
            query = OverviewQuery(
                state=q.get("state", ""),
                selector=q.get("selector", "").strip(),
                group=q.get("group", ""),
                repo=q.get("repo", ""),
                search=q.get("q", "").strip(),
                page=_int(q.get("page"), 1),
                per_page=_int(q.get("per_page"), 50, high=MAX_PER_PAGE),
                cluster_page=_int(q.get("cpage"), 1),
                clusters_per_page=_int(q.get("cper_page"), 50, high=MAX_PER_PAGE),
            )
            view = await asyncio.to_thread(service.overview, query)
            problem = ""
        except ConfigError as err:
            query = OverviewQuery()
            view = await asyncio.to_thread(service.overview, query)
            problem = describe(err)
        groups, repos = await asyncio.to_thread(
            lambda: (service.store.list_groups(), service.store.list_repos())
        )
        return ui.render(
            request,
            "overview.html",
            session=session,
            view=view,
            query=query,
            groups=groups,
            repos=repos,
            problem=problem,
            link=lambda **change: _link(request, change),
            events_since=since,
        )

    @router.get("/clusters")
    async def clusters(request: Request) -> Response:
        session = await ui.session(request)
        q = request.query_params
        selector, search = q.get("selector", "").strip(), q.get("q", "").strip()
        problem = ""
        try:
            found = await asyncio.to_thread(service.clusters, selector=selector, search=search)
        except ConfigError as err:
            problem, found = describe(err), await asyncio.to_thread(service.clusters)
        page, pages = paginate(found, _int(q.get("page"), 1), 50)
        member_of = await asyncio.to_thread(service.cluster_groups)
        return ui.render(
            request,
            "clusters.html",
            session=session,
            clusters=page,
            pages=pages,
            member_of=member_of,
            selector=selector,
            search=search,
            problem=problem,
            link=lambda **change: _link(request, change),
        )

    # -- apps ------------------------------------------------------------------------------------

    @router.get("/apps/{name}")
    async def app_page(request: Request, name: str) -> Response:
        session, since = await ui.live_session(request)
        view = await asyncio.to_thread(service.app, name)
        clusters = {c.name: c for c in await asyncio.to_thread(service.store.list_clusters)}
        return ui.render(
            request, "app.html", session=session, view=view, clusters=clusters, events_since=since
        )

    @router.get("/apps/{name}/diff")
    async def app_diff(request: Request, name: str, cluster: str | None = None) -> Response:
        session = await ui.session(request)
        fragment = request.query_params.get("fragment") == "1"
        try:
            plans = await service.diff(name, cluster=cluster or None)
            problem = ""
        except AppflowError as err:
            plans, problem = {}, describe(err)
        return ui.render(
            request,
            "diff_fragment.html" if fragment else "diff.html",
            session=session,
            app=name,
            plans=plans,
            problem=problem,
            title=f"What a sync of {name} would change",
        )

    @router.get("/apps/{name}/rollback/{to}")
    async def rollback_preview(request: Request, name: str, to: int) -> Response:
        session = await ui.session(request)
        revision = await asyncio.to_thread(service.store.get_revision, name, to)
        try:
            plans = await service.diff_revision(name, to=to)
            problem = ""
        except AppflowError as err:
            plans, problem = {}, describe(err)
        return ui.render(
            request,
            "rollback.html",
            session=session,
            app=name,
            revision=revision,
            plans=plans,
            problem=problem,
        )

    @router.post("/apps/{name}/sync")
    async def app_sync(request: Request, name: str) -> Response:
        _, actor, form = await ui.writer(request, "sync apps")
        cluster = form.get("cluster") or None
        await service.sync(actor, name, cluster=cluster)
        where = f" on {cluster}" if cluster else ""
        return _redirect(
            form.get("back") or f"/ui/apps/{name}", flash=f"sync of {name}{where} queued"
        )

    @router.post("/apps/{name}/rollback/{to}")
    async def app_rollback(request: Request, name: str, to: int) -> Response:
        _, actor, _ = await ui.writer(request, "roll back apps")
        report = await service.rollback(actor, name, to=to)
        problems = report_problems(report)
        states = ", ".join(f"{r.cluster} {r.state}" for r in report.results)
        flash = (
            f"rolled back {name} to revision {to}: {states}; it stays pinned there until "
            f"`appflow app resume {name}`"
            if not problems
            else f"rollback of {name} to revision {to} failed: {'; '.join(problems)}"
        )
        return _redirect(f"/ui/apps/{name}", flash=flash)

    @router.post("/apps/{name}/rollout/{verb}")
    async def app_rollout(request: Request, name: str, verb: str) -> Response:
        if verb not in ("pause", "resume"):
            raise NotFoundError(f"no rollout action {verb!r}")
        _, actor, form = await ui.writer(request, f"{verb} rollouts")
        if verb == "pause":
            await asyncio.to_thread(service.pause_rollout, actor, name)
        else:
            await service.resume_rollout(actor, name)
        back = form.get("back") or f"/ui/apps/{name}"
        return _redirect(_safe_next(back), flash=f"rollout of {name}: {verb}d")

    @router.get("/rollouts")
    async def rollouts(request: Request) -> Response:
        session = await ui.session(request)
        views = await asyncio.to_thread(service.rollouts)
        return ui.render(request, "rollouts.html", session=session, rollouts=views)

    @router.get("/events")
    async def events(request: Request) -> Response:
        session, since = await ui.live_session(request)
        app_name = request.query_params.get("app") or None
        found = await asyncio.to_thread(service.events, app=app_name, limit=200)
        return ui.render(
            request,
            "events.html",
            session=session,
            events=list(reversed(found)),
            app=app_name,
            events_since=since,
        )

    # -- marketplace -------------------------------------------------------------------------------

    @router.get("/catalog")
    async def catalog(request: Request) -> Response:
        session = await ui.session(request)
        q = request.query_params
        category, search = q.get("category", ""), q.get("q", "").strip()
        entries = await asyncio.to_thread(service.catalog_entries, category=category, search=search)
        everything = await asyncio.to_thread(service.catalog_entries)
        installs = await asyncio.to_thread(service.installs)
        where: dict[str, list[dict[str, Any]]] = {}
        for i in installs:
            where.setdefault(str(i["entry"]), []).append(i)
        return ui.render(
            request,
            "catalog.html",
            session=session,
            entries=entries,
            categories=sorted({e.category for e in everything}),
            category=category,
            search=search,
            installed=where,
        )

    @router.get("/icon/{entry}")
    async def icon(request: Request, entry: str) -> Response:
        await ui.session(request)
        path = await asyncio.to_thread(service.icon, entry)
        if path is None:
            raise NotFoundError(f"catalog entry {entry} has no icon")
        # An SVG shown through <img> runs no script; the CSP says so again.
        return FileResponse(path, headers={**_HEADERS, "Cache-Control": "max-age=300"})

    @router.get("/catalog/{entry:path}")
    async def chart(request: Request, entry: str) -> Response:
        session = await ui.session(request)
        view = await service.chart(entry, version=request.query_params.get("version") or None)
        fields = forms.form_fields(view.schema, view.entry.questions, view.defaults)
        installs = [i for i in await asyncio.to_thread(service.installs) if i["entry"] == entry]
        return ui.render(
            request,
            "chart.html",
            session=session,
            view=view,
            readme=_markdown.render(view.readme) if view.readme else "",
            fields=fields,
            installs=installs,
        )

    async def chart_form(
        entry: str, version: str | None
    ) -> tuple[ChartView, list[forms.FormField]]:
        view = await service.chart(entry, version=version)
        return view, forms.form_fields(view.schema, view.entry.questions, view.defaults)

    async def install_form(
        request: Request,
        session: Session,
        *,
        entry: str,
        version: str | None,
        upgrade_of: Mapping[str, Any] | None = None,
        raw: Mapping[str, str] | None = None,
        errors: Mapping[str, str] | None = None,
        general: list[str] | None = None,
        status: int = 200,
    ) -> HTMLResponse:
        view, fields = await chart_form(entry, version)
        defaults = view.defaults
        shown: dict[str, str] = {f.name: f.shown_default() for f in fields}
        if upgrade_of is not None:
            for f in fields:
                current = forms.value_at(upgrade_of.get("values") or {}, f.path)
                if current is not None:
                    shown[f.name] = forms.shown_value(f, current)
        shown.update(raw or {})
        clusters = await asyncio.to_thread(service.clusters)
        groups = await asyncio.to_thread(service.store.list_groups)
        return ui.render(
            request,
            "install.html",
            session=session,
            status=status,
            view=view,
            groups_of_fields=forms.groups(fields),
            shown=shown,
            errors=errors or {},
            general=general or [],
            clusters=clusters,
            groups=groups,
            upgrade_of=upgrade_of,
            raw=raw or {},
            schema_json=_script_json(view.schema or {}),
            defaults_json=_script_json(defaults),
            fields_json=_script_json(
                [
                    {"name": f.name, "path": list(f.path), "kind": f.kind, "default": f.default}
                    for f in fields
                ]
            ),
        )

    @router.get("/install")
    async def install_page(request: Request, entry: str, version: str | None = None) -> Response:
        session = await ui.session(request)
        if session.read_only:
            raise ForbiddenError(f"token {session.name} is read-only: it may not install apps")
        return await install_form(request, session, entry=entry, version=version or None)

    async def checked_values(
        request: Request,
        session: Session,
        form: dict[str, str],
        *,
        entry: str,
        version: str | None,
        upgrade_of: Mapping[str, Any] | None,
    ) -> dict[str, Any]:
        """The form's values, or the form again with the fields it could not read."""
        _, fields = await chart_form(entry, version)
        submitted = forms.parse(fields, form)
        if submitted.errors:
            raise _Page(
                await install_form(
                    request,
                    session,
                    entry=entry,
                    version=version,
                    upgrade_of=upgrade_of,
                    raw={**form},
                    errors=submitted.errors,
                    status=400,
                )
            )
        return submitted.values

    async def refused(
        request: Request,
        session: Session,
        err: AppflowError,
        form: dict[str, str],
        *,
        entry: str,
        version: str | None,
        upgrade_of: Mapping[str, Any] | None,
    ) -> HTMLResponse:
        _, fields = await chart_form(entry, version)
        errors: dict[str, str] = {}
        general: list[str] = []
        for path, message in problem_paths(err):
            f = forms.field_for(fields, path)
            if f is None:
                general.append(message)
            else:
                errors[f.name] = f"{errors[f.name]}; {message}" if f.name in errors else message
        if not errors and not general:
            general.append(describe(err))
        return await install_form(
            request,
            session,
            entry=entry,
            version=version,
            upgrade_of=upgrade_of,
            raw={**form},
            errors=errors,
            general=general,
            status=400,
        )

    @router.post("/install")
    async def install(request: Request) -> Response:
        session, actor, form = await ui.writer(request, "install apps")
        entry, version = form.get("entry", ""), form.get("version") or None
        values = await checked_values(
            request, session, form, entry=entry, version=version, upgrade_of=None
        )
        choice = _targets(form)
        try:
            report = await service.install(
                actor,
                entry=entry,
                name=form.get("name") or None,
                version=version,
                targets=choice,
                namespace=form.get("namespace") or None,
                values=values,
            )
        except AppflowError as err:
            return await refused(
                request, session, err, form, entry=entry, version=version, upgrade_of=None
            )
        name = form.get("name") or entry.rsplit("/", 1)[-1]
        problems = report_problems(report)
        flash = (
            f"installing {entry} as {name} on {', '.join(r.cluster for r in report.results)}"
            if not problems
            else f"install of {name}: {'; '.join(problems)}"
        )
        target = f"/ui/apps/{name}" if report.results else "/ui/installs"
        return _redirect(target, flash=flash)

    @router.get("/installs")
    async def installs(request: Request) -> Response:
        session = await ui.session(request)
        rows = await asyncio.to_thread(service.installs)
        return ui.render(request, "installs.html", session=session, installs=rows)

    async def install_record(name: str) -> dict[str, Any]:
        from appflow.engine.catalog.source import catalog_data

        record = catalog_data(await asyncio.to_thread(service.store.get_app, name))
        # The form reads the install's data by its JSON names (entry, constraint, values).
        return cast(dict[str, Any], to_json(record))

    @router.get("/installs/{name}/upgrade")
    async def upgrade_page(request: Request, name: str) -> Response:
        session = await ui.session(request)
        if session.read_only:
            raise ForbiddenError(f"token {session.name} is read-only: it may not upgrade apps")
        data = await install_record(name)
        return await install_form(
            request,
            session,
            entry=str(data["entry"]),
            version=request.query_params.get("version") or data.get("constraint") or None,
            upgrade_of={"name": name, **data},
        )

    @router.post("/installs/{name}/upgrade")
    async def upgrade(request: Request, name: str) -> Response:
        session, actor, form = await ui.writer(request, "upgrade apps")
        data = await install_record(name)
        upgrade_of = {"name": name, **data}
        entry, version = str(data["entry"]), form.get("version") or None
        values = await checked_values(
            request, session, form, entry=entry, version=version, upgrade_of=upgrade_of
        )
        try:
            report = await service.upgrade(actor, name, version=version, values=values)
        except AppflowError as err:
            return await refused(
                request, session, err, form, entry=entry, version=version, upgrade_of=upgrade_of
            )
        problems = report_problems(report)
        flash = f"upgrading {name}" if not problems else f"upgrade of {name}: {'; '.join(problems)}"
        return _redirect(f"/ui/apps/{name}", flash=flash)

    @router.post("/installs/{name}/uninstall")
    async def uninstall(request: Request, name: str) -> Response:
        _, actor, _ = await ui.writer(request, "uninstall apps")
        report = await service.uninstall(actor, name)
        problems = report_problems(report)
        flash = (
            f"uninstalled {name}" if not problems else f"uninstall of {name}: {'; '.join(problems)}"
        )
        return _redirect("/ui/installs", flash=flash)

    @router.get("/match")
    async def match(request: Request) -> Response:
        await ui.session(request)
        q = request.query_params
        try:
            names = await asyncio.to_thread(
                service.match,
                _targets({**q, "cluster[]": "\n".join(q.getlist("cluster"))}),
            )
            return JSONResponse({"clusters": names}, headers=_HEADERS)
        except AppflowError as err:
            return JSONResponse({"error": describe(err)}, status_code=400, headers=_HEADERS)

    # -- live updates ------------------------------------------------------------------------------

    @router.get("/stream")
    async def stream(request: Request) -> Response:
        session = await ui.session(request)
        app_name = request.query_params.get("app") or None
        shown = [a for a in request.query_params.get("apps", "").split(",") if a][:MAX_PER_PAGE]
        if app_name:
            shown = [app_name]
        since = request.query_params.get("since", "")
        return StreamingResponse(
            _events(
                ui,
                request,
                session,
                app_name=app_name,
                shown=shown,
                since=int(since) if since.isdecimal() else None,
            ),
            media_type="text/event-stream",
            headers={**_HEADERS, "X-Accel-Buffering": "no"},
        )

    app.include_router(router)


def _targets(form: Mapping[str, str]) -> TargetChoice:
    kind = form.get("target", "all")
    if kind == "clusters":
        names = tuple(n for n in form.get("cluster[]", "").split("\n") if n)
        choice = TargetChoice(clusters=names)
    elif kind == "group":
        choice = TargetChoice(group=form.get("group") or None)
    elif kind == "selector":
        choice = TargetChoice(selector=(form.get("selector") or "").strip() or None)
    else:
        choice = TargetChoice(all=True)
    if kind != "all" and not (choice.clusters or choice.group or choice.selector):
        raise ConfigError(
            f"choose the target {kind.rstrip('s')}", hint="or install to all clusters"
        )
    return choice


def _link(request: Request, change: Mapping[str, Any]) -> str:
    """This page's URL with CHANGE applied to its query (None removes a parameter)."""
    params = dict(request.query_params)
    for key, value in change.items():
        if value is None or value == "":
            params.pop(key, None)
        else:
            params[key] = str(value)
    if "page" not in change and any(k not in ("page", "cpage") for k in change):
        params.pop("page", None)  # a new filter starts at its first page
    query = urlencode(params)
    return f"{request.url.path}?{query}" if query else request.url.path


async def _events(
    ui: Dashboard,
    request: Request,
    session: Session,
    *,
    app_name: str | None,
    shown: list[str],
    since: int | None,
) -> AsyncIterator[bytes]:
    """Server-sent events: new events as ``appflow``, changed cells as ``cells``, and
    ``signout`` when the session's token is revoked or expires.

    SINCE: the newest event when the page was asked for (its events after that are sent).
    The shown apps' cells are all sent first: the page may have been rendered before a
    change that came before this stream, which no later comparison would see."""
    store = ui.store
    loop = asyncio.get_running_loop()
    started = last_check = loop.time()
    last_refresh = started - STREAM_REFRESH  # the first pass sends every shown cell
    last_id = since if since is not None else await asyncio.to_thread(_newest_event, store)
    sent: dict[tuple[str, str], tuple[str, int | None, str, bool]] = {}

    def cells(apps: list[str]) -> list[dict[str, Any]]:
        offline = {c.name for c in store.list_clusters() if c.state == "Offline"}
        out = []
        for s in store.list_deployment_summaries(apps=apps):
            now = (s.state, s.applied_revision, s.message, s.cluster in offline)
            if sent.get((s.app, s.cluster)) != now:
                sent[(s.app, s.cluster)] = now
                out.append(
                    {
                        "app": s.app,
                        "cluster": s.cluster,
                        "state": s.state,
                        "revision": s.applied_revision,
                        "message": s.message,
                        "offline": s.cluster in offline,
                    }
                )
        return out

    yield b"retry: 3000\n\n"
    stopping = getattr(request.app.state, "stopping", None)
    while True:
        if await request.is_disconnected() or (stopping is not None and stopping.is_set()):
            return
        now = loop.time()
        if now - started > STREAM_MAX_SECONDS:
            return
        if ui.require_token and now - last_check > STREAM_SESSION_CHECK:
            last_check = now
            try:
                await asyncio.to_thread(ui.sessions.check, store, session)
            except SessionEnded as ended:
                yield _sse("signout", {"message": ended.message})
                return
        new = await asyncio.to_thread(store.list_events, app=app_name, since_id=last_id, limit=200)
        touched = sorted({e.app for e in new if e.app and (not shown or e.app in shown)})
        for e in new:
            last_id = max(last_id, e.id)
            yield _sse("appflow", e.to_data())
        refresh = now - last_refresh >= STREAM_REFRESH
        if refresh:
            last_refresh = now
        wanted = shown if refresh else touched
        if wanted:
            changed = await asyncio.to_thread(cells, wanted)
            if changed:
                yield _sse("cells", changed)
        elif not new:
            yield b": idle\n\n"
        with contextlib.suppress(TimeoutError):
            if stopping is not None:
                await asyncio.wait_for(stopping.wait(), timeout=STREAM_TICK)
            else:
                await asyncio.sleep(STREAM_TICK)


def _newest_event(store: Store) -> int:
    newest = store.list_events(limit=1)
    return newest[-1].id if newest else 0


def _script_json(data: Any) -> str:
    """DATA as JSON safe inside a <script type="application/json"> element."""
    return json.dumps(data, default=str).replace("<", "\\u003c").replace(">", "\\u003e")


def _sse(event: str, data: Any) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, default=str)}\n\n".encode()


def static_dir() -> Path:
    return Path(str(resources.files("appflow.server.ui").joinpath("static")))
