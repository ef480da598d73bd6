"""The dashboard in a real browser (Debian's Chromium, headless, driven by Playwright)
against `appflow serve` on the sandbox clusters: every journey of issue 14's "Must show".

With APPFLOW_SCREENSHOTS=DIR the journey also saves the README's screenshots there
(`make screenshots`).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from appflow.model.tokens import hash_token, new_token
from appflow.store import open_store
from tests.e2e.support import appflow_env, serving
from tests.helpers import BROWSER_ARGS, CHROMIUM, unavailable
from tests.integration.engine.conftest import Fleet
from tests.integration.engine.support import Space, kubectl

pytestmark = pytest.mark.cluster

EXAMPLES = Path(__file__).resolve().parents[2] / "repos-example"
WAIT_MS = 120_000
"""Bounds of the waits for the fleet (syncs, drift, health), not timing asserts."""


@pytest.fixture
def browser() -> Iterator[object]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("playwright is not installed (make install)")
    if not Path(CHROMIUM).exists():
        unavailable(f"no Chromium at {CHROMIUM} (apt-get install chromium; .ci/run does)")
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        try:
            yield launched
        finally:
            launched.close()


def _shot(page: object, name: str) -> None:
    folder = os.environ.get("APPFLOW_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"))  # type: ignore[attr-defined]


def _examples(tmp_path: Path, space: Space) -> tuple[Path, list[str]]:
    """repos-example's plain, helm-web and kustomize-telemetry apps, renamed into the test's
    space: the sandbox is shared, and the examples' names and namespaces are fixed."""
    root = tmp_path / "examples"
    for folder in ("plain", "helm-web", "kustomize-telemetry"):
        shutil.copytree(EXAMPLES / folder, root / folder)
    ns = space.namespace
    (root / "plain" / "namespace.yaml").unlink()  # the space's namespace is on every cluster
    for path in (root / "plain").glob("*.yaml"):
        text = path.read_text().replace("name: hello-edge", f"name: {space.app('hello')}")
        path.write_text(text.replace("hello-edge", ns))
    web = root / "helm-web" / "appflow.yaml"
    text = web.read_text().replace("name: edge-web", f"name: {space.app('web')}")
    text = text.replace("namespace: edge-web", f"namespace: {ns}")
    text = text.replace("releaseName: edge-web", f"releaseName: {space.app('web')}")
    web.write_text(text.replace("  values:\n", "  values:\n    createNamespace: false\n", 1))
    telemetry = root / "kustomize-telemetry"
    (telemetry / "base" / "namespace.yaml").unlink()
    base = telemetry / "base" / "kustomization.yaml"
    base.write_text(
        base.read_text()
        .replace("namespace: telemetry", f"namespace: {ns}")
        .replace("  - namespace.yaml\n", "")
    )
    definition = telemetry / "appflow.yaml"
    text = definition.read_text().replace("name: telemetry", f"name: {space.app('telemetry')}")
    definition.write_text(text.replace("namespace: telemetry", f"namespace: {ns}"))
    return root, [space.app("hello"), space.app("web"), space.app("telemetry")]


def _cli(fleet: Fleet, *args: str) -> None:
    """The appflow CLI in a process of its own (Playwright runs an event loop in this one)."""
    done = subprocess.run(
        [sys.executable, "-m", "appflow", *args],
        env=appflow_env(fleet),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, f"appflow {' '.join(args)}: {done.stdout}{done.stderr}"


def _sign_in(page: object, base: str, token: str) -> None:
    page.goto(f"{base}/ui/")  # type: ignore[attr-defined]
    page.fill("#token", token)  # type: ignore[attr-defined]
    page.click("button[type=submit]")  # type: ignore[attr-defined]
    page.wait_for_url(f"{base}/ui/")  # type: ignore[attr-defined]


def test_dashboard_journeys(fleet: Fleet, space: Space, tmp_path: Path, browser: object) -> None:
    from playwright.sync_api import Browser, expect

    assert isinstance(browser, Browser)
    expect.set_options(timeout=WAIT_MS)
    root, apps = _examples(tmp_path, space)
    folder, app = root / "plain", apps[0]
    clusters = fleet.cluster_names
    group = f"edge-{space.suffix}"
    mqtt = space.app("mqtt")
    paths = ("--path", "plain", "--path", "helm-web", "--path", "kustomize-telemetry")
    _cli(fleet, "repo", "add", f"examples-{space.suffix}", str(root), *paths)
    _cli(fleet, "sync", *apps, "--wait")
    _cli(fleet, "group", "add", group, "-l", "env in (dev,prod)")
    admin, viewer = new_token(), new_token()
    fleet.store.add_token("ops", token_hash=hash_token(admin))
    fleet.store.add_token("viewer", token_hash=hash_token(viewer), scope="read-only")
    log = tmp_path / "serve.log"

    with serving(fleet, log) as (_, base):
        context = browser.new_context(viewport={"width": 1366, "height": 768})
        context.set_default_timeout(WAIT_MS)
        page = context.new_page()

        # Sign in; the grid shows the 3 clusters and the example Ready on each.
        _sign_in(page, base, admin)
        grid = page.locator("#grid")
        for name in clusters:
            expect(grid.locator(f'thead th[data-cluster="{name}"]')).to_be_visible()
        for name in apps[:2]:
            expect(grid.locator(f'tbody tr[data-app="{name}"] td.s-Ready')).to_have_count(3)
        # telemetry targets env in (dev, prod): Ready there, nothing on the test cluster.
        telemetry = grid.locator(f'tbody tr[data-app="{apps[2]}"]')
        expect(telemetry.locator("td.s-Ready")).to_have_count(2)
        expect(telemetry.locator("td.none")).to_have_count(1)
        row = grid.locator(f'tbody tr[data-app="{app}"]')
        expect(page.locator("#live")).to_have_text("● live")
        _shot(page, "overview")

        # A hand edit turns the cell Modified, without a reload.
        page.evaluate("window.__notReloaded = true")
        kubectl(
            fleet.sandbox, 0, "-n", space.namespace, "scale", "deployment/hello", "--replicas=5"
        )
        column = 2 + clusters.index(clusters[0])
        cell = row.locator(f"td:nth-child({column + 1})")
        expect(cell).to_have_text(re.compile(r"^Modified"))
        assert page.evaluate("window.__notReloaded === true"), "the page was reloaded"

        # The app page: the diff says what a sync takes back; Sync makes it Ready again.
        page.click(f'a[href="/ui/apps/{app}"]')
        expect(page.locator("#diff")).to_contain_text("replicas")
        expect(page.locator("#diff")).to_contain_text(clusters[0])
        expect(page.locator("details.tree").first).to_contain_text("Deployment")
        _shot(page, "app")
        page.click("#sync-all")
        expect(page.locator(".flash")).to_contain_text(f"sync of {app} queued")
        state = page.locator(f'#deployments tr[data-cluster="{clusters[0]}"] td.state')
        expect(state).to_have_text("Ready")
        live = kubectl(
            fleet.sandbox,
            0,
            "-n",
            space.namespace,
            "get",
            "deployment/hello",
            "-o",
            "jsonpath={.spec.replicas}",
        )
        assert live == "2"

        # Roll back to revision 1 after a second revision, with its diff previewed first.
        page_file = folder / "web.yaml"
        page_file.write_text(page_file.read_text().replace("Hello from the edge", "Hello again"))
        _cli(fleet, "sync", app, "--wait")
        page.goto(f"{base}/ui/apps/{app}")
        page.click(f'a[href="/ui/apps/{app}/rollback/1"]')
        expect(page.locator("main")).to_contain_text("Hello from the edge")
        page.click("#confirm-rollback")
        expect(page.locator(".flash")).to_contain_text(f"rolled back {app} to revision 1")
        for index in range(len(clusters)):
            html = kubectl(
                fleet.sandbox,
                index,
                "-n",
                space.namespace,
                "get",
                "configmap/hello-page",
                "-o",
                "jsonpath={.data.index\\.html}",
            )
            assert "Hello from the edge" in html

        # The marketplace: cards, the chart page, the install form.
        page.click('nav a[href="/ui/catalog"]')
        expect(page.locator(".card")).to_have_count(7)
        _shot(page, "marketplace")
        page.click('a[href="/ui/catalog/mosquitto"]')
        expect(page.locator(".readme")).to_contain_text("Mosquitto")
        page.click("#install")
        page.fill("#f-name", mqtt)
        page.fill("#f-namespace", space.namespace)
        page.check('input[name="target"][value="group"]')
        page.select_option("#f-group", group)
        page.eval_on_selector_all("details", "all => all.forEach(d => { d.open = true; })")
        expected = sorted(
            c.name for c in fleet.sandbox.clusters if c.labels["env"] in ("dev", "prod")
        )
        expect(page.locator("#matches")).to_have_text(f"Matches 2: {', '.join(expected)}")
        port = page.locator('input[name="v:/mqtt/port"]')
        port.fill("80")

        # An invalid value: the browser names the field and its rule, and sends nothing.
        page.click("#submit-install")
        error = page.locator('.field[data-field="v:/mqtt/port"] .field-error')
        expect(error).to_have_text(re.compile(r"mqtt\.port: 80 is less than the minimum of 1024"))
        assert page.url.endswith("/ui/install?entry=mosquitto"), "the form was sent"
        error.scroll_into_view_if_needed()
        _shot(page, "install-form")

        # The server checks again (a form sent past the browser's check): same field, same
        # rule, and no cluster is touched.
        csrf = page.get_attribute('meta[name="csrf-token"]', "content")
        form = {
            "_csrf": csrf or "",
            "entry": "mosquitto",
            "name": mqtt,
            "namespace": space.namespace,
            "target": "group",
            "group": group,
            "v:/mqtt/port": "80",
        }
        refused = page.request.post(f"{base}/ui/install", form=form)
        assert refused.status == 400
        assert "mqtt.port: 80 is less than the minimum of 1024" in refused.text()
        with open_store() as store:
            assert mqtt not in [a.name for a in store.list_apps()]
        for index in range(len(clusters)):
            assert (
                kubectl(
                    fleet.sandbox,
                    index,
                    "-n",
                    space.namespace,
                    "get",
                    "deployments",
                    "-l",
                    f"appflow.dev/app={mqtt}",
                    "-o",
                    "name",
                )
                == ""
            )

        # Fixed, installed to the group: Ready on its two clusters.
        port.fill("1884")
        page.click("#submit-install")
        page.wait_for_url(f"{base}/ui/apps/{mqtt}")
        for name in expected:
            expect(page.locator(f'#deployments tr[data-cluster="{name}"] td.state')).to_have_text(
                "Ready"
            )
        expect(page.locator("#deployments tbody tr")).to_have_count(2)

        # A request without the CSRF token is refused, and queues nothing.
        before = _actions(app)
        refused = page.request.post(f"{base}/ui/apps/{app}/sync", form={})
        assert refused.status == 403
        assert "CSRF" in refused.text()
        context.close()

        # A read-only token: no button that changes anything, and the server says no.
        context = browser.new_context(viewport={"width": 1024, "height": 768})
        page = context.new_page()
        _sign_in(page, base, viewer)
        expect(page.locator(".badge.ro")).to_have_text("read-only")
        for url in (
            "/ui/",
            f"/ui/apps/{app}",
            f"/ui/apps/{app}/rollback/1",
            "/ui/catalog",
            "/ui/catalog/mosquitto",
            "/ui/installs",
            "/ui/rollouts",
            "/ui/clusters",
        ):
            page.goto(base + url)
            changing = page.locator("form[method=post]:not([action='/ui/logout'])")
            assert changing.count() == 0, f"{url} offers a change to a read-only token"
            assert page.locator("#install, #sync-all, a[href*='/upgrade']").count() == 0, url
        page.goto(f"{base}/ui/apps/{app}")
        csrf = page.get_attribute('meta[name="csrf-token"]', "content")
        refused = page.request.post(f"{base}/ui/apps/{app}/sync", form={"_csrf": csrf or ""})
        assert refused.status == 403
        assert "read-only" in refused.text()
        assert _actions(app) == before, "a refused request was recorded as an action"
        context.close()

    # Every change was recorded with the name of the token that made it.
    messages = [
        e.message for e in fleet.store.list_events(app=app, limit=200) if e.kind == "action"
    ]
    assert any(m.startswith("sync requested") and m.endswith("(token ops)") for m in messages), (
        messages
    )
    assert any("rollback to revision 1" in m and "(token ops)" in m for m in messages), messages
    installed = [
        e.message for e in fleet.store.list_events(app=mqtt, limit=50) if e.kind == "action"
    ]
    assert any(m.startswith("installed mosquitto") and "(token ops)" in m for m in installed), (
        installed
    )


def _actions(app: str) -> list[str]:
    with open_store() as store:
        return [e.message for e in store.list_events(app=app, limit=500) if e.kind == "action"]
