"""Git repository URLs as identities: one key per repository, and URLs safe to print.

Pure: no I/O. The git adapter keys its mirror cache on ``normalize_repo_url`` and
webhooks match pushes to repositories with it, so every spelling of one repository
(HTTPS with or without ``.git``, ``ssh://``, scp-like ``git@host:org/repo``, a
trailing slash) must give the same key. ``redact_url`` strips credentials that a
user may have written into a URL, so that no message or log line carries them.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from appflow.errors import ConfigError, Where

# scp-like syntax git accepts: [user@]host:path, where host has no slash and the
# path does not start with '/' after a '//' (that would be a URL).
_SCP_LIKE = re.compile(r"^(?:(?P<user>[^@/]+)@)?(?P<host>[^:/]+):(?!//)(?P<path>.*)$")
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


def normalize_repo_url(url: str) -> str:
    """Reduce a repository URL to one key: ``host/org/repo``.

    The scheme, user, password, port, a trailing ``.git`` and trailing slashes are
    dropped and the host is lowercased, so ``https://Git.example.com/org/repo.git``,
    ``ssh://git@git.example.com:22/org/repo`` and ``git@git.example.com:org/repo.git``
    are one repository. The port is dropped on purpose: one server usually serves
    HTTPS and SSH on different ports. Local repositories (``file://`` URLs and
    plain paths) keep their absolute path as the key, without ``.git``.
    """
    text = url.strip()
    if not text:
        raise ConfigError("the repository URL is empty", where=Where(field="url"))
    if _SCHEME.match(text):
        parts = urlsplit(text)
        scheme = parts.scheme.lower()
        if scheme == "file":
            return _strip_repo_suffix(_local_path(parts.netloc, parts.path))
        host = (parts.hostname or "").lower()
        if not host:
            raise ConfigError(
                f"the repository URL {redact_url(text)!r} has no host",
                where=Where(field="url"),
                hint="write it as https://host/org/repo or git@host:org/repo",
            )
        path = parts.path
        # ssh://host/~user/repo is a path relative to that user's home, as in git.
        return _strip_repo_suffix(f"{host}/{path.lstrip('/')}")
    match = _SCP_LIKE.match(text)
    if match and not text.startswith("/"):
        host = match.group("host").lower()
        return _strip_repo_suffix(f"{host}/{match.group('path').lstrip('/')}")
    return _strip_repo_suffix(text)


def _local_path(netloc: str, path: str) -> str:
    # file://localhost/srv/repo and file:///srv/repo name the same folder.
    if netloc and netloc.lower() != "localhost":
        return f"//{netloc}{path}"
    return path


def _strip_repo_suffix(key: str) -> str:
    key = key.rstrip("/")
    if key.endswith(".git"):
        key = key[: -len(".git")].rstrip("/")
    return key


def redact_url(url: str) -> str:
    """The URL without a password or token written into it (``https://user:***@host/...``)."""
    if not _SCHEME.match(url):
        return url
    parts = urlsplit(url)
    if parts.password is None and not (parts.username and parts.scheme.startswith("http")):
        return url
    # Over HTTP(S) a lone user part is often a token (https://TOKEN@github.com/...).
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = "***" if parts.password is None else f"{parts.username}:***"
    return parts._replace(netloc=f"{user}@{host}").geturl()


def is_local_url(url: str) -> bool:
    """True for file:// URLs and plain paths, which need no network and no credentials."""
    if url.startswith("file://"):
        return True
    if _SCHEME.match(url):
        return False
    return url.startswith(("/", "./", "../")) or not _SCP_LIKE.match(url)


def is_ssh_url(url: str) -> bool:
    """True for ssh:// URLs and scp-like ``[user@]host:path``: reached over SSH, with keys."""
    if url.startswith(("ssh://", "git+ssh://")):
        return True
    return not _SCHEME.match(url) and not is_local_url(url)


def is_http_url(url: str) -> bool:
    """True for http:// and https:// URLs: reached over HTTP, with a token or a password."""
    return url.startswith(("https://", "http://"))
