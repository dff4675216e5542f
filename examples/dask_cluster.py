"""Receivers on a dask.distributed cluster: CPU-heavy work beyond one process, or one machine.

Run it with ``pip install "parasignal[dask]"``, then either::

    python examples/dask_cluster.py                        # a LocalCluster of 2 worker processes
    python examples/dask_cluster.py tcp://scheduler:8786   # your cluster's scheduler

On a real cluster every worker needs parasignal installed (each task calls
``parasignal._remote.run_in_worker``), and whatever your receivers import.
The receivers below are defined in this script, so dask's cloudpickle sends
them by value: the workers do not need this file. Receivers that live in
your own package are sent by name, and the workers need that package.

A ``report_ready`` signal has three CPU-bound receivers, each worth a core
for a while (the GIL would run them one at a time on threads), and one that
fails. ``send_parallel_robust`` runs each receiver as one task on the
cluster and returns the ordered answer, exactly as ``send_robust`` would,
with the failure in place and logged with the address of the worker it
failed on.
"""

from __future__ import annotations

import hashlib
import importlib
import sys
import time
from typing import Any

import distributed
import structlog

from parasignal import Signal

report_ready = Signal(name="report_ready", timeout=60.0)


def count_primes(sender: object, limit: int, **kwargs: Any) -> str:
    found = sum(1 for n in range(2, limit) if all(n % d for d in range(2, int(n**0.5) + 1)))
    return f"{found} primes below {limit}"


def checksum(sender: object, limit: int, **kwargs: Any) -> str:
    digest = hashlib.sha256()
    for n in range(limit * 20):
        digest.update(n.to_bytes(8, "little"))
    return f"sha256 {digest.hexdigest()[:16]}..."


def word_lengths(sender: object, limit: int, **kwargs: Any) -> str:
    words = [str(n * 7919) for n in range(limit * 10)]
    longest = max(words, key=len)
    return f"{len(words)} words, the longest has {len(longest)} digits"


def archive(sender: object, limit: int, **kwargs: Any) -> str:
    msg = f"archive store unreachable for report {sender}"
    raise ConnectionError(msg)


for handler in (count_primes, checksum, word_lengths, archive):
    report_ready.connect(handler)


def dispatch(client: distributed.Client) -> None:
    """Send one report here, then to the cluster behind *client*; print both answers."""
    workers = len(client.scheduler_info()["workers"])
    # Each worker imports parasignal on its first task: do it now, so that the
    # timing below is the dispatch's (dask's --preload does this at start-up).
    client.run(importlib.import_module, "parasignal")
    # The executor matters to the parallel methods only. Signal(executor=client)
    # works too (a Client is taken as its executor); the annotation says Executor.
    report_ready.executor = client.get_executor()
    try:
        for method in ("send_robust", "send_parallel_robust"):
            started = time.perf_counter()
            responses = getattr(report_ready, method)("report-42", limit=200_000)
            took = time.perf_counter() - started
            where = "here, one after another" if method == "send_robust" else f"{workers} workers"
            print(f"\n{method} ({where}): {took:.2f} s")
            for receiver, response in responses:
                print(f"  {receiver.__name__:<13} -> {response!r}")
    finally:
        report_ready.executor = None


def main() -> None:
    """Use the scheduler named on the command line, or start a local cluster."""
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.format_exc_info,
            structlog.dev.ConsoleRenderer(colors=False),
        ]
    )
    if len(sys.argv) > 1:
        # A real cluster: its scheduler's address, as "dask scheduler" printed it.
        with distributed.Client(sys.argv[1]) as client:
            dispatch(client)
        return
    # No address: a cluster on this machine, two worker processes of one thread.
    with (
        distributed.LocalCluster(
            processes=True, n_workers=2, threads_per_worker=1, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        dispatch(client)


if __name__ == "__main__":
    main()
