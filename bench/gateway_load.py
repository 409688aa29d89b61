"""Status reads through one gateway process at fixed request rates, on loopback. Prints JSON.

Processes: a redis-server, `poster-layers up` (the mesh, on free ports), and the gateway under
test (`python -m gateway`, one process, with its access log on). This process is the load
generator: an open loop (requests leave on schedule whether or not earlier ones have answered,
and latency counts from the scheduled time, so a stalled server cannot hide its queue) over
keep-alive connections, with httptools parsing the answers.

Each rate runs for --seconds, --repeats times; the medians are reported. A rate is held when
the median p99 is under 50 ms, every answer was 200, and at least 95% of the requests were
sent on time. Modes: the status of a finished job (served from the gateway's cache), the same
with that cache off (every read goes to ingest and Redis), and /healthz as the floor.

    .venv/bin/python -m bench.gateway_load [--seconds 2] [--repeats 3] [--rates 250,500,...]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httptools
import httpx
import uvloop

from services.common.redis_server import RedisServerProcess, free_port

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "samples" / "poster.png"
P99_TARGET_MS = 50.0
CONNECTIONS = 64


class Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection that sends one canned request at a time."""

    def __init__(self, request: bytes) -> None:
        self.request = request
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[int] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_message_complete(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(self.parser.get_status_code())

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("the gateway closed the connection"))

    async def send(self) -> int:
        self.waiter = asyncio.get_running_loop().create_future()
        assert self.transport is not None
        self.transport.write(self.request)
        return await self.waiter


async def open_pool(port: int, request: bytes) -> asyncio.Queue[Connection]:
    loop = asyncio.get_running_loop()
    idle: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(CONNECTIONS):
        _, protocol = await loop.create_connection(lambda: Connection(request), "127.0.0.1", port)
        idle.put_nowait(protocol)
    return idle


async def run_rate(port: int, request: bytes, rate: float, seconds: float) -> dict:
    """Sends rate x seconds requests on schedule; latency in ms from each request's scheduled time."""
    idle = await open_pool(port, request)
    latencies: list[float] = []
    errors = 0
    late = 0
    total = int(rate * seconds)

    async def one(scheduled: float) -> None:
        nonlocal errors
        connection = await idle.get()
        try:
            status = await connection.send()
        except ConnectionError:
            errors += 1
            return
        idle.put_nowait(connection)
        latencies.append((time.perf_counter() - scheduled) * 1000)
        if status != 200:
            errors += 1

    tasks = []
    start = time.perf_counter() + 0.05
    for i in range(total):
        scheduled = start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        elif delay < -0.010:
            late += 1  # the generator itself fell behind by more than 10 ms
        tasks.append(asyncio.create_task(one(scheduled)))
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=30)
    elapsed = time.perf_counter() - start
    while not idle.empty():
        connection = idle.get_nowait()
        if connection.transport is not None:
            connection.transport.close()
    latencies.sort()
    return {
        "rate": rate,
        "sent": total,
        "achieved_rps": round(len(latencies) / elapsed, 1),
        "p50_ms": round(latencies[len(latencies) // 2], 2),
        "p99_ms": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))], 2),
        "errors": errors,
        "on_time_fraction": round(1 - late / total, 3),
    }


async def sweep(port: int, path: str, cookie: str, rates: list[float], seconds: float, repeats: int) -> dict:
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nCookie: {cookie}\r\n\r\n".encode()
    await run_rate(port, request, 200, 1.0)  # warm-up
    steps = []
    for rate in rates:
        runs = [await run_rate(port, request, rate, seconds) for _ in range(repeats)]
        step = {
            "rate": rate,
            "p50_ms": statistics.median(run["p50_ms"] for run in runs),
            "p99_ms": statistics.median(run["p99_ms"] for run in runs),
            "achieved_rps": statistics.median(run["achieved_rps"] for run in runs),
            "errors": sum(run["errors"] for run in runs),
            "on_time_fraction": min(run["on_time_fraction"] for run in runs),
        }
        step["held"] = step["p99_ms"] < P99_TARGET_MS and step["errors"] == 0 and step["on_time_fraction"] >= 0.95
        steps.append(step)
        if not step["held"]:
            break  # higher rates only queue more
    held = [step["rate"] for step in steps if step["held"]]
    return {"path": path, "steps": steps, "max_rate_held_rps": max(held) if held else 0}


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(args, cwd=REPO, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)


def wait_ready(port: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"nothing ready on port {port} after {timeout} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="length of each run (default 2)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per rate; medians are reported (default 3)")
    parser.add_argument("--rates", default="250,500,1000,1500,2000,3000,4000", help="requests per second to try")
    args = parser.parse_args(argv)
    rates = [float(rate) for rate in args.rates.split(",")]

    with tempfile.TemporaryDirectory(prefix="gateway-load-") as scratch, RedisServerProcess() as redis:
        work = Path(scratch)
        ports = {name: free_port() for name in ("ingest", "decompose", "matting", "describe", "up", "cached", "direct")}
        env = {key: value for key, value in os.environ.items() if not key.startswith("POSTER_")}
        env |= {
            "REDIS_URL": redis.url,
            "POSTER_BLOB_ROOT": f"file://{work / 'blobs'}",
            **{
                f"POSTER_{name.upper()}_PORT": str(ports[name])
                for name in ("ingest", "decompose", "matting", "describe")
            },
            **{
                f"POSTER_{name.upper()}_TARGET": f"127.0.0.1:{ports[name]}"
                for name in ("decompose", "matting", "describe")
            },
            "POSTER_INGEST_TARGET": f"127.0.0.1:{ports['ingest']}",
        }
        processes = [
            start([sys.executable, "-m", "services.cli", "up", "--port", str(ports["up"])], env, work / "up.log")
        ]
        try:
            wait_ready(ports["up"])
            for mode, cache_s in (("cached", "60"), ("direct", "0")):
                gateway_env = env | {
                    "POSTER_GATEWAY_PORT": str(ports[mode]),
                    "POSTER_GATEWAY_TERMINAL_CACHE_S": cache_s,
                }
                processes.append(start([sys.executable, "-m", "gateway"], gateway_env, work / f"gateway-{mode}.log"))
                wait_ready(ports[mode])
            # One finished job, created through the gateway under test by one browser session.
            with httpx.Client(base_url=f"http://127.0.0.1:{ports['cached']}", timeout=60) as client:
                answer = client.post("/api/v1/jobs", files={"file": ("poster.png", SAMPLE.read_bytes())})
                answer.raise_for_status()
                job = answer.json()["jobs"][0]
                cookie = f"poster_session={client.cookies['poster_session']}"
                for _ in range(600):
                    if client.get(job["links"]["self"]).json()["status"] in ("succeeded", "failed", "cancelled"):
                        break
                    time.sleep(0.2)
            status_path = job["links"]["self"]

            async def measure() -> dict:
                return {
                    "status_finished_job_cached": await sweep(
                        ports["cached"], status_path, cookie, rates, args.seconds, args.repeats
                    ),
                    "status_via_ingest_no_cache": await sweep(
                        ports["direct"], status_path, cookie, rates, args.seconds, args.repeats
                    ),
                    "healthz_reference": await sweep(
                        ports["cached"], "/healthz", cookie, rates, args.seconds, args.repeats
                    ),
                }

            results = uvloop.run(measure())
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
    print(
        json.dumps(
            {
                "benchmark": "gateway_load",
                "machine_cores": os.cpu_count(),
                "gateway_processes": 1,
                "p99_target_ms": P99_TARGET_MS,
                "seconds_per_run": args.seconds,
                "repeats": args.repeats,
                "connections": CONNECTIONS,
                "results": results,
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
