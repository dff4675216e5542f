"""Benchmark parasignal against django.dispatch, blinker, psygnal and pyee, in one run.

Usage::

    python benchmarks/run.py [--quick] [--json PATH] [--chart PATH]

Prints a markdown report on stdout; ``--json PATH`` also writes the raw
figures (every sample, not only the medians); ``--chart PATH`` writes a PNG
chart (default ``benchmarks/results.png``, when matplotlib is installed).
Every peer is optional (the ``bench`` extra): an absent peer's columns say
"absent" and the report lists it in a note.

Every timing is the median of several samples, and parasignal and Django
samples are taken in alternation (round-robin, with the order rotated each
round), so that a burst of noise on a shared machine hits both sides alike.
The garbage collector is disabled inside timed regions, as ``timeit`` does.

This module is the command line: the cases are in ``cases_sequential`` and
``cases_parallel`` (their shared helpers in ``_common``, the sizes in
``config``), their typed results in ``results``, the Markdown in ``report``
and the chart in ``chart``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Final, TypeVar

import structlog

import parasignal
from _common import SignalFactory, connected, make_noops
from cases_parallel import bench_asend, bench_fanout, bench_overhead, bench_saturation
from cases_sequential import bench_connect, bench_memory, bench_scale, bench_send
from chart import draw_chart
from config import DEFAULT, QUICK
from environment import load_django, load_matplotlib, load_peers, machine_info, package_version
from report import render
from results import Results

DEFAULT_CHART: Final = Path(__file__).resolve().parent / "results.png"
T = TypeVar("T")


def warm_up(django_signal: SignalFactory | None) -> None:
    """Trigger lazy imports (django.conf, structlog...) before anything is measured."""
    receivers = make_noops(2)
    signal = connected(parasignal.Signal, receivers)
    signal.send(None)
    signal.send_parallel(None)
    if django_signal is not None:
        connected(django_signal, receivers).send(None)


def section(name: str, bench: Callable[[], T]) -> T:
    """Run one section's case, with its progress and duration on stderr."""
    section_started = time.perf_counter()
    print(f"[{name}] ...", file=sys.stderr, flush=True)
    result = bench()
    print(f"[{name}] {time.perf_counter() - section_started:.1f} s", file=sys.stderr, flush=True)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (< 30 s)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write raw figures here")
    parser.add_argument(
        "--chart",
        type=Path,
        metavar="PATH",
        default=DEFAULT_CHART,
        help="write a PNG chart here when matplotlib is installed (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    # parasignal's events (the saturation case logs signal.pool_saturated)
    # go to stderr with the progress, so stdout is the report alone.
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    config = QUICK if args.quick else DEFAULT
    django_version, django_signal = load_django()
    peers, peer_versions = load_peers()
    if load_matplotlib() is not None:
        peer_versions["matplotlib"] = package_version("matplotlib")
    started = time.perf_counter()
    warm_up(django_signal)
    machine = machine_info(config, django_version, peer_versions)
    # The sections run in this order (the report's order differs).
    send = section("send", lambda: bench_send(config, django_signal, peers=peers))
    connect = section("connect", lambda: bench_connect(config, django_signal))
    memory = section("memory", lambda: bench_memory(config, django_signal))
    fanout = section("fanout", lambda: bench_fanout(config, django_signal))
    overhead = section("overhead", lambda: bench_overhead(config, django_signal))
    saturation = section("saturation", lambda: bench_saturation(config, django_signal))
    asend = section("asend", lambda: bench_asend(config, django_signal))
    scale = section("scale", lambda: bench_scale(config, django_signal, peers=peers))
    results = Results(
        machine=machine,
        config=config,
        run_seconds=time.perf_counter() - started,
        send=send,
        connect=connect,
        memory=memory,
        fanout=fanout,
        overhead=overhead,
        saturation=saturation,
        asend=asend,
        scale=scale,
    )
    if draw_chart(results, args.chart):
        results = replace(results, chart=args.chart)
        print(f"chart written to {args.chart}", file=sys.stderr)
    print(render(results), end="")
    if args.json is not None:
        args.json.write_text(json.dumps(results.to_json(), indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
