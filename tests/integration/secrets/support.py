"""Building blocks of the secrets tests: age keys, files written by the real sops CLI, and the
search for a secret value everywhere appflow keeps or shows something.

Files are encrypted by running the sops binary itself (``sops encrypt --age ...``),
not through appflow's adapter: what appflow must read is what sops writes.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import sqlite3
import subprocess
import zlib
from collections.abc import Iterable
from pathlib import Path

from appflow.secrets import age
from tests.helpers import built_tool

SOPS_HOW = "bash tools/build-tools.sh sops"


def sops_binary() -> Path:
    return built_tool("sops", how=SOPS_HOW)


def new_key(folder: Path, name: str) -> tuple[Path, age.Identity]:
    """A fresh age identity written as age-keygen writes it, mode 0600."""
    identity = age.generate()
    path = folder / f"{name}.agekey"
    path.write_text(age.format_identity_file(identity))
    path.chmod(0o600)
    return path, identity


def _sops(args: list[str], stdin: bytes, *, identities: Iterable[age.Identity] = ()) -> bytes:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": "/nonexistent",
        "SOPS_DISABLE_VERSION_CHECK": "1",
    }
    keys = "\n".join(i.secret for i in identities)
    if keys:
        env["SOPS_AGE_KEY"] = keys
    done = subprocess.run(
        [str(sops_binary()), "--config", os.devnull, *args],
        input=stdin,
        capture_output=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, f"sops {' '.join(args)} failed: {done.stderr.decode()}"
    return done.stdout


def sops_encrypt(
    plain: str,
    *,
    recipients: Iterable[str],
    fmt: str = "yaml",
    encrypted_regex: str | None = None,
) -> str:
    """PLAIN encrypted by the sops CLI for RECIPIENTS (whole file unless ENCRYPTED_REGEX)."""
    args = ["encrypt", "--age", ",".join(recipients), "--input-type", fmt, "--output-type", fmt]
    if encrypted_regex:
        args += ["--encrypted-regex", encrypted_regex]
    return _sops([*args, "/dev/stdin"], plain.encode()).decode()


def sops_decrypt(cipher: str, *, identities: Iterable[age.Identity], fmt: str = "yaml") -> str:
    args = ["decrypt", "--input-type", fmt, "--output-type", fmt, "/dev/stdin"]
    return _sops(args, cipher.encode(), identities=identities).decode()


def forms(secret: str) -> list[str]:
    """How SECRET could appear: as it is, base64-encoded (Secret data), JSON-escaped."""
    found = [secret, base64.b64encode(secret.encode()).decode(), json.dumps(secret)[1:-1]]
    return list(dict.fromkeys(found))


def texts_of_store(path: Path) -> Iterable[tuple[str, str]]:
    """Every value of every row of the SQLite store at PATH (its WAL included), as text;
    compressed BLOBs (the revisions' objects) decompressed."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            for row in db.execute(f'SELECT * FROM "{table}"'):
                for value in row:
                    if isinstance(value, bytes):
                        with contextlib.suppress(zlib.error):
                            value = zlib.decompress(value)
                        value = value.decode(errors="replace")
                    yield table, str(value)
    finally:
        db.close()


def files_under(*folders: Path) -> Iterable[tuple[Path, bytes]]:
    for folder in folders:
        if not folder.exists():
            continue
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                yield path, path.read_bytes()


def places_holding(
    secret: str, *, store: Path, folders: Iterable[Path], texts: dict[str, str]
) -> list[str]:
    """Where SECRET (in any of its forms) is found: store rows, files, or the named TEXTS."""
    wanted = forms(secret)
    found: list[str] = []
    for table, text in texts_of_store(store):
        if any(w in text for w in wanted):
            found.append(f"store table {table}")
    for path, content in files_under(*folders):
        if any(w.encode() in content for w in wanted):
            found.append(f"file {path}")
    for name, text in texts.items():
        if any(w in text for w in wanted):
            found.append(name)
    return sorted(set(found))
