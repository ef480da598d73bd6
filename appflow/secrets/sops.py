"""The sops binary, driven in memory: ciphertext in on stdin, plaintext out on stdout.

The only module that runs sops. Identities reach sops in its environment
(``SOPS_AGE_KEY``), never on its command line or in a file. sops runs in an
empty home folder with ``--config /dev/null``, so that nothing but what appflow
passes can take part: not the operator's ``~/.config/sops/age/keys.txt``, not
``~/.ssh/id_ed25519`` (sops tries both by default), not a ``.sops.yaml`` found
above the working folder. A cluster without the key therefore fails here exactly
as it would on its own.

sops's exit codes say what went wrong; each maps to a DecryptionError in
appflow's words. sops's own stderr is not passed on: a failure to decrypt has
no plaintext to leak, but its text is written for sops users (it names
locations appflow does not use) and a MAC mismatch prints a digest of the
plaintext.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Sequence
from pathlib import Path

from appflow.errors import DecryptionError, Where
from appflow.model.sops import SopsFormat
from appflow.paths import cache_dir
from appflow.secrets.age import Identity
from appflow.tools import find_tool

TIMEOUT = 60.0

# cmd/sops/codes in github.com/getsops/sops/v3.
_DECRYPT_TREE = (24, 25)
_MAC_MISMATCH = 51
_MAC_NOT_FOUND = 52
_NO_KEY = 128
_ALREADY_ENCRYPTED = 203
_LINE = re.compile(r"\bline (\d+)")


def _home() -> Path:
    """An empty folder of appflow's own for sops's HOME and working folder."""
    home = cache_dir() / "sops-home"
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    return home


async def _run(
    args: Sequence[str], content: bytes, *, identities: Sequence[Identity] = ()
) -> tuple[int, bytes, str]:
    sops = find_tool("sops")
    home = _home()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home),
        "GNUPGHOME": str(home),
        "SOPS_DISABLE_VERSION_CHECK": "1",
    }
    if identities:
        env["SOPS_AGE_KEY"] = "\n".join(i.secret for i in identities)
    proc = await asyncio.create_subprocess_exec(
        str(sops),
        "--config",
        os.devnull,
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=home,
        env=env,
    )
    try:
        async with asyncio.timeout(TIMEOUT):
            stdout, stderr = await proc.communicate(content)
    except (TimeoutError, asyncio.CancelledError):
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise
    return proc.returncode or 0, stdout, stderr.decode(errors="replace")


def _types(fmt: SopsFormat) -> list[str]:
    return ["--input-type", fmt, "--output-type", fmt]


async def decrypt(
    content: bytes,
    *,
    file: str,
    fmt: SopsFormat,
    identities: Sequence[Identity],
    recipients: Sequence[str],
    holder: str,
) -> bytes:
    """The plaintext of CONTENT (the file FILE, as sops wrote it), checked against its MAC.

    HOLDER says whose identities these are (``cluster berlin-1``), for errors;
    RECIPIENTS, whom the file is encrypted for.
    """
    code, out, err = await _run(
        ["decrypt", *_types(fmt), "/dev/stdin"], content, identities=identities
    )
    if code == 0:
        return out
    raise _decrypt_error(code, err, file=file, recipients=recipients, holder=holder)


def _decrypt_error(
    code: int, stderr: str, *, file: str, recipients: Sequence[str], holder: str
) -> DecryptionError:
    where = Where(file=file)
    listed = ", ".join(recipients) or "no recipient appflow can read"
    if code == _NO_KEY:
        return DecryptionError(
            f"cannot decrypt: {holder} holds no age identity for this file, which is encrypted for {listed}",
            where=where,
            hint="add the key with `appflow secret key add`, or re-encrypt the file for the "
            "cluster with `appflow secret encrypt`",
        )
    if code == _MAC_MISMATCH:
        return DecryptionError(
            "the file does not match its MAC: it was changed after it was encrypted "
            "(edited without sops, or tampered with); nothing from it is used",
            where=where,
            hint="edit SOPS files with sops, or encrypt the file again",
        )
    if code == _MAC_NOT_FOUND:
        return DecryptionError("the file's SOPS metadata has no MAC", where=where)
    if code in _DECRYPT_TREE:
        return DecryptionError(
            "an encrypted value of the file does not decrypt: its ciphertext was altered",
            where=where,
            hint="restore the file from history, or encrypt it again",
        )
    if "metadata not found" in stderr:
        return DecryptionError(
            "the file is not SOPS-encrypted (it has no sops metadata)", where=where
        )
    line = _LINE.search(stderr)
    if line:
        return DecryptionError(
            "the file is not valid: sops cannot parse it",
            where=Where(file=file, line=int(line.group(1))),
        )
    return DecryptionError(
        f"sops could not decrypt the file (sops exit status {code})",
        where=where,
        hint="check that it was written by sops and is not truncated",
    )


async def encrypt(
    content: bytes,
    *,
    file: str,
    fmt: SopsFormat,
    recipients: Sequence[str],
    encrypted_regex: str | None = None,
) -> bytes:
    """CONTENT encrypted for exactly RECIPIENTS (age), with a fresh data key."""
    if not recipients:
        raise DecryptionError("no recipients to encrypt for", where=Where(file=file))
    args = ["encrypt", *_types(fmt), "--age", ",".join(recipients)]
    if encrypted_regex:
        args += ["--encrypted-regex", encrypted_regex]
    code, out, err = await _run([*args, "/dev/stdin"], content)
    if code == 0:
        return out
    if code == _ALREADY_ENCRYPTED or "already encrypted" in err:
        raise DecryptionError(
            "the file is already SOPS-encrypted",
            where=Where(file=file),
            hint="to change whom it is encrypted for, use `appflow secret rotate`",
        )
    line = _LINE.search(err)
    raise DecryptionError(
        f"sops could not encrypt the file (sops exit status {code})",
        where=Where(file=file, line=int(line.group(1)) if line else None),
        hint="check that it is valid " + fmt.upper() if fmt != "binary" else None,
    )


async def rotate(
    content: bytes,
    *,
    file: str,
    fmt: SopsFormat,
    identities: Sequence[Identity],
    recipients: Sequence[str],
    add: Sequence[str],
    remove: Sequence[str],
    holder: str,
) -> bytes:
    """CONTENT re-encrypted under a new data key, for its recipients + ADD - REMOVE.

    sops decrypts it with IDENTITIES first (the MAC is checked), so a file
    nobody here can read is refused rather than rewritten.
    """
    args = ["rotate", *_types(fmt)]
    if add:
        args += ["--add-age", ",".join(add)]
    if remove:
        args += ["--rm-age", ",".join(remove)]
    code, out, err = await _run([*args, "/dev/stdin"], content, identities=identities)
    if code == 0:
        return out
    raise _decrypt_error(code, err, file=file, recipients=recipients, holder=holder)
