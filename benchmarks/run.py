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
from typing import Any, Final, NamedTuple, TypeVar

import parasignal

ABSENT: Final = "absent"
PEER_MODULES: Final = ("blinker", "psygnal", "pyee")
DEFAULT_CHART: Final = Path(__file__).resolve().parent / "results.png"
Receiver = Callable[..., Any]
SignalFactory = Callable[[], Any]
T = TypeVar("T")


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
    peer_connect_rounds: int  # samples of each peer's 100k connect (section 7)


DEFAULT = Config(
    name="default",
    send_rounds=25,
    sample_seconds=0.01,
    connect_n=100_000,
    connect_rounds=5,
    django_connect_ns=(5_000, 10_000, 20_000),
    django_connect_rounds=3,
    memory_n=20_000,
    memory_rounds=2,
    fanout_rounds=21,
    slow_rounds=2,
    overhead_rounds=25,
    peer_connect_rounds=3,
)

QUICK = Config(
    name="quick",
    send_rounds=7,
    sample_seconds=0.005,
    connect_n=100_000,
    connect_rounds=3,
    django_connect_ns=(2_500, 5_000, 10_000),
    django_connect_rounds=1,
    memory_n=5_000,
    memory_rounds=1,
    fanout_rounds=9,
    slow_rounds=1,
    overhead_rounds=7,
    peer_connect_rounds=1,
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


class Peer(NamedTuple):
    """How to drive one peer library with a common vocabulary."""

    key: str
    label: str
    version: str
    new: Callable[[], Any]  # a fresh signal / emitter
    connect: Callable[[Any, Receiver], object]  # connect one receiver, held as the peer does
    send_stmt: str  # timeit statement dispatching once with no payload, using ``send``
    send_attr: str  # the attribute of the signal bound as ``send``


def load_peers() -> tuple[dict[str, Peer], dict[str, str]]:
    """The installed peers (blinker, psygnal, pyee), and the versions of all peers found.

    Returns ``(peers, versions)``; an absent peer is missing from both.
    """
    peers: dict[str, Peer] = {}
    versions: dict[str, str] = {}
    for name in PEER_MODULES:
        try:
            module: Any = importlib.import_module(name)
        except ImportError:
            continue
        versions[name] = package_version(name)
        if name == "blinker":
            peers[name] = Peer(
                name,
                "blinker `Signal.send(None)`",
                versions[name],
                module.Signal,
                lambda signal, r: signal.connect(r),
                "send(None)",
                "send",
            )
        elif name == "psygnal":
            peers[name] = Peer(
                name,
                "psygnal `SignalInstance.emit()`",
                versions[name],
                partial(module.SignalInstance, ()),
                lambda signal, r: signal.connect(r),
                "send()",
                "emit",
            )
        else:
            peers[name] = Peer(
                name,
                "pyee `EventEmitter.emit(event)`",
                versions[name],
                module.EventEmitter,
                lambda emitter, r: emitter.add_listener("order_placed", r),
                "send('order_placed')",
                "emit",
            )
    return peers, versions


def package_version(name: str) -> str:
    try:
        return importlib.import_module("importlib.metadata").version(name)  # type: ignore[no-any-return]
    except Exception:  # noqa: BLE001 - a version is only informative
        return "unknown"


def load_matplotlib() -> Any:
    """matplotlib.pyplot with the Agg backend, or None when matplotlib is absent."""
    try:
        matplotlib: Any = importlib.import_module("matplotlib")
    except ImportError:
        return None
    matplotlib.use("Agg")
    return importlib.import_module("matplotlib.pyplot")


def make_positional_noops(n: int) -> list[Receiver]:
    """*n* distinct no-op receivers taking any arguments (blinker, psygnal, pyee)."""

    def factory() -> Receiver:
        def receiver(*args: Any, **kwargs: Any) -> None:
            return None

        return receiver

    return [factory() for _ in range(n)]


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


def rotated(items: Sequence[T], shift: int) -> list[T]:
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
        """Loops per sample, from the fastest of a few trial runs.

        Taking the fastest trial keeps one hiccup of a noisy machine from
        shrinking every later sample to a handful of loops.
        """
        loops = 1
        while loops < 1 << 24 and self._timer.timeit(loops) < sample_seconds / 8:
            loops *= 2
        fastest = min(self._timer.timeit(loops) for _ in range(3)) / loops
        return max(1, round(sample_seconds / max(fastest, 1e-9)))

    def sample(self) -> None:
        """Take one sample: seconds per call (timeit disables gc while timing)."""
        self.samples.append(self._timer.timeit(self.loops) / self.loops)


def run_interleaved(groups: Sequence[Sequence[MicroTimer]], rounds: int) -> None:
    """Sample every timer once per round.

    The timers of one group (parasignal and Django on the same case) are
    sampled back to back, in reversed order every other round, so that each
    pair of samples saw the same machine; the groups take turns going first.
    """
    for round_index in range(rounds):
        for group in rotated(groups, round_index):
            for timer in group if round_index % 2 == 0 else reversed(group):
                timer.sample()


def timer_results(timers: dict[str, MicroTimer]) -> dict[str, Any]:
    return {
        name: {"loops": timer.loops, "samples_us": [s * 1e6 for s in timer.samples]}
        for name, timer in timers.items()
    }


# -- 1. send() ---------------------------------------------------------------


def bench_send(
    config: Config, django_signal: SignalFactory | None, peers: dict[str, Peer] | None = None
) -> dict[str, Any]:
    """µs per send(None) and send(None, payload=1) at 0/1/10/100 receivers.

    Each peer's no-payload dispatch is sampled in the same group as
    parasignal's and Django's ``send(None)``.
    """
    impls: dict[str, SignalFactory] = {"parasignal": parasignal.Signal}
    if django_signal is not None:
        impls["django"] = django_signal
    receivers = make_noops(max(SEND_COUNTS))
    positional = make_positional_noops(max(SEND_COUNTS))
    keep_alive: list[Any] = []
    statements = {"none": "send(None)", "payload": "send(None, payload=1)"}
    signals: dict[tuple[str, int], Any] = {}
    for count in SEND_COUNTS:
        for impl, factory in impls.items():
            signal = signals[impl, count] = connected(factory, receivers[:count])
            signal.send(None)  # warm any per-signal snapshot or cache
    timers: dict[str, MicroTimer] = {}
    groups: list[list[MicroTimer]] = []
    for count in SEND_COUNTS:
        for args, stmt in statements.items():
            group = []
            for impl in impls:
                namespace = {"send": signals[impl, count].send}
                timer = timers[f"{impl}/{count}/{args}"] = MicroTimer(
                    stmt, namespace, config.sample_seconds
                )
                group.append(timer)
            if args == "none":
                for peer in (peers or {}).values():
                    signal = peer.new()
                    for receiver in positional[:count]:
                        peer.connect(signal, receiver)
                    keep_alive.append(signal)
                    namespace = {"send": getattr(signal, peer.send_attr)}
                    exec(peer.send_stmt, namespace)  # warm up  # noqa: S102
                    timer = timers[f"{peer.key}/{count}/none"] = MicroTimer(
                        peer.send_stmt, namespace, config.sample_seconds
                    )
                    group.append(timer)
            groups.append(group)
    run_interleaved(groups, config.send_rounds)
    return timer_results(timers)


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
    """Least-squares ``t = a*n + b*n**2`` through *points*, with ``a >= 0``; returns (a, b).

    A negative linear term (noise) would make no physical sense, so in that
    case the fit falls back to a pure ``t = b*n**2``.
    """
    s2 = sum(float(n) ** 2 for n, _ in points)
    s3 = sum(float(n) ** 3 for n, _ in points)
    s4 = sum(float(n) ** 4 for n, _ in points)
    t1 = sum(n * t for n, t in points)
    t2 = sum(float(n) ** 2 * t for n, t in points)
    det = s2 * s4 - s3 * s3
    if len(points) >= 2 and det > 0:
        linear = (t1 * s4 - t2 * s3) / det
        if linear >= 0:
            return linear, (s2 * t2 - s3 * t1) / det
    return 0.0, t2 / s4


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


def run_asend(signal: Any) -> object:
    return asyncio.run(signal.asend(None))


def run_asend_parallel(signal: Any) -> object:
    return asyncio.run(signal.asend_parallel(None))


def run_send_parallel(signal: Any) -> object:
    return signal.send_parallel(None)


FANOUT_COUNTS: Final = (8, 32, 128)


class FanoutCase(NamedTuple):
    call: Callable[[], object]
    ideal: float  # seconds, if every receiver had a thread of its own when possible
    slow: bool  # sequential Django dispatch: sampled only config.slow_rounds times


class Latch:
    """Counts receivers down to zero: how to wait for a fire-and-forget emitter."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._left = 0
        self.done = threading.Event()

    def arm(self, count: int) -> None:
        self._left = count
        self.done.clear()

    def count_down(self) -> None:
        with self._lock:
            self._left -= 1
            if self._left == 0:
                self.done.set()


def threadpool_fanout(executor: ThreadPoolExecutor, receivers: Sequence[Receiver]) -> None:
    """One task per receiver on a plain ThreadPoolExecutor; wait for them all."""
    futures = [executor.submit(receiver) for receiver in receivers]
    for future in futures:
        future.result()


def pyee_fanout_case(
    pyee_executor_class: Any, executor: ThreadPoolExecutor, n: int, seconds: float
) -> Callable[[], object]:
    """A call that emits once on a pyee ExecutorEventEmitter with *n* listeners, and waits.

    ExecutorEventEmitter.emit() returns as soon as the listeners are
    submitted, so each listener counts a latch down and the call waits on it.
    """
    emitter = pyee_executor_class(executor)
    latch = Latch()

    def factory() -> Receiver:
        def listener(*args: Any) -> None:
            if seconds:
                time.sleep(seconds)
            latch.count_down()

        return listener

    for listener in [factory() for _ in range(n)]:
        emitter.add_listener("order_placed", listener)

    def call() -> None:
        latch.arm(n)
        emitter.emit("order_placed")
        if not latch.done.wait(60):
            msg = "pyee listeners did not finish"
            raise RuntimeError(msg)

    return call


def load_pyee_executor_emitter() -> Any:
    try:
        return importlib.import_module("pyee.executor").ExecutorEventEmitter
    except ImportError:
        return None


def bench_fanout(config: Config, django_signal: SignalFactory | None) -> dict[str, Any]:
    """send_parallel wall time on sleeping receivers, next to every other way to fan out.

    Django's sequential ``send`` and ``asend``, a plain ThreadPoolExecutor
    (64 threads, the size of parasignal's default pool) given one task per
    receiver, and pyee's ExecutorEventEmitter on such an executor.
    """
    sleepers = make_sleepers(128, FANOUT_SLEEP)
    thread_pool = ThreadPoolExecutor(64, thread_name_prefix="bench-tpe")
    pyee_pool = ThreadPoolExecutor(64, thread_name_prefix="bench-pyee")
    pyee_emitter_class = load_pyee_executor_emitter()
    cases: dict[str, FanoutCase] = {}
    keep_alive: list[Any] = []
    for n in (8, 32, 128):
        signal = connected(parasignal.Signal, sleepers[:n])
        keep_alive.append(signal)
        waves = -(-n // 64)  # the shared default pool has 64 threads
        cases[f"parasignal/default/{n}"] = FanoutCase(
            partial(signal.send_parallel, None), FANOUT_SLEEP * waves, slow=False
        )
    bounded = connected(partial(parasignal.Signal, max_workers=32), sleepers)
    keep_alive.append(bounded)
    cases["parasignal/max_workers=32/128"] = FanoutCase(
        partial(bounded.send_parallel, None), FANOUT_SLEEP * 4, slow=False
    )
    for n in FANOUT_COUNTS:
        waves = -(-n // 64)
        cases[f"threadpool/{n}"] = FanoutCase(
            partial(threadpool_fanout, thread_pool, sleepers[:n]), FANOUT_SLEEP * waves, slow=False
        )
        if pyee_emitter_class is not None:
            cases[f"pyee_executor/{n}"] = FanoutCase(
                pyee_fanout_case(pyee_emitter_class, pyee_pool, n, FANOUT_SLEEP),
                FANOUT_SLEEP * waves,
                slow=False,
            )
    if django_signal is not None:
        for n in FANOUT_COUNTS:
            sequential = connected(django_signal, sleepers[:n])
            keep_alive.append(sequential)
            cases[f"django/send/{n}"] = FanoutCase(
                partial(sequential.send, None), FANOUT_SLEEP * n, slow=True
            )
            cases[f"django/asend/{n}"] = FanoutCase(
                partial(run_asend, sequential), FANOUT_SLEEP * n, slow=True
            )
    # Warm up: start the pools' threads and asgiref's executor thread.
    for case in cases.values():
        for _ in range(1 if case.slow else 2):
            case.call()
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for round_index in range(config.fanout_rounds):
        for name in rotated(list(cases), round_index):
            if cases[name].slow and round_index >= config.slow_rounds:
                continue
            samples[name].append(time_once(cases[name].call))
    thread_pool.shutdown()
    pyee_pool.shutdown()
    return {
        name: {"ideal_ms": case.ideal * 1e3, "samples_ms": [s * 1e3 for s in samples[name]]}
        for name, case in cases.items()
    }


# -- 5. overhead -----------------------------------------------------------------


class ThreadRoundTrip:
    """A worker blocked on SimpleQueue.get() that releases a lock the caller waits on."""

    def __init__(self) -> None:
        self.requests: queue.SimpleQueue[bool] = queue.SimpleQueue()
        self.done = threading.Lock()
        self.done.acquire()
        self._thread = threading.Thread(target=self._serve, name="bench-round-trip", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while self.requests.get():
            self.done.release()

    def close(self) -> None:
        self.requests.put(item=False)
        self._thread.join()


def noop() -> None:
    return None


def bench_overhead(config: Config, django_signal: SignalFactory | None) -> dict[str, Any]:
    """send_parallel on no-op receivers, next to Django's send and raw thread hand-offs."""
    noops = make_noops(100)
    one = connected(parasignal.Signal, noops[:1])
    hundred = connected(parasignal.Signal, noops)
    seconds = config.sample_seconds
    round_trip = ThreadRoundTrip()
    pool64 = ThreadPoolExecutor(64, thread_name_prefix="bench-tpe")
    pyee_pool = ThreadPoolExecutor(64, thread_name_prefix="bench-pyee")
    pyee_emitter_class = load_pyee_executor_emitter()
    with ThreadPoolExecutor(1) as executor:
        timers = {
            "parasignal/send_parallel/1": MicroTimer(
                "send(None)", {"send": one.send_parallel}, seconds
            ),
            "parasignal/send_parallel/100": MicroTimer(
                "send(None)", {"send": hundred.send_parallel}, seconds
            ),
            "parasignal/send/100": MicroTimer("send(None)", {"send": hundred.send}, seconds),
            "threadpool/submit_result": MicroTimer(
                "submit(noop).result()", {"submit": executor.submit, "noop": noop}, seconds
            ),
            "thread/round_trip": MicroTimer(
                "put(True); acquire()",
                {"put": round_trip.requests.put, "acquire": round_trip.done.acquire},
                seconds,
            ),
        }
        for n in (1, 100):
            timers[f"threadpool/fanout/{n}"] = MicroTimer(
                "fan()", {"fan": partial(threadpool_fanout, pool64, noops[:n])}, seconds
            )
            if pyee_emitter_class is not None:
                fan = pyee_fanout_case(pyee_emitter_class, pyee_pool, n, 0.0)
                timers[f"pyee_executor/fanout/{n}"] = MicroTimer("fan()", {"fan": fan}, seconds)
        groups = [[timer] for timer in timers.values()]
        if django_signal is not None:
            django = connected(django_signal, noops)
            timers["django/send/100"] = MicroTimer("send(None)", {"send": django.send}, seconds)
            # Sampled right after (or before) send_parallel on the same receivers.
            groups[1].append(timers["django/send/100"])
        run_interleaved(groups, config.overhead_rounds)
    round_trip.close()
    pool64.shutdown()
    pyee_pool.shutdown()
    return timer_results(timers)


SATURATION_PENDING: Final = 10_000
SATURATION_WORKERS: Final = 4


def measure_saturation(callers: int) -> dict[str, Any]:
    """Memory while SATURATION_PENDING receivers wait for SATURATION_WORKERS threads.

    The receivers block until released, so every worker is busy and the rest
    of the receivers, split among *callers* concurrent dispatches, are pending.
    """
    per_caller = SATURATION_PENDING // callers
    release = threading.Event()
    started = threading.Semaphore(0)

    def blocker(**kwargs: Any) -> None:
        started.release()
        release.wait(60)

    receivers = [partial(blocker) for _ in range(per_caller)]
    signal = parasignal.Signal(max_workers=SATURATION_WORKERS)
    for receiver in receivers:
        signal.connect(receiver, weak=False)
    threads = [
        threading.Thread(target=signal.send_parallel_robust, args=(None,)) for _ in range(callers)
    ]
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for thread in threads:
        thread.start()
    for _ in range(SATURATION_WORKERS):
        started.acquire(timeout=60)
    # Let every caller post its first helper and settle into waiting.
    time.sleep(0.2)
    during, peak = tracemalloc.get_traced_memory()
    pool = signal._pools.own_pool
    worker_threads = pool.thread_count if pool is not None else 0
    release.set()
    for thread in threads:
        thread.join(120)
    tracemalloc.stop()
    signal.shutdown()
    return {
        "callers": callers,
        "pending": SATURATION_PENDING - SATURATION_WORKERS,
        "bytes_during": during - before,
        "bytes_peak": peak - before,
        "worker_threads": worker_threads,
    }


PEER_CONNECT_PROBE: Final = 10_000
PEER_CONNECT_BUDGET_S: Final = 15.0  # a peer whose 100k connect would take longer is extrapolated


def connect_all(impl: Peer, receivers: Sequence[Receiver]) -> float:
    """Seconds to connect *receivers* to a fresh signal of *impl* (gc paused)."""
    signal = impl.new()
    connect = impl.connect
    with gc_paused():
        started = time.perf_counter()
        for receiver in receivers:
            connect(signal, receiver)
        elapsed = time.perf_counter() - started
    del signal
    gc.collect()
    return elapsed


def memory_per_receiver(impl: Peer, receivers: Sequence[Receiver]) -> float:
    """tracemalloc bytes per receiver after connecting *receivers* and one dispatch."""
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        signal = impl.new()
        for receiver in receivers:
            impl.connect(signal, receiver)
        namespace = {"send": getattr(signal, impl.send_attr)}
        exec(impl.send_stmt, namespace)  # noqa: S102
        del namespace
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    del signal
    gc.collect()
    return (after - base) / len(receivers)


def home_impls(django_signal: SignalFactory | None) -> dict[str, Peer]:
    """parasignal and Django in the peers' vocabulary."""

    def connect(signal: Any, receiver: Receiver) -> object:
        return signal.connect(receiver)

    impls = {
        "parasignal": Peer(
            "parasignal",
            "parasignal",
            parasignal.__version__,
            parasignal.Signal,
            connect,
            "send(None)",
            "send",
        )
    }
    if django_signal is not None:
        impls["django"] = Peer("django", "Django", "", django_signal, connect, "send(None)", "send")
    return impls


def bench_scale(
    config: Config, django_signal: SignalFactory | None, peers: dict[str, Peer] | None = None
) -> dict[str, Any]:
    """Connect time and memory at 100,000 receivers, for every implementation that can.

    Each implementation is first timed at 10,000 receivers; when its time
    grows faster than linearly, or 100,000 would take longer than
    PEER_CONNECT_BUDGET_S, its 100,000 figure is extrapolated instead.
    """
    impls = {**home_impls(django_signal), **(peers or {})}
    kwarg_noops = make_noops(EXTRAPOLATE_TO)
    positional = make_positional_noops(EXTRAPOLATE_TO)
    results: dict[str, Any] = {}
    for key, impl in impls.items():
        receivers = kwarg_noops if key in ("parasignal", "django") else positional
        half = connect_all(impl, receivers[: PEER_CONNECT_PROBE // 2])
        probe = connect_all(impl, receivers[:PEER_CONNECT_PROBE])
        growth = probe / max(half, 1e-9)
        scale = EXTRAPOLATE_TO / PEER_CONNECT_PROBE
        entry: dict[str, Any] = {"probe_s": probe, "half_probe_s": half, "growth": growth}
        if growth > 3.0 or probe * scale > PEER_CONNECT_BUDGET_S:
            entry["extrapolated_s"] = probe * scale**2 if growth > 3.0 else probe * scale
            entry["quadratic"] = growth > 3.0
        else:
            entry["connect_s"] = [
                connect_all(impl, receivers) for _ in range(config.peer_connect_rounds)
            ]
            entry["bytes_per_receiver"] = memory_per_receiver(impl, receivers)
        results[key] = entry
    return results


def bench_saturation(config: Config, django_signal: SignalFactory | None) -> dict[str, Any]:
    """Bounded memory when callers and receivers far outnumber workers."""
    del config, django_signal  # the same in every mode; no Django counterpart
    return {str(callers): measure_saturation(callers) for callers in (1, 100)}


ASEND_RECEIVERS: Final = 32


def make_async_sleepers(n: int, seconds: float) -> list[Receiver]:
    """*n* distinct coroutine-function receivers that each ``asyncio.sleep(seconds)``."""

    def factory() -> Receiver:
        async def receiver(**kwargs: Any) -> None:
            await asyncio.sleep(seconds)

        return receiver

    return [factory() for _ in range(n)]


def bench_asend(config: Config, django_signal: SignalFactory | None) -> dict[str, Any]:
    """``asend`` and ``asend_parallel`` on 32 receivers sleeping 10 ms, vs Django's ``asend``.

    The fast cases (parasignal's ``asend_parallel``, its ``send_parallel`` on
    the same receivers as the in-run baseline, and everything with async
    receivers) are sampled round-robin, so that machine noise hits all alike;
    the sequential ones (both ``asend``s with sync receivers: 320 ms each)
    only ``config.slow_rounds`` times.
    """
    kinds = {
        "sync": make_sleepers(ASEND_RECEIVERS, FANOUT_SLEEP),
        "async": make_async_sleepers(ASEND_RECEIVERS, FANOUT_SLEEP),
    }
    calls: dict[str, tuple[Callable[[], object], bool]] = {}
    for kind, receivers in kinds.items():
        ours = connected(parasignal.Signal, receivers)
        calls[f"parasignal-asend_parallel/{kind}"] = (partial(run_asend_parallel, ours), True)
        calls[f"parasignal/{kind}"] = (partial(run_asend, ours), kind == "async")
        if kind == "sync":
            calls["parasignal-send_parallel/sync"] = (partial(run_send_parallel, ours), True)
        if django_signal is not None:
            theirs = connected(django_signal, receivers)
            calls[f"django/{kind}"] = (partial(run_asend, theirs), kind == "async")
    for call, _ in calls.values():
        call()  # warm up: threads, imports
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for round_index in range(config.fanout_rounds):
        for name, (call, fast) in calls.items():
            if fast or round_index < config.slow_rounds:
                samples[name].append(time_once(call) * 1000)
    return {name: {"samples_ms": values} for name, values in samples.items()}


# -- report ------------------------------------------------------------------------


def machine_info(
    config: Config, django_version: str | None, peer_versions: dict[str, str]
) -> dict[str, Any]:
    gil_check = getattr(sys, "_is_gil_enabled", None)
    affinity = getattr(os, "sched_getaffinity", None)
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "usable_cpus": len(affinity(0)) if affinity is not None else None,
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "gil": None if gil_check is None else bool(gil_check()),
        "parasignal": parasignal.__version__,
        "django": django_version,
        "peers": peer_versions,
        "matplotlib": peer_versions.get("matplotlib"),
        "mode": config.name,
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }


def fmt(value: float | None, unit: str = "") -> str:
    """A figure with three significant digits or so, or "absent"."""
    if value is None:
        return ABSENT
    if abs(value) >= 100:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    elif abs(value) >= 1:
        text = f"{value:.2f}"
    else:
        text = f"{value:.3f}"
    return f"{text}{unit}"


def ratio(numerator: float | None, denominator: float | None) -> str:
    """numerator/denominator as "1.23x", or "absent" when either side is missing."""
    if numerator is None or denominator is None or denominator == 0:
        return ABSENT
    return ratio_text(numerator / denominator)


def paired_ratio(results: dict[str, Any], ours: str, theirs: str, field: str) -> float | None:
    """Median over rounds of ours/theirs, each pair sampled back to back."""
    if ours not in results or theirs not in results:
        return None
    pairs = zip(results[ours][field], results[theirs][field], strict=True)
    return median([a / b for a, b in pairs if b > 0])


def ratio_text(value: float | None) -> str:
    if value is None:
        return ABSENT
    if value >= 100:
        return f"{value:,.0f}x"
    if value >= 10:
        return f"{value:.1f}x"
    return f"{value:.2f}x" if value >= 0.1 else f"{value:.2g}x"


def med(samples: dict[str, Any], key: str, field: str) -> float | None:
    """Median of samples[key][field], or None when the case was not measured."""
    entry = samples.get(key)
    if entry is None or not entry[field]:
        return None
    return median(entry[field])


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def render_machine(results: dict[str, Any]) -> list[str]:
    m = results["machine"]
    gil = {None: "", True: " (GIL enabled)", False: " (free-threaded, GIL disabled)"}[m["gil"]]
    load = "n/a" if m["load_average"] is None else " ".join(f"{x:.2f}" for x in m["load_average"])
    rows = [
        ["Platform", f"{m['platform']} ({m['machine']})"],
        ["CPU count", f"{m['cpu_count']} (usable: {m['usable_cpus']})"],
        ["Python", f"{m['python']}{gil}"],
        ["parasignal", m["parasignal"]],
        ["Django", m["django"] or ABSENT],
        *([peer, m["peers"].get(peer) or ABSENT] for peer in PEER_MODULES),
        ["matplotlib (chart)", m["matplotlib"] or ABSENT],
        ["Mode", f"{m['mode']} (run took {m['run_seconds']:.0f} s)"],
        ["Load average at start", load],
    ]
    return ["## Machine", "", *table(["", ""], rows)]


def render_send(results: dict[str, Any]) -> list[str]:
    send = results["send"]
    rows = []
    for count in SEND_COUNTS:
        row = [str(count)]
        for args in ("none", "payload"):
            ours_key, theirs_key = f"parasignal/{count}/{args}", f"django/{count}/{args}"
            paired = paired_ratio(send, ours_key, theirs_key, "samples_us")
            row += [
                fmt(med(send, ours_key, "samples_us")),
                fmt(med(send, theirs_key, "samples_us")),
                ratio_text(paired),
            ]
        rows.append(row)
    header = [
        "receivers",
        "parasignal `send(None)` µs",
        "Django µs",
        "parasignal/Django",
        "parasignal `send(None, payload=1)` µs",
        "Django µs",
        "parasignal/Django",
    ]
    rounds = results["config"]["send_rounds"]
    return [
        "## 1. `send()` on no-op receivers",
        "",
        (
            f"µs per call, median of {rounds} interleaved samples; lower is better. "
            "Ratios are medians of per-round ratios of samples taken back to back."
        ),
        "",
        *table(header, rows),
    ]


def render_connect(results: dict[str, Any]) -> list[str]:
    connect = results["connect"]
    samples = connect["samples_s"]
    config = results["config"]
    sizes = sorted({*config["django_connect_ns"], config["connect_n"]})
    rows = []
    for n in sizes:
        ours = median(samples[f"parasignal/{n}"])
        theirs_samples = samples.get(f"django/{n}")
        theirs: float | None = median(theirs_samples) if theirs_samples else None
        label = f"{n:,}"
        if theirs is None and n == EXTRAPOLATE_TO:
            theirs = connect.get(f"django/{n}/extrapolated_s")
            if theirs is not None:
                label = f"{n:,} (Django **extrapolated**)"
        rows.append(
            [
                label,
                fmt(ours, " s"),
                fmt(ours * 1e6 / n, " µs"),
                fmt(theirs, " s"),
                fmt(None if theirs is None else theirs * 1e6 / n, " µs"),
                ratio(theirs, ours),
            ]
        )
    lines = [
        "## 2. `connect()` of distinct weak receivers to a fresh signal",
        "",
        f"Median of {config['connect_rounds']} samples for parasignal"
        + (f", {config['django_connect_rounds']} for Django." if "django_fit" in connect else "."),
        "",
        *table(
            [
                "receivers",
                "parasignal total",
                "per connect",
                "Django total",
                "per connect",
                "Django/parasignal",
            ],
            rows,
        ),
    ]
    fit = connect.get("django_fit")
    if fit is not None:
        lines += [
            "",
            (
                f"Django's {EXTRAPOLATE_TO:,} figure is **extrapolated**, not measured: "
                "a least-squares fit t = a·n + b·n² through the measured sizes "
                f"(a = {fit['a_s_per_n'] * 1e6:.3g} µs, b = {fit['b_s_per_n2'] * 1e9:.3g} ns), "
                "since its connect() scans every receiver already connected."
            ),
        ]
    return lines


def render_memory(results: dict[str, Any]) -> list[str]:
    memory = results["memory"]
    samples = memory["samples_bytes"]
    rows = []
    for key, label in (
        ("connect", "after connect"),
        ("connect_send", "after connect + one `send(None)`"),
    ):
        ours = median(samples["parasignal"][key])
        theirs = median(samples["django"][key]) if "django" in samples else None
        rows.append([label, fmt(ours, " B"), fmt(theirs, " B"), ratio(ours, theirs)])
    return [
        "## 3. Memory per weakly connected receiver",
        "",
        (
            f"tracemalloc growth over connecting N = {memory['n']:,} pre-created functions "
            "(the functions themselves excluded), divided by N."
        ),
        "",
        *table(["", "parasignal", "Django", "parasignal/Django"], rows),
    ]


FANOUT_DISPATCHERS: Final = (
    ("parasignal/default", "parasignal `send_parallel`, default pool (64 threads)"),
    ("threadpool", "`ThreadPoolExecutor(64)`: submit one task per receiver, wait all"),
    ("pyee_executor", "pyee `ExecutorEventEmitter(ThreadPoolExecutor(64))`, waited for"),
    ("django/send", "Django `send` (sequential)"),
    ("django/asend", "Django `asyncio.run(asend(None))`"),
)
FANOUT_ROWS: Final = (
    *((f"{key}/{n}", label, str(n)) for key, label in FANOUT_DISPATCHERS for n in FANOUT_COUNTS),
    ("parasignal/max_workers=32/128", "parasignal `send_parallel`, `max_workers=32`", "128"),
)


def render_fanout(results: dict[str, Any]) -> list[str]:
    fanout = results["fanout"]
    rows = []
    for key, label, count in FANOUT_ROWS:
        entry = fanout.get(key)
        if entry is None:
            rows.append([label, count, "0", ABSENT, ABSENT, ABSENT, ABSENT])
            continue
        samples = entry["samples_ms"]
        rows.append(
            [
                label,
                count,
                str(len(samples)),
                fmt(median(samples)),
                fmt(min(samples)),
                fmt(entry["ideal_ms"]),
                ratio(median(samples), entry["ideal_ms"]),
            ]
        )
    lines = [
        f"## 4. Parallel fan-out: receivers each sleeping {FANOUT_SLEEP * 1e3:.0f} ms",
        "",
        "Wall time per dispatch, ms.",
        "",
        *table(
            ["dispatch", "receivers", "samples", "median", "min", "ideal", "median/ideal"],
            rows,
        ),
    ]
    ours = med(fanout, "parasignal/default/32", "samples_ms")
    theirs = med(fanout, "django/send/32", "samples_ms")
    if ours is not None and theirs is not None:
        lines += [
            "",
            f"`send_parallel` on 32 receivers is {theirs / ours:.1f}x faster than Django's `send`.",
        ]
    summary = []
    for key, label in FANOUT_DISPATCHERS:
        summary.append(
            [label, *(fmt(med(fanout, f"{key}/{n}", "samples_ms")) for n in FANOUT_COUNTS)]
        )
    lines += [
        "",
        "Side by side (median ms per dispatch):",
        "",
        *table(["dispatch", *(f"{n} x 10 ms" for n in FANOUT_COUNTS)], summary),
    ]
    return lines


def render_overhead(results: dict[str, Any]) -> list[str]:
    overhead = results["overhead"]
    bare = med(overhead, "thread/round_trip", "samples_us")
    cases = (
        ("parasignal/send_parallel/1", "parasignal `send_parallel`, 1 no-op receiver"),
        ("parasignal/send_parallel/100", "parasignal `send_parallel`, 100 no-op receivers"),
        ("parasignal/send/100", "parasignal `send` (sequential), 100 no-op receivers"),
        ("django/send/100", "Django `send`, 100 no-op receivers"),
        ("threadpool/submit_result", "`ThreadPoolExecutor(1).submit(f).result()`"),
        ("threadpool/fanout/1", "`ThreadPoolExecutor(64)` fan-out, 1 no-op task"),
        ("threadpool/fanout/100", "`ThreadPoolExecutor(64)` fan-out, 100 no-op tasks"),
        ("pyee_executor/fanout/1", "pyee `ExecutorEventEmitter`, 1 no-op listener"),
        ("pyee_executor/fanout/100", "pyee `ExecutorEventEmitter`, 100 no-op listeners"),
        ("thread/round_trip", "bare thread round trip (SimpleQueue.get → Lock.release)"),
    )
    rows = []
    for key, label in cases:
        value = med(overhead, key, "samples_us")
        entry = overhead.get(key)
        fastest = min(entry["samples_us"]) if entry else None
        rows.append([label, fmt(value), fmt(fastest), ratio(value, bare)])
    paired = paired_ratio(overhead, "parasignal/send_parallel/100", "django/send/100", "samples_us")
    per_receiver = []
    for label, one, hundred in (
        (
            "parasignal `send_parallel`",
            "parasignal/send_parallel/1",
            "parasignal/send_parallel/100",
        ),
        ("`ThreadPoolExecutor(64)`, one task each", "threadpool/fanout/1", "threadpool/fanout/100"),
        ("pyee `ExecutorEventEmitter`", "pyee_executor/fanout/1", "pyee_executor/fanout/100"),
    ):
        a, b = med(overhead, one, "samples_us"), med(overhead, hundred, "samples_us")
        per_receiver.append(
            [label, fmt(a), fmt(b), fmt(None if a is None or b is None else (b - a) / 99)]
        )
    for label, key in (
        ("parasignal `send` (sequential, for scale)", "parasignal/send/100"),
        ("Django `send` (sequential, for scale)", "django/send/100"),
    ):
        b = med(overhead, key, "samples_us")
        per_receiver.append([label, "", fmt(b), fmt(None if b is None else b / 100)])
    return [
        "## 5. Overhead of `send_parallel` on no-op receivers",
        "",
        f"µs per call, median of {results['config']['overhead_rounds']} interleaved samples.",
        "",
        *table(["call", "median µs", "min µs", "median ÷ bare thread round trip"], rows),
        "",
        (
            f"`send_parallel` / Django `send`, 100 no-op receivers: {ratio_text(paired)} "
            "(median of per-round ratios)."
        ),
        "",
        "Fan-out overhead per receiver: (time with 100 no-op receivers - time with 1) / 99.",
        "",
        *table(
            ["dispatch", "1 receiver µs", "100 receivers µs", "per extra receiver µs"], per_receiver
        ),
    ]


def render_saturation(results: dict[str, Any]) -> list[str]:
    rows = []
    for entry in results["saturation"].values():
        pending = entry["pending"]
        rows.append(
            [
                f"{entry['callers']}",
                f"{pending:,}",
                f"{entry['worker_threads']}",
                f"{entry['bytes_during'] / 1024:,.0f} KiB",
                fmt(entry["bytes_during"] / pending, " B"),
                f"{entry['bytes_peak'] / 1024:,.0f} KiB",
            ]
        )
    return [
        "## 6. Saturation: 10,000 receivers waiting for 4 workers",
        "",
        (
            f"`Signal(max_workers={SATURATION_WORKERS})`, receivers blocked until released; "
            "tracemalloc growth while they wait (receivers themselves excluded). A dispatch "
            "queues at most one helper per worker, never one task per receiver."
        ),
        "",
        *table(
            [
                "concurrent callers",
                "pending receivers",
                "worker threads",
                "memory while pending",
                "per pending receiver",
                "peak",
            ],
            rows,
        ),
    ]


def render_peers_send(results: dict[str, Any]) -> list[str]:
    send = results["send"]
    impls = [("parasignal", "parasignal"), ("django", "Django")]
    impls += [(peer, peer) for peer in PEER_MODULES]
    rows = []
    for count in SEND_COUNTS:
        row = [str(count)]
        for key, _ in impls:
            value = med(send, f"{key}/{count}/none", "samples_us")
            ours = med(send, f"parasignal/{count}/none", "samples_us")
            cell = fmt(value)
            if value is not None and ours and key != "parasignal":
                cell += f" ({value / ours:.2g}x)"
            row.append(cell)
        rows.append(row)
    return [
        "## 1b. Dispatch with no payload, every peer",
        "",
        (
            "µs per call (in brackets: multiple of parasignal's time), same samples as section 1: "
            "parasignal and Django `send(None)`, blinker `Signal.send(None)`, psygnal "
            "`SignalInstance(()).emit()`, pyee `EventEmitter.emit('order_placed')`, all with "
            "no-op receivers, sampled back to back in each round. Each library does different "
            "work per call (weak references, sender filtering, signature checks), so this is "
            "the cost of each one's own contract."
        ),
        "",
        *table(["receivers", *(label + " µs" for _, label in impls)], rows),
    ]


def render_scale(results: dict[str, Any]) -> list[str]:
    scale = results["scale"]
    rows = []
    for key, entry in scale.items():
        label = {"parasignal": "parasignal", "django": "Django"}.get(key, key)
        if "connect_s" in entry:
            total = median(entry["connect_s"])
            rows.append(
                [
                    label,
                    fmt(total, " s"),
                    fmt(total * 1e6 / EXTRAPOLATE_TO, " µs"),
                    fmt(entry["bytes_per_receiver"], " B"),
                ]
            )
        else:
            shape = "quadratic" if entry["quadratic"] else "linear"
            rows.append(
                [
                    f"{label} (**extrapolated**, {shape})",
                    f"~{fmt(entry['extrapolated_s'], ' s')}",
                    f"~{fmt(entry['extrapolated_s'] * 1e6 / EXTRAPOLATE_TO, ' µs')}",
                    "not measured",
                ]
            )
    return [
        f"## 7. {EXTRAPOLATE_TO:,} receivers: connect time and memory, every peer",
        "",
        (
            f"Each implementation connects {EXTRAPOLATE_TO:,} distinct pre-created no-op "
            "functions to a fresh signal, as it holds them (parasignal, Django and blinker "
            "weakly, psygnal and pyee strongly); memory is tracemalloc growth after connecting "
            "and one dispatch, divided by N. An implementation whose connect time at "
            f"{PEER_CONNECT_PROBE:,} receivers grows faster than linearly, or projects past "
            f"{PEER_CONNECT_BUDGET_S:.0f} s, is extrapolated from {PEER_CONNECT_PROBE:,} "
            "instead of measured."
        ),
        "",
        *table(["implementation", "connect total", "per connect", "memory per receiver"], rows),
    ]


def render_notes(results: dict[str, Any]) -> list[str]:
    m = results["machine"]
    absent = [
        name
        for name in ("django", *PEER_MODULES)
        if not (m["django"] if name == "django" else m["peers"].get(name))
    ]
    notes = [
        f'- {name} is not installed: its columns say "absent" '
        "(`pip install -e '.[bench]'` brings every peer)."
        for name in absent
    ]
    if m["matplotlib"] is None:
        notes.append("- matplotlib is not installed: no chart was drawn.")
    elif results.get("chart"):
        notes.append(f"- Chart: `{results['chart']}`.")
    return ["## Notes", "", *notes] if notes else []


def draw_chart(results: dict[str, Any], path: Path) -> bool:
    """Draw send() cost and IO fan-out side by side as a PNG; False without matplotlib."""
    plt = load_matplotlib()
    if plt is None:
        return False
    send, fanout = results["send"], results["fanout"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))
    counts = [c for c in SEND_COUNTS if c > 0]
    for key, label in (
        ("parasignal", "parasignal"),
        ("django", "Django"),
        *((p, p) for p in PEER_MODULES),
    ):
        values = [med(send, f"{key}/{c}/none", "samples_us") for c in counts]
        if all(v is not None for v in values):
            left.plot(counts, values, marker="o", label=label)
    left.set(
        xscale="log",
        yscale="log",
        xlabel="no-op receivers",
        ylabel="µs per dispatch",
        title="Sequential dispatch, no payload (lower is better)",
    )
    left.grid(visible=True, which="both", alpha=0.3)
    left.legend()
    labels = [label.split(",")[0].replace("`", "") for _, label in FANOUT_DISPATCHERS]
    width = 0.8 / len(FANOUT_DISPATCHERS)
    for i, ((key, _), label) in enumerate(zip(FANOUT_DISPATCHERS, labels, strict=True)):
        values = [med(fanout, f"{key}/{n}", "samples_ms") for n in FANOUT_COUNTS]
        if any(v is None for v in values):
            continue
        xs = [j + (i - (len(FANOUT_DISPATCHERS) - 1) / 2) * width for j in range(len(values))]
        right.bar(xs, values, width=width, label=label)
    right.set_xticks(range(len(FANOUT_COUNTS)), [f"{n} x 10 ms" for n in FANOUT_COUNTS])
    right.set(
        yscale="log",
        ylabel="ms per dispatch (wall)",
        title="IO fan-out: receivers each sleeping 10 ms (lower is better)",
    )
    ticker = importlib.import_module("matplotlib.ticker")
    right.yaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
    right.yaxis.set_minor_formatter(ticker.NullFormatter())
    right.grid(visible=True, axis="y", which="both", alpha=0.3)
    right.legend(fontsize="small")
    m = results["machine"]
    fig.suptitle(
        f"parasignal {m['parasignal']} vs peers: {m['python']}, "
        f"{m['usable_cpus']} CPUs, {m['mode']} run",
        fontsize="medium",
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def render_asend(results: dict[str, Any]) -> list[str]:
    cases = results["asend"]
    ideal = FANOUT_SLEEP * 1000
    rows = []
    for kind in ("sync", "async"):
        parallel = med(cases, f"parasignal-asend_parallel/{kind}", "samples_ms")
        ours = med(cases, f"parasignal/{kind}", "samples_ms")
        theirs = med(cases, f"django/{kind}", "samples_ms")
        rows.append(
            [
                f"{ASEND_RECEIVERS} {kind} receivers x {ideal:.0f} ms",
                fmt(parallel, " ms"),
                ratio(parallel, ideal),
                fmt(ours, " ms"),
                fmt(theirs, " ms"),
            ]
        )
    baseline = med(cases, "parasignal-send_parallel/sync", "samples_ms")
    return [
        "## 8. `asend()` and `asend_parallel()`: sync and async receivers",
        "",
        (
            "Wall time of `asyncio.run(signal.asend_parallel(None))` and "
            "`asyncio.run(signal.asend(None))`, median. `asend` (parasignal's and Django's) "
            "runs sync receivers one after another in one thread; `asend_parallel` runs them "
            "concurrently on the pool. All await async receivers concurrently. In the same "
            f"rounds, `send_parallel` on the same {ASEND_RECEIVERS} sync receivers took "
            f"{fmt(baseline, ' ms')} ({ratio(baseline, ideal)} of the ideal)."
        ),
        "",
        *table(
            [
                "receivers",
                "parasignal `asend_parallel`",
                "x ideal",
                "parasignal `asend`",
                "Django `asend`",
            ],
            rows,
        ),
    ]


def render(results: dict[str, Any]) -> str:
    sections = [
        ["# parasignal vs django.dispatch, blinker, psygnal and pyee"],
        render_machine(results),
        render_send(results),
        render_peers_send(results),
        render_connect(results),
        render_memory(results),
        render_fanout(results),
        render_overhead(results),
        render_saturation(results),
        render_scale(results),
        render_asend(results),
        render_notes(results),
    ]
    return "\n\n".join("\n".join(lines) for lines in sections if lines) + "\n"


# -- entry point ---------------------------------------------------------------------


def warm_up(django_signal: SignalFactory | None) -> None:
    """Trigger lazy imports (django.conf, structlog...) before anything is measured."""
    receivers = make_noops(2)
    signal = connected(parasignal.Signal, receivers)
    signal.send(None)
    signal.send_parallel(None)
    if django_signal is not None:
        connected(django_signal, receivers).send(None)


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
    config = QUICK if args.quick else DEFAULT
    django_version, django_signal = load_django()
    peers, peer_versions = load_peers()
    if load_matplotlib() is not None:
        peer_versions["matplotlib"] = package_version("matplotlib")
    started = time.perf_counter()
    warm_up(django_signal)
    results: dict[str, Any] = {
        "machine": machine_info(config, django_version, peer_versions),
        "config": asdict(config),
    }
    benches: dict[str, Callable[[Config, SignalFactory | None], dict[str, Any]]] = {
        "send": partial(bench_send, peers=peers),
        "connect": bench_connect,
        "memory": bench_memory,
        "fanout": bench_fanout,
        "overhead": bench_overhead,
        "saturation": bench_saturation,
        "asend": bench_asend,
        "scale": partial(bench_scale, peers=peers),
    }
    for name, bench in benches.items():
        section_started = time.perf_counter()
        print(f"[{name}] ...", file=sys.stderr, flush=True)
        results[name] = bench(config, django_signal)
        print(
            f"[{name}] {time.perf_counter() - section_started:.1f} s", file=sys.stderr, flush=True
        )
    results["machine"]["run_seconds"] = time.perf_counter() - started
    if draw_chart(results, args.chart):
        results["chart"] = str(args.chart)
        print(f"chart written to {args.chart}", file=sys.stderr)
    print(render(results), end="")
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
