"""What a failed helm call is taken for, and what of helm's output the user sees (pure)."""

from __future__ import annotations

import pyhelm3
import pytest

from appflow.errors import ClusterUnreachableError, RenderError, SourceError
from appflow.render.helm import _chart_error, classify_failure, helm_message, split_checksum
from appflow.render.types import HelmChartRef

# What helm v4 printed here for `helm dependency update` of a chart whose
# dependency repository does not resolve: the cause on stdout, a consequence on stderr.
DEP_STDOUT = (
    b"Getting updates for unmanaged Helm repositories...\n"
    b'...Unable to get an update from the "https://charts.does-not-exist.invalid/stable" '
    b"chart repository:\n"
    b'\tGet "https://charts.does-not-exist.invalid/stable/index.yaml": dial tcp: lookup '
    b"charts.does-not-exist.invalid on 10.255.255.53:53: no such host\n"
)
DEP_STDERR = (
    b"Error: no cached repository for helm-manager-0c89 found. (try 'helm repo update'): "
    b"open /cache/repository/helm-manager-0c89-index.yaml: no such file or directory\n"
)
REPO_STDERR = (
    b'Error: looks like "https://charts.does-not-exist.invalid/" is not a valid chart '
    b'repository or cannot be reached: Get "https://charts.does-not-exist.invalid/index.yaml": '
    b"dial tcp: lookup charts.does-not-exist.invalid on 10.255.255.53:53: no such host\n"
)


def test_helm_message_puts_the_cause_printed_on_stdout_first() -> None:
    message = helm_message(pyhelm3.Error(1, DEP_STDOUT, DEP_STDERR))
    lines = message.splitlines()
    assert lines[0] == (
        'Unable to get an update from the "https://charts.does-not-exist.invalid/stable" '
        "chart repository:"
    )
    assert lines[1].endswith("no such host")
    assert lines[2].startswith("no cached repository for helm-manager")
    assert "Getting updates" not in message


@pytest.mark.parametrize(
    ("message", "talks_to_cluster", "kind"),
    [
        (REPO_STDERR.decode(), False, "repository"),
        # The same dial error from a command that also talks to the cluster is still the repo's.
        (REPO_STDERR.decode(), True, "repository"),
        ('Get "https://h.invalid/x-1.0.0.tgz": dial tcp: no such host', False, "repository"),
        ("Kubernetes cluster unreachable: Get https://10.0.0.1:6443/version", True, "cluster"),
        (
            'Get "https://10.0.0.1:6443/api/v1/secrets": dial tcp: connection refused',
            True,
            "cluster",
        ),
        ("dial tcp 10.0.0.1:6443: connect: connection refused", False, "repository"),
        ("http: server gave HTTP response to HTTPS client", False, "plain-http-registry"),
        (
            'chart "web" version "9.9.9" not found in https://r.example repository',
            False,
            "not-found",
        ),
        ("template: web/templates/x.yaml:3:4: executing ...", False, "render"),
    ],
)
def test_classify_failure(message: str, talks_to_cluster: bool, kind: str) -> None:
    assert classify_failure(message, talks_to_cluster=talks_to_cluster) == kind


def test_a_dial_error_naming_the_charts_registry_is_the_registry_even_in_release_mode() -> None:
    message = 'failed to do request: Head "https://r.example:5000/v2/c/manifests/1.0": dial tcp: i/o timeout'
    assert classify_failure(
        message, talks_to_cluster=True, repositories=("oci://r.example:5000/c",)
    ) == ("repository")
    assert classify_failure(message, talks_to_cluster=True) == "cluster"


def test_an_unreachable_repository_is_a_source_error_naming_chart_and_repository() -> None:
    chart = HelmChartRef(repo="https://charts.does-not-exist.invalid/", name="web")
    err = _chart_error(
        pyhelm3.Error(1, b"", REPO_STDERR),
        app="web",
        cluster="edge-1",
        chart=chart.describe(),
        action="template",
        ref=chart,
    )
    assert isinstance(err, SourceError)
    assert not isinstance(err, ClusterUnreachableError)
    text = str(err)
    assert "chart https://charts.does-not-exist.invalid//web" in text
    assert "(repository https://charts.does-not-exist.invalid/" in text
    assert "no such host" in text
    assert "--repository-cache" not in text  # the command line is for --debug only


def test_a_cluster_failure_from_a_server_render_is_the_cluster() -> None:
    err = _chart_error(
        pyhelm3.Error(1, b"", b"Error: Kubernetes cluster unreachable: connection refused\n"),
        app="web",
        cluster="edge-1",
        chart="./chart",
        action="template",
        talks_to_cluster=True,
    )
    assert isinstance(err, ClusterUnreachableError)


def test_a_template_error_keeps_its_place() -> None:
    err = _chart_error(
        pyhelm3.Error(1, b"", b"Error: template: web/templates/cm.yaml:7:20: executing x\n"),
        app="web",
        cluster=None,
        chart="./chart",
        action="template",
    )
    assert isinstance(err, RenderError)
    assert (err.where.file, err.where.line, err.where.column) == ("web/templates/cm.yaml", 7, 20)


def test_go_getter_checksums() -> None:
    digest = "a" * 64
    assert split_checksum(f"https://h/c-1.0.0.tgz?checksum=sha256:{digest}") == (
        "https://h/c-1.0.0.tgz",
        digest,
    )
    assert split_checksum(f"https://h/c.tgz?x=1&checksum={digest}") == (
        "https://h/c.tgz?x=1",
        digest,
    )
    assert split_checksum("https://h/c.tgz") == ("https://h/c.tgz", None)
    with pytest.raises(RenderError, match="is not a sha256"):
        split_checksum("https://h/c.tgz?checksum=md5:abc")
