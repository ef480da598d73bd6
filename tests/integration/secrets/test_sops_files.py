"""Files the real sops CLI writes, read by appflow; and every kind of bad input refused with an
error that names the file and quotes no plaintext. No cluster: the decryption step alone, as
the engine (and later the agent) runs it."""

from __future__ import annotations

import base64
import json
import re
import secrets
from pathlib import Path

import pytest

from appflow.errors import DecryptionError
from appflow.secrets import age
from appflow.secrets.decrypt import decrypt_content, decrypt_manifests, read_sops_file
from tests.integration.secrets.support import new_key, sops_decrypt, sops_encrypt

pytestmark = pytest.mark.tools

SECRET_FIELDS = "^(data|stringData)$"


def manifest(value: str) -> str:
    return f"""apiVersion: v1
kind: Secret
metadata:
  name: db
  namespace: shop
type: Opaque
stringData:
  password: {value}
data:
  token: {base64.b64encode(value.encode()).decode()}
"""


@pytest.fixture
def key(tmp_path: Path) -> age.Identity:
    return new_key(tmp_path, "k")[1]


async def test_whole_file_and_partial_manifests_written_by_sops_are_read(key: age.Identity) -> None:
    value = f"pw-{secrets.token_hex(6)}"
    for regex in (None, SECRET_FIELDS):
        cipher = sops_encrypt(manifest(value), recipients=[key.recipient], encrypted_regex=regex)
        assert value not in cipher
        (obj,) = await decrypt_manifests(
            cipher.encode(), name="secret.yaml", identities=[key], holder="test"
        )
        assert obj["stringData"]["password"] == value
        assert base64.b64decode(obj["data"]["token"]).decode() == value
        assert obj["metadata"] == {"name": "db", "namespace": "shop"}
        assert "sops" not in obj


async def test_json_dotenv_and_multi_document_files_are_read(key: age.Identity) -> None:
    value = f"pw-{secrets.token_hex(6)}"
    as_json = sops_encrypt(
        json.dumps({"db": {"password": value, "port": 5432}}),
        recipients=[key.recipient],
        fmt="json",
    )
    found = await decrypt_content(
        as_json.encode(), name="values.json", identities=[key], holder="t"
    )
    assert found.documents == ({"db": {"password": value, "port": 5432}},)
    assert sorted(map(str, found.tokens.values())) == sorted([value, "5432"])

    as_env = sops_encrypt(
        f"USER=edge\nPASSWORD={value}\n", recipients=[key.recipient], fmt="dotenv"
    )
    found = await decrypt_content(as_env.encode(), name="creds.env", identities=[key], holder="t")
    assert value in found.tokens.values()

    multi = sops_encrypt(
        f"{manifest(value)}---\n{manifest(value + 'x')}", recipients=[key.recipient]
    )
    objects = await decrypt_manifests(multi.encode(), name="two.yaml", identities=[key], holder="t")
    assert [o["stringData"]["password"] for o in objects] == [value, value + "x"]


async def _refused(content: str | bytes, key: age.Identity | None, *secret_values: str) -> str:
    data = content.encode() if isinstance(content, str) else content
    with pytest.raises(DecryptionError) as caught:
        await decrypt_content(
            data,
            name="app/secret.sops.yaml",
            identities=[key] if key else [],
            holder="cluster edge-1",
        )
    text = str(caught.value)
    assert "app/secret.sops.yaml" in text
    for value in secret_values:
        assert value not in text
    return text


async def test_a_changed_value_in_the_clear_is_a_mac_mismatch(key: age.Identity) -> None:
    value = f"pw-{secrets.token_hex(6)}"
    cipher = sops_encrypt(
        manifest(value), recipients=[key.recipient], encrypted_regex=SECRET_FIELDS
    )
    tampered = cipher.replace("name: db", "name: dbx")
    text = await _refused(tampered, key, value)
    assert "does not match its MAC" in text


async def test_an_altered_ciphertext_is_refused(key: age.Identity) -> None:
    value = f"pw-{secrets.token_hex(6)}"
    cipher = sops_encrypt(
        manifest(value), recipients=[key.recipient], encrypted_regex=SECRET_FIELDS
    )
    token = re.search(r"password: (ENC\[AES256_GCM,data:)([A-Za-z0-9+/])", cipher)
    assert token
    flipped = "A" if token.group(2) != "A" else "B"
    tampered = cipher.replace(token.group(0), f"password: {token.group(1)}{flipped}", 1)
    text = await _refused(tampered, key, value)
    assert "does not decrypt" in text


async def test_a_wrong_or_missing_key_names_the_recipients(
    key: age.Identity, tmp_path: Path
) -> None:
    value = f"pw-{secrets.token_hex(6)}"
    cipher = sops_encrypt(manifest(value), recipients=[key.recipient])
    other = new_key(tmp_path, "other")[1]
    for held in (other, None):
        text = await _refused(cipher, held, value)
        assert key.recipient in text
        assert "holds no age identity" in text
        assert "cluster edge-1" in text


async def test_malformed_files_are_refused(key: age.Identity) -> None:
    value = f"pw-{secrets.token_hex(6)}"
    cipher = sops_encrypt(manifest(value), recipients=[key.recipient])
    # Truncated in the middle of its metadata, and not YAML at all.
    cut = cipher[: cipher.index("mac:")]
    text = await _refused(cut, key, value)
    assert "malformed" in text
    text = await _refused(cipher.replace("sops:", "sops: [", 1), key, value)
    assert "malformed" in text


def test_plain_files_are_not_taken_for_encrypted_ones(tmp_path: Path) -> None:
    path = tmp_path / "secret.yaml"
    path.write_text(manifest("plain") + "# sops: not encrypted\n")
    assert read_sops_file(path, "secret.yaml") is None


async def test_what_sops_decrypts_appflow_decrypts_the_same(key: age.Identity) -> None:
    value = f"multi\nline {secrets.token_hex(4)}\n"
    plain = "apiVersion: v1\nkind: Secret\nmetadata: {name: a}\nstringData:\n  file: |\n" + "".join(
        f"    {line}\n" for line in value.splitlines()
    )
    cipher = sops_encrypt(plain, recipients=[key.recipient], encrypted_regex=SECRET_FIELDS)
    (mine,) = await decrypt_manifests(cipher.encode(), name="a.yaml", identities=[key], holder="t")
    assert mine["stringData"]["file"] == value
    assert value.splitlines()[1] in sops_decrypt(cipher, identities=[key])
