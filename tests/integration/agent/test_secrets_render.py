"""Rendering on the edge (``renderOn: agent``) without a cluster: repos-example/secure-mqtt's
render inputs, as the hub ships them, rendered by the agent's code with the real helm and sops;
a wrong key and a tampered ciphertext are errors naming the file, without plaintext."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from appflow.agent.render import EdgeSecrets, render_on_edge
from appflow.engine.desired import render_request
from appflow.engine.render_inputs import inputs_objects, read_inputs
from appflow.engine.secrets import SecretsStage
from appflow.errors import DecryptionError
from appflow.model.appdef import AppDefinition, from_appflow_document
from appflow.model.capabilities import Capabilities
from appflow.model.targeting import ClusterInfo
from appflow.render.types import RenderRequest
from appflow.secrets import age
from tests.helpers import built_tool

EXAMPLES = Path(__file__).resolve().parents[3] / "repos-example"
TEST_KEY = EXAMPLES / "secure-mqtt" / "TEST-ONLY-age-key.txt"
PASSWORD = "bridge-pw-TESTONLY-5b1c9e"


def definition_of(root: Path, folder: str, kind: Any) -> AppDefinition:
    doc = yaml.safe_load((root / folder / "appflow.yaml").read_text())
    return from_appflow_document(doc, path=folder, file=f"{folder}/appflow.yaml", default_kind=kind)


def request_of(root: Path, definition: AppDefinition) -> RenderRequest:
    return render_request(
        definition,
        repo_root=root,
        source_digest="test",
        cluster=ClusterInfo(name="site-1", labels={}),
        groups={},
        capabilities=Capabilities(kube_version="v1.31.0"),
    )


def shipped(root: Path, folder: str, kind: Any) -> list[dict[str, Any]]:
    """What the hub records for a pull cluster: the app's render inputs (after checking, as
    the hub does, that it has encrypted inputs)."""
    definition = definition_of(root, folder, kind)
    request = request_of(root, definition)
    assert asyncio.run(SecretsStage().encrypted_inputs(definition, request))
    return inputs_objects(request, definition)


def key() -> age.Identity:
    return age.parse_identities(TEST_KEY.read_text())[0]


def render(inputs: list[dict[str, Any]], identity: age.Identity | None, app: str) -> Any:
    return asyncio.run(
        render_on_edge(inputs, secrets=EdgeSecrets(identity), cluster="site-1", app=app)
    )


@pytest.fixture
def examples(tmp_path: Path) -> Path:
    built_tool("sops")
    built_tool("helm")
    root = tmp_path / "repo"
    shutil.copytree(EXAMPLES / "secure-mqtt", root / "secure-mqtt")
    return root


def test_encrypted_helm_values_are_rendered_on_the_edge_with_its_key(examples: Path) -> None:
    inputs = shipped(examples, "secure-mqtt/bridge", "helm")
    # Ciphertext as committed: the hub's record holds no plaintext.
    assert PASSWORD not in json.dumps(inputs)
    header, files = read_inputs(inputs)
    assert "secure-mqtt/bridge/values-cloud.sops.yaml" in dict(files)
    assert header["request"]["valuesFiles"] == ["secure-mqtt/bridge/values-cloud.sops.yaml"]

    revealed = render(inputs, key(), "secure-bridge")
    secret = next(o for o in revealed.objects if o["kind"] == "Secret")
    assert f"remote_password {PASSWORD}" in secret["stringData"]["mosquitto.conf"]
    assert secret["metadata"]["namespace"] == "secure-mqtt-bridge"
    # What the agent records and reports of them is redacted.
    assert revealed.redactor is not None
    assert PASSWORD not in json.dumps(revealed.redactor.redact(secret))


def test_an_encrypted_password_file_is_rendered_on_the_edge(examples: Path) -> None:
    inputs = shipped(examples, "secure-mqtt/broker", "yaml")
    revealed = render(inputs, key(), "secure-broker")
    secret = next(o for o in revealed.objects if o["kind"] == "Secret")
    text = (
        secret.get("stringData", {}).get("passwords")
        or base64.b64decode(secret["data"]["passwords"]).decode()
    )
    assert text.startswith("sensor-01:$7$101$TESTONLYsalt0001$")


def test_a_cluster_without_the_key_gets_the_file_and_its_recipients_named(
    examples: Path,
) -> None:
    inputs = shipped(examples, "secure-mqtt/bridge", "helm")
    with pytest.raises(DecryptionError) as caught:
        render(inputs, age.generate(), "secure-bridge")
    message = str(caught.value)
    assert "values-cloud.sops.yaml" in message
    assert key().recipient in message
    assert "site-1" in message
    assert "secure-bridge" in message
    assert PASSWORD not in message


def test_a_tampered_ciphertext_is_refused_naming_the_file(examples: Path) -> None:
    values = examples / "secure-mqtt" / "bridge" / "values-cloud.sops.yaml"
    doc = yaml.safe_load(values.read_text())
    # Another value's ciphertext in place of the password's: sops's MAC no longer matches.
    doc["cloud"]["password"] = doc["cloud"]["username"]
    values.write_text(yaml.safe_dump(doc, sort_keys=False))
    inputs = shipped(examples, "secure-mqtt/bridge", "helm")
    with pytest.raises(DecryptionError) as caught:
        render(inputs, key(), "secure-bridge")
    message = str(caught.value)
    assert "values-cloud.sops.yaml" in message
    assert PASSWORD not in message


def test_render_inputs_cannot_write_outside_their_folder(examples: Path) -> None:
    from appflow.errors import ContentError

    inputs = shipped(examples, "secure-mqtt/bridge", "helm")
    inputs[1] = {**inputs[1], "metadata": {"name": "../../etc/evil"}}
    with pytest.raises(ContentError, match="outside their folder"):
        read_inputs(inputs)
