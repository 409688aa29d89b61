"""A private, throw-away redis-server subprocess on a free loopback port.

The CLI starts one when no Redis URL is configured, and the tests start one per session. It keeps
nothing on disk (no RDB, no AOF): it is a scratch server, not the production setup (docs/queue.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType


def find_redis_server() -> str | None:
    """Path of the redis-server executable on PATH, or None when it is not installed."""
    return shutil.which("redis-server")


def free_port() -> int:
    """A loopback port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pings(port: int, timeout: float = 0.5) -> bool:
    """True when a Redis server on 127.0.0.1:port answers PING with PONG."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServerProcess:
    """One redis-server subprocess bound to 127.0.0.1, without persistence.

    Use it as a context manager (sync or async) or call start()/stop(). kill() and restart() exist
    for fault tests: restart() brings the server back on the same port, empty.
    """

    def __init__(
        self,
        executable: str | None = None,
        port: int | None = None,
        startup_timeout: float = 10.0,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        """Prepare (not start) a server; port None picks a free one at the first start."""
        self._executable = executable
        self._port = port
        self._startup_timeout = startup_timeout
        self._extra_args = extra_args
        self._proc: subprocess.Popen[bytes] | None = None
        self._dir: Path | None = None

    @property
    def port(self) -> int:
        """The TCP port; only known once the server has started."""
        if self._port is None:
            raise RuntimeError("redis-server has not been started")
        return self._port

    @property
    def url(self) -> str:
        """redis:// URL of logical database 0."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        """True while the subprocess is alive."""
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> RedisServerProcess:
        """Start the server and wait until it answers PING; returns self."""
        if self.running:
            return self
        executable = self._executable or find_redis_server()
        if executable is None:
            raise FileNotFoundError("redis-server is not installed; run scripts/setup.sh")
        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix="poster-redis-"))
        # A port chosen here can be taken by someone else before redis binds it: try a few.
        attempts = 1 if self._port is not None else 5
        last_error = ""
        for _ in range(attempts):
            port = self._port if self._port is not None else free_port()
            error = self._spawn(executable, port)
            if not error:
                self._port = port
                return self
            last_error = error
        raise RuntimeError(f"redis-server did not start: {last_error}")

    def _spawn(self, executable: str, port: int) -> str:
        """Run redis-server on port; returns "" once it answers, else why it did not."""
        assert self._dir is not None
        log_path = self._dir / "redis.log"
        args = [
            executable,
            "--port", str(port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self._dir),
            "--logfile", str(log_path),
            *self._extra_args,
        ]  # fmt: skip
        self._proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + self._startup_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                break
            if _pings(port):
                return ""
            time.sleep(0.02)
        self._terminate(signal_kill=True)
        log = log_path.read_text(errors="replace")[-2000:] if log_path.exists() else ""
        return f"port {port}: {log.strip() or 'no answer to PING'}"

    def _terminate(self, signal_kill: bool) -> None:
        """End the subprocess (SIGKILL or SIGTERM) and reap it."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            if signal_kill:
                self._proc.kill()
            else:
                self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None

    def kill(self) -> None:
        """SIGKILL the server, as a crash would; the port and scratch directory are kept."""
        self._terminate(signal_kill=True)

    def restart(self) -> None:
        """Kill the server (if alive) and start it again on the same port, with no data."""
        self.kill()
        self.start()

    def stop(self) -> None:
        """Stop the server and remove its scratch directory."""
        self._terminate(signal_kill=False)
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    async def astart(self) -> RedisServerProcess:
        """start() off the event loop (it waits for PING)."""
        return await asyncio.to_thread(self.start)

    async def astop(self) -> None:
        """stop() off the event loop."""
        await asyncio.to_thread(self.stop)

    async def arestart(self) -> None:
        """restart() off the event loop."""
        await asyncio.to_thread(self.restart)

    def __enter__(self) -> RedisServerProcess:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    async def __aenter__(self) -> RedisServerProcess:
        return await self.astart()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.astop()

    def __del__(self) -> None:
        # Last resort so an abandoned object does not leave a server behind.
        with contextlib.suppress(Exception):
            self._terminate(signal_kill=True)
