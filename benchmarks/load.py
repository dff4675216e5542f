"""Load test: examples/wsgi_server.py under waitress, with send and with send_parallel.

    python benchmarks/load.py            # 16 clients, 1,600 requests per method
    python benchmarks/load.py --quick    # 16 clients, 320 requests per method

For each dispatch method, starts the example app (five receivers, each a
real HTTP call to a local backend answering in 30 to 100 ms) as a
subprocess serving with waitress on a free port of 127.0.0.1, so that the
load generator does not share its interpreter, then drives it with
``--clients`` concurrent clients, each sending its share of the requests
one after another on its own keep-alive connection. Reports requests per
second and the p50/p99 of the latency clients saw, and the p50 of the time
the signal took inside the server, as a markdown table on stdout. Progress
goes to stderr. Needs waitress.
"""

from __future__ import annotations

import argparse
import http.client
import json
import platform
import signal
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "wsgi_server.py"


@dataclass
class Result:
    method: str
    requests: int
    errors: int
    seconds: float
    latencies_ms: list[float]
    dispatch_ms: list[float]

    def quantile(self, values: list[float], q: float) -> float:
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def start_server(method: str, threads: int) -> tuple[subprocess.Popen[str], int]:
    process = subprocess.Popen(  # noqa: S603 - our own example, with sys.executable
        [
            sys.executable,
            str(EXAMPLE),
            "--port",
            "0",
            "--threads",
            str(threads),
            "--method",
            method,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    line = process.stdout.readline() if process.stdout else ""
    if "127.0.0.1:" not in line:
        process.kill()
        raise SystemExit(f"the example did not start: {line!r}")
    return process, int(line.split("127.0.0.1:")[1].split()[0])


def stop_server(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()


@dataclass
class Sink:
    latencies: list[float] = field(default_factory=list)
    dispatch: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def client(port: int, first: int, count: int, start: threading.Barrier, sink: Sink) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        start.wait()
        for order_id in range(first, first + count):
            sent = time.perf_counter()
            connection.request("GET", f"/orders/{order_id}")
            response = connection.getresponse()
            body = response.read()
            sink.latencies.append((time.perf_counter() - sent) * 1000)
            if response.status != 200:
                sink.errors.append(f"{response.status}: {body[:200]!r}")
                continue
            sink.dispatch.append(float(json.loads(body)["dispatch_ms"]))
    except Exception as exc:  # noqa: BLE001 - counted and reported
        sink.errors.append(f"{type(exc).__name__}: {exc}")
    finally:
        connection.close()


def measure(method: str, *, clients: int, requests: int, threads: int) -> Result:
    process, port = start_server(method, threads)
    try:
        # Warm up: connections, the pool's threads, the backend.
        client(port, 10**6, 5, threading.Barrier(1), Sink())
        sink = Sink()
        start = threading.Barrier(clients + 1)
        share = requests // clients
        workers = [
            threading.Thread(
                target=client,
                args=(port, i * share, share, start, sink),
            )
            for i in range(clients)
        ]
        for worker in workers:
            worker.start()
        start.wait()
        began = time.perf_counter()
        for worker in workers:
            worker.join()
        seconds = time.perf_counter() - began
    finally:
        stop_server(process)
    for error in sink.errors[:5]:
        print(f"  {method}: {error}", file=sys.stderr)
    return Result(method, share * clients, len(sink.errors), seconds, sink.latencies, sink.dispatch)


def main() -> None:
    parser = argparse.ArgumentParser(description="Load-test the threaded-server example.")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=1600, help="per method")
    parser.add_argument("--threads", type=int, default=16, help="waitress threads")
    parser.add_argument(
        "--methods", default="send,send_parallel", help="comma-separated Signal methods"
    )
    parser.add_argument("--quick", action="store_true", help="320 requests per method")
    args = parser.parse_args()
    requests = 320 if args.quick else args.requests

    results = []
    for method in args.methods.split(","):
        print(f"{method}: {requests} requests from {args.clients} clients...", file=sys.stderr)
        results.append(
            measure(method, clients=args.clients, requests=requests, threads=args.threads)
        )

    print(
        f"examples/wsgi_server.py under waitress ({args.threads} threads), {args.clients} "
        f"concurrent clients, five receivers each calling a local service "
        f"(30-100 ms; sum 260 ms). CPython {platform.python_version()}, "
        f"{platform.machine()}.\n"
    )
    print("| dispatch | requests | errors | requests/s | p50 ms | p99 ms | dispatch p50 ms |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        print(
            f"| `{r.method}` | {r.requests} | {r.errors} | {r.requests / r.seconds:,.1f} "
            f"| {r.quantile(r.latencies_ms, 0.5):,.1f} | {r.quantile(r.latencies_ms, 0.99):,.1f} "
            f"| {statistics.median(r.dispatch_ms) if r.dispatch_ms else float('nan'):,.1f} |"
        )


if __name__ == "__main__":
    main()
