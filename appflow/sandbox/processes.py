"""Long-lived local processes of the sandbox: start detached, find, stop.

Each sandbox process is started in its own session so that it outlives the
`appflow sandbox up` command that started it. Every one of them carries its
cluster folder in its command line (data dir, kubeconfig, cert paths), which is
how `down` finds them even when the state file is gone or corrupt: it scans
/proc for command lines that mention the folder, instead of trusting PIDs that
may have been reused.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RunningProcess:
    pid: int
    argv: tuple[str, ...]

    @property
    def name(self) -> str:
        return Path(self.argv[0]).name if self.argv else "?"


def start_detached(
    argv: Sequence[str], *, log_file: Path, env: dict[str, str] | None = None
) -> int:
    """Start ARGV in a new session with stdout and stderr appended to LOG_FILE."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as log:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
            close_fds=True,
        )
    return proc.pid


def _cmdline(pid: int) -> tuple[str, ...]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ()
    return tuple(part.decode(errors="replace") for part in raw.split(b"\0") if part)


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    # The state letter follows the parenthesised command name.
    return stat.rsplit(")", 1)[-1].split()[0] in {"Z", "X"}


def find_processes(marker: str) -> list[RunningProcess]:
    """Every live process whose command line mentions MARKER (a cluster folder)."""
    found: list[RunningProcess] = []
    own = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        if pid == own:
            continue
        argv = _cmdline(pid)
        if argv and any(marker in arg for arg in argv[1:]) and not _is_zombie(pid):
            found.append(RunningProcess(pid=pid, argv=argv))
    return found


def alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _is_zombie(pid)


def _reap(pid: int) -> None:
    # Processes started by this very process must be waited for, or they stay
    # as zombies (and keep looking alive) until we exit.
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def stop_processes(pids: Iterable[int], *, grace: float = 10.0) -> list[int]:
    """SIGTERM, wait up to GRACE seconds, then SIGKILL. Returns the PIDs still alive."""
    targets = [p for p in pids if alive(p)]
    for pid in targets:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        for pid in targets:
            _reap(pid)
        targets = [p for p in targets if alive(p)]
        if not targets:
            return []
        time.sleep(0.1)
    for pid in targets:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        for pid in targets:
            _reap(pid)
        targets = [p for p in targets if alive(p)]
        if not targets:
            break
        time.sleep(0.05)
    return targets


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports(count: int, *, avoid: set[int] | None = None) -> list[int]:
    """COUNT distinct ports on 127.0.0.1 that nothing listens on right now."""
    taken = set(avoid or ())
    ports: list[int] = []
    holders: list[socket.socket] = []
    try:
        while len(ports) < count:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            holders.append(sock)
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
            if port not in taken:
                taken.add(port)
                ports.append(port)
    finally:
        for sock in holders:
            sock.close()
    return ports


def listening_ports(pids: Iterable[int]) -> set[int]:
    """TCP ports on which any of PIDS listens (from /proc/net/tcp*, by socket inode)."""
    inodes: set[str] = set()
    for pid in pids:
        fd_dir = Path(f"/proc/{pid}/fd")
        with contextlib.suppress(OSError):
            for fd in fd_dir.iterdir():
                with contextlib.suppress(OSError):
                    target = os.readlink(fd)
                    if target.startswith("socket:["):
                        inodes.add(target[8:-1])
    ports: set[int] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if len(fields) > 9 and fields[3] == "0A" and fields[9] in inodes:
                    ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports
