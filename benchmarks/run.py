"""Benchmark parasignal against django.dispatch, side by side, in one run.

Usage::

    python benchmarks/run.py [--quick] [--json PATH]

Prints a markdown report on stdout; ``--json PATH`` also writes the raw
figures (every sample, not only the medians). Django is optional (the
``bench`` extra): without it every Django column says "absent".

Every timing is the median of several samples, and parasignal and Django
samples are taken in alternation (round-robin, with the order rotated each
round), so that a burst of noise on a shared machine hits both sides alike.
The garbage collector is disabled inside timed regions, as ``timeit`` does.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib
import json
import os
import platform
import queue
import statistics
import sys
import threading
import time
import timeit
import tracemalloc
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any, Final

import parasignal

ABSENT: Final = "absent"
Receiver = Callable[..., Any]
SignalFactory = Callable[[], Any]


@dataclass(frozen=True)
class Config:
    """How much work one run does."""

    name: str
    send_rounds: int  # samples per send() case (section 1)
    sample_seconds: float  # target duration of one micro-benchmark sample
    connect_n: int  # receivers connected to parasignal (section 2)
    connect_rounds: int
    django_connect_ns: tuple[int, ...]  # sizes Django's connect is measured at
    django_connect_rounds: int
    memory_n: int  # receivers connected for the memory figures (section 3)
    memory_rounds: int
    fanout_rounds: int  # samples per send_parallel case (section 4)
    slow_rounds: int  # samples of Django's sequential send/asend (section 4)
    overhead_rounds: int  # samples per overhead case (section 5)


DEFAULT = Config(
    name="default",
    send_rounds=15,
    sample_seconds=0.02,
    connect_n=100_000,
    connect_rounds=5,
    django_connect_ns=(5_000, 10_000, 20_000),
    django_connect_rounds=3,
    memory_n=20_000,
    memory_rounds=2,
    fanout_rounds=21,
    slow_rounds=2,
    overhead_rounds=15,
)

QUICK = Config(
    name="quick",
    send_rounds=5,
    sample_seconds=0.005,
    connect_n=100_000,
    connect_rounds=3,
    django_connect_ns=(2_500, 5_000, 10_000),
    django_connect_rounds=1,
    memory_n=5_000,
    memory_rounds=1,
    fanout_rounds=7,
    slow_rounds=1,
    overhead_rounds=5,
)

SEND_COUNTS: Final = (0, 1, 10, 100)
FANOUT_SLEEP: Final = 0.010  # seconds each fan-out receiver sleeps
EXTRAPOLATE_TO: Final = 100_000


# -- helpers ------------------------------------------------------------------


def load_django() -> tuple[str | None, SignalFactory | None]:
    """Django's version and Signal class, or (None, None) when not installed."""
    try:
        django = importlib.import_module("django")
        dispatch = importlib.import_module("django.dispatch")
    except ImportError:
        return None, None
    signal_class: SignalFactory = dispatch.Signal
    return str(django.get_version()), signal_class


def make_noops(n: int) -> list[Receiver]:
    """*n* distinct no-op receiver functions."""

    def factory() -> Receiver:
        def receiver(**kwargs: Any) -> None:
            return None

        return receiver

    return [factory() for _ in range(n)]


def make_sleepers(n: int, seconds: float) -> list[Receiver]:
    """*n* distinct receivers that each sleep *seconds*."""

    def factory() -> Receiver:
        def receiver(**kwargs: Any) -> None:
            time.sleep(seconds)

        return receiver

    return [factory() for _ in range(n)]


def connected(factory: SignalFactory, receivers: Sequence[Receiver]) -> Any:
    """A fresh signal from *factory* with *receivers* weakly connected."""
    signal = factory()
    for receiver in receivers:
        signal.connect(receiver)
    return signal


@contextmanager
def gc_paused() -> Iterator[None]:
    """Disable the garbage collector for a timed region (as timeit does)."""
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def median(samples: Sequence[float]) -> float:
    return statistics.median(samples)


def rotated(items: Sequence[str], shift: int) -> list[str]:
    """*items* rotated left by *shift*: a different case goes first each round."""
    if not items:
        return []
    shift %= len(items)
    return [*items[shift:], *items[:shift]]


class MicroTimer:
    """Per-call time of a statement, in samples of a calibrated number of loops."""

    def __init__(self, stmt: str, namespace: dict[str, Any], sample_seconds: float) -> None:
        self._timer = timeit.Timer(stmt, globals=namespace)
        self.loops = self._calibrate(sample_seconds)
        self.samples: list[float] = []

    def _calibrate(self, sample_seconds: float) -> int:
        loops = 1
        while True:
            elapsed = self._timer.timeit(loops)
            if elapsed >= sample_seconds / 4 or loops >= 1 << 24:
                break
            loops *= 2
        return max(1, round(loops * sample_seconds / max(elapsed, 1e-9)))

    def sample(self) -> None:
        """Take one sample: seconds per call (timeit disables gc while timing)."""
        self.samples.append(self._timer.timeit(self.loops) / self.loops)


def run_interleaved(timers: dict[str, MicroTimer], rounds: int) -> None:
    """Sample every timer once per round, rotating which one goes first."""
    names = list(timers)
    for round_index in range(rounds):
        for name in rotated(names, round_index):
            timers[name].sample()


# -- 1. send() ---------------------------------------------------------------


def bench_send(config: Config, django_signal: SignalFactory | None) -> dict[str, Any]:
    """µs per send(None) and send(None, payload=1) at 0/1/10/100 receivers."""
    impls: dict[str, SignalFactory] = {"parasignal": parasignal.Signal}
    if django_signal is not None:
        impls["django"] = django_signal
    receivers = make_noops(max(SEND_COUNTS))
    statements = {"none": "send(None)", "payload": "send(None, payload=1)"}
    timers: dict[str, MicroTimer] = {}
    keep_alive: list[Any] = []
    for count in SEND_COUNTS:
        for impl, factory in impls.items():
            signal = connected(factory, receivers[:count])
            keep_alive.append(signal)
            signal.send(None)  # warm any per-signal snapshot or cache
            for args, stmt in statements.items():
                timers[f"{impl}/{count}/{args}"] = MicroTimer(
                    stmt, {"send": signal.send}, config.sample_seconds
                )
    run_interleaved(timers, config.send_rounds)
    return {
        name: {"loops": timer.loops, "samples_us": [s * 1e6 for s in timer.samples]}
        for name, timer in timers.items()
    }


# -- 2. connect() --------------------------------------------------------------


def time_connect(factory: SignalFactory, receivers: Sequence[Receiver]) -> float:
    """Seconds to weakly connect *receivers* to a fresh signal."""
    signal = factory()
    connect = signal.connect
    with gc_paused():
        started = time.perf_counter()
        for receiver in receivers:
            connect(receiver)
        elapsed = time.perf_counter() - started
    del signal, connect
    gc.collect()
    return elapsed


def fit_quadratic(points: Sequence[tuple[int, float]]) -> tuple[float, float]:
    """Least-squares ``t = a*n + b*n**2`` through *points*; returns (a, b)."""
    s2 = sum(float(n) ** 2 for n, _ in points)
    s3 = sum(float(n) ** 3 for n, _ in points)
    s4 = sum(float(n) ** 4 for n, _ in points)
    t1 = sum(n * t for n, t in points)
    t2 = sum(float(n) ** 2 * t for n, t in points)
    det = s2 * s4 - s3 * s3
    return (t1 * s4 - t2 * s3) / det, (s2 * t2 - s3 * t1) / det


def bench_connect(config: Config, django_signal: SignalFactory | None) -> dict[str, Any]:
    """Connect time: parasignal at 100k (and Django's sizes), Django at its sizes."""
    receivers = make_noops(max(config.connect_n, *config.django_connect_ns))
    cases: dict[str, tuple[SignalFactory, int, int]] = {
        f"parasignal/{config.connect_n}": (
            parasignal.Signal,
            config.connect_n,
            config.connect_rounds,
        )
    }
    for n in config.django_connect_ns:
        cases[f"parasignal/{n}"] = (parasignal.Signal, n, config.connect_rounds)
        if django_signal is not None:
            cases[f"django/{n}"] = (django_signal, n, config.django_connect_rounds)
    samples: dict[str, list[float]] = {name: [] for name in cases}
    rounds = max(rounds for _, _, rounds in cases.values())
    for round_index in range(rounds):
        for name in rotated(list(cases), round_index):
            factory, n, case_rounds = cases[name]
            if round_index < case_rounds:
                samples[name].append(time_connect(factory, receivers[:n]))
    result: dict[str, Any] = {"samples_s": samples}
    if django_signal is not None:
        points = [(n, median(samples[f"django/{n}"])) for n in config.django_connect_ns]
        linear, quadratic = fit_quadratic(points)
        result["django_fit"] = {"a_s_per_n": linear, "b_s_per_n2": quadratic}
        result[f"django/{EXTRAPOLATE_TO}/extrapolated_s"] = (
            linear * EXTRAPOLATE_TO + quadratic * EXTRAPOLATE_TO**2
        )
    return result


# -- 3. memory -----------------------------------------------------------------


def measure_memory(factory: SignalFactory, receivers: Sequence[Receiver]) -> tuple[float, float]:
    """Traced bytes per receiver after connecting, and after one send(None) too."""
    n = len(receivers)
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        signal = factory()
        for receiver in receivers:
            signal.connect(receiver)
        gc.collect()
        after_connect = tracemalloc.get_traced_memory()[0]
        signal.send(None)
        gc.collect()
        after_send = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    del signal
    gc.collect()
    return (after_connect - base) / n, (after_send - base) / n


def bench_memory(config: Config, django_signal: SignalFactory | None) -> dict[str, Any]:
    receivers = make_noops(config.memory_n)
    impls: dict[str, SignalFactory] = {"parasignal": parasignal.Signal}
    if django_signal is not None:
        impls["django"] = django_signal
    samples: dict[str, dict[str, list[float]]] = {
        impl: {"connect": [], "connect_send": []} for impl in impls
    }
    for round_index in range(config.memory_rounds):
        for impl in rotated(list(impls), round_index):
            per_connect, per_connect_send = measure_memory(impls[impl], receivers)
            samples[impl]["connect"].append(per_connect)
            samples[impl]["connect_send"].append(per_connect_send)
    return {"n": config.memory_n, "samples_bytes": samples}


# -- 4. parallel fan-out --------------------------------------------------------


def time_once(call: Callable[[], object]) -> float:
    """Seconds one call takes (gc paused)."""
    with gc_paused():
        started = time.perf_counter()
        call()
        return time.perf_counter() - started


def bench_fanout(config: Config, django_signal: SignalFactory | None) -> dict[str, Any]:
    """send_parallel wall time on sleeping receivers, next to Django's send/asend."""
    sleepers = make_sleepers(128, FANOUT_SLEEP)
    default_pool = parasignal.Signal
    cases: dict[str, tuple[Callable[[], object], float, int]] = {}
    keep_alive: list[Any] = []
    for n in (8, 32, 128):
        signal = connected(default_pool, sleepers[:n])
        keep_alive.append(signal)
        ideal = FANOUT_SLEEP * -(-n // 64)  # the shared default pool has 64 threads
        cases[f"parasignal/default/{n}"] = (partial(signal.send_parallel, None), ideal, 0)
    bounded = connected(lambda: parasignal.Signal(max_workers=32), sleepers)
    keep_alive.append(bounded)
    cases["parasignal/max_workers=32/128"] = (
        partial(bounded.send_parallel, None),
        FANOUT_SLEEP * 4,
        0,
    )
    if django_signal is not None:
        django = connected(django_signal, sleepers[:32])
        keep_alive.append(django)
        cases["django/send/32"] = (partial(django.send, None), FANOUT_SLEEP * 32, 1)
        cases["django/asend/32"] = (
            lambda: asyncio.run(django.asend(None)),
            FANOUT_SLEEP * 32,
            1,
        )
    # Warm up: start the pools' threads and any lazy imports (asgiref).
    for call, _, slow in cases.values():
        for _ in range(1 if slow else 2):
            call()
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for round_index in range(config.fanout_rounds):
        for name in rotated(list(cases), round_index):
            call, _, slow = cases[name]
            if slow and round_index >= config.slow_rounds:
                continue
            samples[name].append(time_once(call))
    return {
        name: {"ideal_ms": ideal * 1e3, "samples_ms": [s * 1e3 for s in samples[name]]}
        for name, (_, ideal, _) in cases.items()
    }
