"""Real git repositories and real git servers for the git source tests.

- ``Origin``: a bare repository built with pygit2, with helpers to commit and tag;
- ``GitHttpServer``: git's own ``http-backend`` run as CGI behind a threaded HTTP
  server on 127.0.0.1, with optional Basic auth and optional TLS (a certificate for
  127.0.0.1 from a CA of its own, see ``TlsFiles``); it records the requests it served
  so tests can tell a ref listing from a fetch;
- ``SshServer``: Debian's ``sshd`` on a loopback port with a fresh host key and one
  authorized user key (skipped when ``/usr/sbin/sshd`` is not installed); started again
  on the same port it has a new host key, as a reinstalled server has.
"""

from __future__ import annotations

import base64
import contextlib
import getpass
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pygit2
from pygit2.enums import FileMode, ObjectType

SSHD = "/usr/sbin/sshd"


class Origin:
    """A bare repository that tests commit to directly, as a push would."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.repo = pygit2.init_repository(str(path), bare=True, initial_head="main")
        self._clock = 1_700_000_000

    def commit(
        self,
        files: dict[str, str | bytes | None],
        *,
        branch: str = "main",
        message: str = "change",
        executable: frozenset[str] = frozenset(),
        symlinks: dict[str, str] | None = None,
    ) -> str:
        """Commit on ``branch``: each file's new content, or None to delete it."""
        ref = f"refs/heads/{branch}"
        existing = self.repo.references.get(ref)
        parents = []
        index = pygit2.Index()
        if existing is not None:
            parent = existing.peel(pygit2.Commit)
            parents.append(parent.id)
            index.read_tree(parent.tree)
        for path, content in files.items():
            if content is None:
                index.remove(path)
                continue
            data = content.encode() if isinstance(content, str) else content
            mode = FileMode.BLOB_EXECUTABLE if path in executable else FileMode.BLOB
            index.add(pygit2.IndexEntry(path, self.repo.create_blob(data), mode))
        for path, target in (symlinks or {}).items():
            index.add(
                pygit2.IndexEntry(path, self.repo.create_blob(target.encode()), FileMode.LINK)
            )
        tree = index.write_tree(self.repo)
        self._clock += 60
        who = pygit2.Signature("Test", "test@example.com", self._clock, 0)
        return str(self.repo.create_commit(ref, who, who, message, tree, parents))

    def tag(self, name: str, commit: str, *, annotated: bool = False) -> None:
        if annotated:
            who = pygit2.Signature("Test", "test@example.com", self._clock, 0)
            self.repo.create_tag(
                name, pygit2.Oid(hex=commit), ObjectType.COMMIT, who, f"release {name}"
            )
        else:
            self.repo.references.create(f"refs/tags/{name}", pygit2.Oid(hex=commit))

    def head(self, branch: str = "main") -> str:
        return str(self.repo.references[f"refs/heads/{branch}"].peel(pygit2.Commit).id)


# --------------------------------------------------------------------------- HTTP


@dataclass(frozen=True)
class TlsFiles:
    """A CA of its own and a serving certificate for 127.0.0.1 it signed (PEM files)."""

    ca: Path
    cert: Path
    key: Path

    @classmethod
    def create(cls, folder: Path) -> TlsFiles:
        from appflow.sandbox.pki import create_pki

        pki = create_pki(folder, cluster="git-https")
        return cls(ca=pki.ca_cert, cert=pki.serving_cert, key=pki.serving_key)


@dataclass
class GitHttpServer:
    """git http-backend behind a threaded HTTP server; Basic auth when users are set,
    HTTPS when TLS files are given."""

    project_root: Path
    users: dict[str, str] = field(default_factory=dict)
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)
    port: int = 0
    tls: TlsFiles | None = None

    def url(self, path: str) -> str:
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}/{path}"

    def uploads(self) -> int:
        """How many fetches (POSTs to git-upload-pack, which send objects) were served."""
        return sum(
            1
            for method, path, _ in self.requests
            if method == "POST" and path.endswith("/git-upload-pack")
        )


def _handler(server_state: GitHttpServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # quiet test output
            pass

        def do_GET(self) -> None:
            self._serve()

        def do_POST(self) -> None:
            self._serve()

        def _body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                    if size == 0:
                        self.rfile.readline()
                        break
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
                return b"".join(chunks)
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _serve(self) -> None:
            body = self._body() if self.command == "POST" else b""
            path, _, query = self.path.partition("?")
            user = self._authenticated_user()
            server_state.requests.append((self.command, path, user))
            if server_state.users and user is None:
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="git"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            env = {
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "GIT_PROJECT_ROOT": str(server_state.project_root),
                "GIT_HTTP_EXPORT_ALL": "1",
                "PATH_INFO": path,
                "QUERY_STRING": query,
                "REQUEST_METHOD": self.command,
                "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                "CONTENT_LENGTH": str(len(body)),
                "REMOTE_ADDR": self.client_address[0],
                "REMOTE_USER": user or "",
                "GATEWAY_INTERFACE": "CGI/1.1",
                "SERVER_PROTOCOL": "HTTP/1.1",
            }
            for header, var in (
                ("Content-Encoding", "HTTP_CONTENT_ENCODING"),
                ("Git-Protocol", "HTTP_GIT_PROTOCOL"),
            ):
                if self.headers.get(header):
                    env[var] = self.headers[header]
            result = subprocess.run(
                ["git", "http-backend"], input=body, env=env, capture_output=True, check=False
            )
            # CGI output: headers, a blank line, the body.
            separator = b"\r\n\r\n" if b"\r\n\r\n" in result.stdout else b"\n\n"
            head, _, payload = result.stdout.partition(separator)
            status = 200
            headers: list[tuple[str, str]] = []
            for line in head.decode("latin-1").splitlines():
                name, _, value = line.partition(":")
                if name.lower() == "status":
                    status = int(value.strip().split()[0])
                elif name:
                    headers.append((name, value.strip()))
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def _authenticated_user(self) -> str | None:
            header = self.headers.get("Authorization", "")
            if not header.startswith("Basic "):
                return None
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            if server_state.users.get(user) == password:
                return user
            return None

    return Handler


@contextlib.contextmanager
def serve_http(state: GitHttpServer) -> Iterator[GitHttpServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    if state.tls is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(state.tls.cert, state.tls.key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, name="git-http", daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# ---------------------------------------------------------------------------- SSH


@dataclass
class SshServer:
    port: int
    user: str
    known_hosts: Path
    user_key: Path
    other_key: Path
    """A key the server does not accept."""

    def url(self, repo: Path) -> str:
        return f"ssh://{self.user}@127.0.0.1:{self.port}{repo}"


def _keygen(path: Path) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "test", "-f", str(path)], check=True
    )


@contextlib.contextmanager
def start_sshd(
    folder: Path, *, port: int | None = None, user_key: Path | None = None
) -> Iterator[SshServer]:
    """sshd on a free loopback port (or PORT), accepting one user key (USER_KEY, else a
    generated one), with a host key of its own; stopped on exit."""
    folder.mkdir()
    for name in ("host_key", "user_key", "other_key"):
        _keygen(folder / name)
    if user_key is not None:
        shutil.copy(user_key, folder / "user_key")
        shutil.copy(f"{user_key}.pub", folder / "user_key.pub")
    shutil.copy(folder / "user_key.pub", folder / "authorized_keys")
    port = port or closed_port()
    config = folder / "sshd_config"
    config.write_text(
        "\n".join(
            [
                f"Port {port}",
                "ListenAddress 127.0.0.1",
                f"HostKey {folder / 'host_key'}",
                f"AuthorizedKeysFile {folder / 'authorized_keys'}",
                "StrictModes no",
                "PermitRootLogin prohibit-password",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "UsePAM no",
                "PidFile none",
                "LogLevel VERBOSE",
                "",
            ]
        )
    )
    # sshd refuses to start without its privilege-separation folder.
    Path("/run/sshd").mkdir(parents=True, exist_ok=True)
    log = (folder / "sshd.log").open("wb")
    process = subprocess.Popen(
        [SSHD, "-f", str(config), "-D", "-e"], stdout=log, stderr=subprocess.STDOUT
    )
    try:
        _wait_for_banner(port, process, folder / "sshd.log")
        host_key = (folder / "host_key.pub").read_text().split()
        known_hosts = folder / "known_hosts"
        known_hosts.write_text(f"[127.0.0.1]:{port} {host_key[0]} {host_key[1]}\n")
        yield SshServer(
            port, getpass.getuser(), known_hosts, folder / "user_key", folder / "other_key"
        )
    finally:
        process.terminate()
        process.wait()
        log.close()


def _wait_for_banner(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    # Readiness only: the test asserts nothing about how long this takes.
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"sshd exited: {log.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                if sock.recv(64).startswith(b"SSH-"):
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"sshd did not start: {log.read_text()}")
