"""The HTTP API over real HTTP: bearer tokens, records, errors, triggers, health, metrics."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from appflow.cli.main import cli
from appflow.model.tokens import new_token
from tests.integration.server.conftest import KUBECONFIG, Served

API_GETS = [
    "/api/v1/clusters",
    "/api/v1/clusters/berlin-1",
    "/api/v1/groups",
    "/api/v1/repos",
    "/api/v1/apps",
    "/api/v1/apps/web",
    "/api/v1/apps/web/history",
    "/api/v1/deployments",
    "/api/v1/status",
    "/api/v1/events",
]


@pytest.mark.parametrize("path", API_GETS)
def test_the_api_needs_a_valid_token(served: Served, path: str) -> None:
    with served.client() as anonymous:
        response = anonymous.get(path)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["error"] == "this API needs a bearer token"
    with served.client(token=new_token()) as stranger:
        assert stranger.get(path).status_code == 401
    with served.client(token="not-even-a-token") as malformed:
        assert malformed.get(path).status_code == 401
    with served.api() as client:
        assert client.get(path).status_code == 200


def test_a_revoked_token_stops_working(served: Served) -> None:
    with served.api() as client:
        assert client.get("/api/v1/apps").status_code == 200
        served.store.delete_token("tests")
        assert client.get("/api/v1/apps").status_code == 401


def test_clusters_never_show_credentials(served: Served) -> None:
    with served.api() as client:
        listed = client.get("/api/v1/clusters")
        one = client.get("/api/v1/clusters/berlin-1")
    assert [c["name"] for c in listed.json()] == ["berlin-1", "lab-1"]
    assert one.json()["labels"] == {"env": "prod", "site": "berlin"}
    for response in (listed, one):
        assert KUBECONFIG not in response.text
        assert "kubeconfig" not in response.text


def test_repos_show_whether_a_secret_is_set_but_not_where(served: Served) -> None:
    with served.api() as client:
        repos = {r["name"]: r for r in client.get("/api/v1/repos").json()}
    assert repos["retail"]["webhook_secret"] is True
    assert repos["unguarded"]["webhook_secret"] is False
    assert str(served.secret_file) not in json.dumps(repos)


def test_groups_list_their_members(served: Served) -> None:
    from appflow.model.records import ClusterGroupRecord

    served.store.put_group(ClusterGroupRecord(name="prod", selector="env=prod"))
    with served.api() as client:
        groups = client.get("/api/v1/groups").json()
    assert groups == [{"name": "prod", "selector": "env=prod", "clusters": ["berlin-1"]}]


def test_app_detail_history_and_deployments(served: Served) -> None:
    sync = served.store.start_sync("web", "berlin-1", revision=None, trigger="user")
    served.store.finish_sync(sync.id, outcome="failed", message="image pull")
    with served.api() as client:
        app = client.get("/api/v1/apps/web").json()
        history = client.get("/api/v1/apps/web/history").json()
        deployments = client.get("/api/v1/deployments", params={"cluster": "berlin-1"}).json()
        none = client.get("/api/v1/deployments", params={"app": "nothing"}).json()
        apps = client.get("/api/v1/apps").json()
    assert app["deployments"][0]["failing"] == [
        {"object": "Deployment/shop/web", "message": "image pull"}
    ]
    assert [(h["cluster"], h["outcome"], h["message"]) for h in history] == [
        ("berlin-1", "failed", "image pull")
    ]
    assert [(d["app"], d["state"]) for d in deployments] == [("web", "ErrApplied")]
    assert deployments[0]["inventory"] == ["apps/v1 shop_web_apps_Deployment"]
    assert none == []
    assert apps == [
        {
            "name": "web",
            "source": "git",
            "repo": "retail",
            "path": "apps/web",
            "paused": False,
            "clusters": 1,
            "ready": 0,
        }
    ]


def test_status_is_the_same_grid_as_the_cli(served: Served) -> None:
    with served.api() as client:
        api = client.get("/api/v1/status").json()
    # The API shows what is recorded (under `appflow serve` the daemon keeps it current),
    # as `status --cached` does; a plain `status` reads the clusters first.
    result = CliRunner().invoke(cli, ["status", "--cached", "-o", "json"])
    assert result.exit_code == 0, result.output
    assert api == json.loads(result.output)
    assert api["apps"][0]["deployments"]["berlin-1"]["state"] == "ErrApplied"


def test_events_tail_with_since_id_and_limit(served: Served) -> None:
    with served.api() as client:
        everything = client.get("/api/v1/events").json()
        after_first = client.get("/api/v1/events", params={"since_id": everything[0]["id"]}).json()
        newest = client.get("/api/v1/events", params={"limit": 1}).json()
        bad = client.get("/api/v1/events", params={"limit": 0})
    assert [e["kind"] for e in everything] == ["sync", "drift"]
    assert [e["kind"] for e in after_first] == ["drift"]
    assert [e["kind"] for e in newest] == ["drift"]
    assert bad.status_code == 422
    assert "limit" in bad.json()["error"]


@pytest.mark.parametrize(
    ("path", "needle"),
    [
        ("/api/v1/clusters/nowhere", "appflow cluster list"),
        ("/api/v1/apps/nothing", "appflow app list"),
        ("/api/v1/apps/nothing/history", "appflow app list"),
    ],
)
def test_unknown_records_are_404_with_a_hint(served: Served, path: str, needle: str) -> None:
    with served.api() as client:
        response = client.get(path)
    assert response.status_code == 404
    assert needle in response.json()["hint"]


def test_sync_queues_the_app(served: Served) -> None:
    with served.api() as client:
        everywhere = client.post("/api/v1/apps/web/sync")
        one = client.post("/api/v1/apps/web/sync", params={"cluster": "berlin-1"})
        unknown_app = client.post("/api/v1/apps/nothing/sync")
        unknown_cluster = client.post("/api/v1/apps/web/sync", params={"cluster": "nowhere"})
    assert (everywhere.status_code, everywhere.json()["queued"]) == (202, True)
    assert one.status_code == 202
    assert unknown_app.status_code == 404
    assert unknown_cluster.status_code == 404
    assert served.triggers.apps == [("web", "user", None), ("web", "user", "berlin-1")]
    assert served.triggers.actors == ["tests", "tests"], "the token's name"


def test_refresh_queues_a_fetch(served: Served) -> None:
    with served.api() as client:
        ok = client.post("/api/v1/repos/retail/refresh")
        unknown = client.post("/api/v1/repos/nothing/refresh")
    assert ok.status_code == 202
    assert unknown.status_code == 404
    assert served.triggers.repos == [("retail", "user", None)]


def test_health_and_readiness(served: Served) -> None:
    with served.client() as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        assert client.get("/readyz").status_code == 200
        served.triggers.is_ready = False
        not_ready = client.get("/readyz")
        assert (not_ready.status_code, not_ready.json()) == (503, {"ready": False})


def test_metrics_are_served_without_a_token(served: Served) -> None:
    metrics = served.app.state.metrics
    metrics.observe_sync(
        app="web",
        cluster="berlin-1",
        seconds=0.4,
        counts={"created": 2, "unchanged": 3},
        error_class="ApplyError",
    )
    metrics.set_cluster_reachable("berlin-1", True)
    metrics.set_cluster_reachable("lab-1", False)
    served.triggers.depth = 7
    with served.client() as client:
        response = client.get("/metrics")
    assert response.status_code == 200
    text = response.text
    for name in (
        "appflow_reconcile_duration_seconds_bucket",
        "appflow_queue_depth",
        "appflow_applies_total",
        "appflow_errors_total",
        "appflow_webhook_deliveries_total",
        "appflow_cluster_reachable",
    ):
        assert f"# TYPE {name.removesuffix('_bucket').removesuffix('_total')}" in text, name
    assert "appflow_queue_depth 7.0" in text
    assert 'appflow_applies_total{action="created"} 2.0' in text
    assert 'appflow_errors_total{class="ApplyError"} 1.0' in text
    assert 'appflow_cluster_reachable{cluster="lab-1"} 0.0' in text
    assert 'appflow_reconcile_duration_seconds_count{app="web",cluster="berlin-1"} 1.0' in text


def test_unknown_routes_answer_json(served: Served) -> None:
    with served.api() as client:
        response = client.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert response.json() == {"error": "Not Found", "hint": None}


def test_the_openapi_document_is_served(served: Served) -> None:
    with served.client() as client:
        document = client.get("/openapi.json").json()
    paths = document["paths"]
    for path in ("/hooks/github", "/hooks/generic", "/api/v1/status", "/api/v1/apps/{name}/sync"):
        assert path in paths
    assert document["components"]["securitySchemes"]["token"]["scheme"] == "bearer"
    status = paths["/api/v1/status"]["get"]["responses"]
    assert status["401"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorBody")
