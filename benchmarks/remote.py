"""CPU-bound receivers on threads, on a process pool and on a dask cluster, side by side.

    python benchmarks/remote.py [--quick] [--workers N]

Needs the dask extra (``pip install -e '.[dask]'``). In one run, interleaved
round-robin (each round runs every case once, in a rotated order), it
measures:

1. Wall time of one dispatch to 8 CPU-bound receivers of about 100 ms each
   (pure-Python arithmetic, calibrated here first): ``send`` (one after
   another), ``send_parallel`` on threads (the shared pool: the GIL runs
   one at a time), on ``ProcessPoolExecutor(N)`` and on an N-worker
   ``distributed.LocalCluster`` (one thread per worker); medians, and each
   one's speed-up over threads. With N workers on N idle cores the process
   and cluster cases approach N times faster than threads.
2. Per-dispatch overhead: wall time of one dispatch to 1, 2 and 8 no-op
   receivers on each engine, and the cost of each task beyond the first.
   One task per receiver or a few chunks: 8 receivers in N chunks would cost
   about what N receivers cost here.

Prints Markdown tables. Figures from different machines, or from different
runs on a shared VM, are not comparable: compare the columns of one report.
"""

from __future__ import annotations

import argparse
import functools
import gc
import importlib
import logging
import multiprocessing
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import structlog

from parasignal import Signal

RECEIVERS = 8
TARGET_S = 0.1  # what one CPU-bound receiver should take


def burn(*, iterations: int, **kwargs: Any) -> int:
    """A CPU-bound receiver: pure-Python arithmetic, holding the GIL throughout."""
    total = 0
    for i in range(iterations):
        total = (total + i * i) % 1_000_003
    return total


def noop(**kwargs: Any) -> None:
    """A receiver that does nothing: what is left is the engine's cost."""


def calibrate() -> int:
    """Return the iterations that make :func:`burn` take about TARGET_S here."""
    iterations = 100_000
    while True:
        started = time.perf_counter()
        burn(iterations=iterations)
        took = time.perf_counter() - started
        if took > TARGET_S / 4:
            return max(1, int(iterations * TARGET_S / took))
        iterations *= 4


@contextmanager
def gc_paused() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@dataclass
class Case:
    """One way to dispatch, and its samples (seconds per dispatch)."""

    name: str
    run: Callable[[], object]
    samples: list[float] = field(default_factory=list)

    def sample(self) -> None:
        with gc_paused():
            started = time.perf_counter()
            self.run()
            self.samples.append(time.perf_counter() - started)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)


def interleave(cases: list[Case], rounds: int) -> None:
    """Take *rounds* samples of every case, rotating the order each round."""
    for case in cases:
        case.run()  # warm up: processes started, modules imported, pools grown
    for r in range(rounds):
        shift = r % len(cases)
        for case in cases[shift:] + cases[:shift]:
            case.sample()
        print(f"  round {r + 1}/{rounds}", file=sys.stderr)


def signal_with(executor: Any, receiver: Callable[..., Any], n: int, *, name: str) -> Signal:
    """A signal with *receiver* connected *n* times (distinct dispatch_uids)."""
    signal = Signal(name=name, executor=executor)
    for i in range(n):
        signal.connect(receiver, dispatch_uid=f"{name}-{i}", weak=False)
    return signal


def cpu_bound(executors: dict[str, Any], iterations: int, rounds: int) -> list[Case]:
    threads = signal_with(None, burn, RECEIVERS, name="threads")
    cases = [
        Case("send (in order)", functools.partial(threads.send, None, iterations=iterations)),
        Case(
            "send_parallel, threads",
            functools.partial(threads.send_parallel, None, iterations=iterations),
        ),
    ]
    for label, executor in executors.items():
        signal = signal_with(executor, burn, RECEIVERS, name=label)
        cases.append(
            Case(
                f"send_parallel, {label}",
                functools.partial(signal.send_parallel, None, iterations=iterations),
            )
        )
    interleave(cases, rounds)
    return cases


def overhead(executors: dict[str, Any], rounds: int) -> dict[str, dict[int, float]]:
    """Median seconds per dispatch of 1, 2 and 8 no-op receivers, per engine."""
    sizes = (1, 2, RECEIVERS)
    engines: dict[str, Any] = {"threads": None, **executors}
    cases: list[Case] = []
    for label, executor in engines.items():
        for n in sizes:
            signal = signal_with(executor, noop, n, name=f"{label}-{n}")
            cases.append(Case(f"{label}/{n}", functools.partial(signal.send_parallel, None)))
    interleave(cases, rounds)
    medians = {case.name: case.median for case in cases}
    return {label: {n: medians[f"{label}/{n}"] for n in sizes} for label in engines}


def ms(seconds: float, digits: int = 1) -> str:
    return f"{seconds * 1000:.{digits}f}"


def report(cases: list[Case], costs: dict[str, dict[int, float]], workers: int) -> None:
    threads = cases[1].median
    print(f"### {RECEIVERS} CPU-bound receivers of about {TARGET_S * 1000:.0f} ms each\n")
    print(f"{workers} workers; medians of {len(cases[0].samples)} dispatches each.\n")
    print("| dispatch | median ms | min ms | speed-up over threads |")
    print("| --- | ---: | ---: | ---: |")
    for case in cases:
        print(
            f"| {case.name} | {ms(case.median)} | {ms(min(case.samples))} "
            f"| {threads / case.median:.2f}x |"
        )
    ideal = RECEIVERS * TARGET_S / workers
    print(f"\nIdeal on {workers} cores: {ms(ideal)} ms (no overhead, perfect balance).\n")
    print("### Per-dispatch overhead, no-op receivers\n")
    print("| engine | 1 receiver ms | 2 receivers ms | 8 receivers ms | each extra task ms |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for label, by_size in costs.items():
        per_task = (by_size[RECEIVERS] - by_size[1]) / (RECEIVERS - 1)
        print(
            f"| {label} | {ms(by_size[1], 2)} | {ms(by_size[2], 2)} "
            f"| {ms(by_size[RECEIVERS], 2)} | {ms(per_task, 2)} |"
        )
    print(
        f"\nChunks: {RECEIVERS} receivers sent as {workers} chunks would cost about the "
        f"{workers}-receiver column instead of the {RECEIVERS}-receiver one."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds (about 20 s)")
    parser.add_argument("--workers", type=int, default=2, help="processes and dask workers")
    args = parser.parse_args()
    rounds, overhead_rounds = (3, 10) if args.quick else (9, 30)

    try:
        # Any: LocalCluster and Client are untyped callables to mypy --strict.
        distributed: Any = importlib.import_module("distributed")
    except ImportError:
        sys.exit("benchmarks/remote.py needs dask.distributed: pip install -e '.[dask]'")

    # Only errors: the thread case's CPU-bound receivers hold the GIL long
    # enough for the shared pool to report itself saturated, as it should.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    iterations = calibrate()
    print(f"calibrated: {iterations} iterations per receiver", file=sys.stderr)
    # forkserver, not fork: this process runs threads (parasignal's, dask's).
    pool = ProcessPoolExecutor(args.workers, mp_context=multiprocessing.get_context("forkserver"))
    with (
        distributed.LocalCluster(
            processes=True,
            n_workers=args.workers,
            threads_per_worker=1,
            dashboard_address=":0",
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        executors = {
            f"ProcessPoolExecutor({args.workers})": pool,
            f"LocalCluster({args.workers} workers)": client.get_executor(),
        }
        try:
            print("CPU-bound receivers", file=sys.stderr)
            cases = cpu_bound(executors, iterations, rounds)
            print("overhead", file=sys.stderr)
            costs = overhead(executors, overhead_rounds)
        finally:
            pool.shutdown()
    report(cases, costs, args.workers)


if __name__ == "__main__":
    main()
