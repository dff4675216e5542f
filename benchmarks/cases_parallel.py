"""The parallel cases: fan-out wall time, overhead, saturation, and ``asend``.

Sections 4 (``bench_fanout``), 5 (``bench_overhead``), 6
(``bench_saturation``) and 8 (``bench_asend``) of the report, each set next
to the other ways to fan out: a plain ThreadPoolExecutor, pyee's
ExecutorEventEmitter (when pyee is installed) and Django's sequential
dispatch. Each case returns a typed result and renders nothing.
"""

from __future__ import annotations

import asyncio
import gc
import queue
import threading
import time
import tracemalloc
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, NamedTuple

import parasignal
from _common import (
    MicroTimer,
    Receiver,
    SignalFactory,
    connected,
    make_async_sleepers,
    make_noops,
    make_sleepers,
    rotated,
    run_interleaved,
    time_once,
)
from config import (
    ASEND_RECEIVERS,
    FANOUT_COUNTS,
    FANOUT_SLEEP,
    SATURATION_PENDING,
    SATURATION_WORKERS,
    Config,
)
from environment import load_pyee_executor_emitter
from results import (
    AsendKey,
    AsendResult,
    FanoutKey,
    FanoutResult,
    OverheadResult,
    ReceiverKind,
    Saturation,
    SaturationResult,
    WallTimes,
)

# -- ways to fan out -------------------------------------------------------------


def run_asend(signal: Any) -> object:
    return asyncio.run(signal.asend(None))


def run_asend_parallel(signal: Any) -> object:
    return asyncio.run(signal.asend_parallel(None))


def run_send_parallel(signal: Any) -> object:
    return signal.send_parallel(None)


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


# -- 4. parallel fan-out ---------------------------------------------------------


class FanoutCase(NamedTuple):
    call: Callable[[], object]
    ideal: float  # seconds, if every receiver had a thread of its own when possible
    slow: bool  # sequential Django dispatch: sampled only config.slow_rounds times


def bench_fanout(config: Config, django_signal: SignalFactory | None) -> FanoutResult:
    """send_parallel wall time on sleeping receivers, next to every other way to fan out.

    Django's sequential ``send`` and ``asend``, a plain ThreadPoolExecutor
    (64 threads, the size of parasignal's default pool) given one task per
    receiver, and pyee's ExecutorEventEmitter on such an executor.
    """
    sleepers = make_sleepers(128, FANOUT_SLEEP)
    thread_pool = ThreadPoolExecutor(64, thread_name_prefix="bench-tpe")
    pyee_pool = ThreadPoolExecutor(64, thread_name_prefix="bench-pyee")
    pyee_emitter_class = load_pyee_executor_emitter()
    cases: dict[FanoutKey, FanoutCase] = {}
    keep_alive: list[Any] = []
    for n in FANOUT_COUNTS:
        signal = connected(parasignal.Signal, sleepers[:n])
        keep_alive.append(signal)
        waves = -(-n // 64)  # the shared default pool has 64 threads
        cases[FanoutKey("parasignal/default", n)] = FanoutCase(
            partial(signal.send_parallel, None), FANOUT_SLEEP * waves, slow=False
        )
    bounded = connected(partial(parasignal.Signal, max_workers=32), sleepers)
    keep_alive.append(bounded)
    cases[FanoutKey("parasignal/max_workers=32", 128)] = FanoutCase(
        partial(bounded.send_parallel, None), FANOUT_SLEEP * 4, slow=False
    )
    for n in FANOUT_COUNTS:
        waves = -(-n // 64)
        cases[FanoutKey("threadpool", n)] = FanoutCase(
            partial(threadpool_fanout, thread_pool, sleepers[:n]), FANOUT_SLEEP * waves, slow=False
        )
        if pyee_emitter_class is not None:
            cases[FanoutKey("pyee_executor", n)] = FanoutCase(
                pyee_fanout_case(pyee_emitter_class, pyee_pool, n, FANOUT_SLEEP),
                FANOUT_SLEEP * waves,
                slow=False,
            )
    if django_signal is not None:
        for n in FANOUT_COUNTS:
            sequential = connected(django_signal, sleepers[:n])
            keep_alive.append(sequential)
            cases[FanoutKey("django/send", n)] = FanoutCase(
                partial(sequential.send, None), FANOUT_SLEEP * n, slow=True
            )
            cases[FanoutKey("django/asend", n)] = FanoutCase(
                partial(run_asend, sequential), FANOUT_SLEEP * n, slow=True
            )
    # Warm up: start the pools' threads and asgiref's executor thread.
    for case in cases.values():
        for _ in range(1 if case.slow else 2):
            case.call()
    samples: dict[FanoutKey, list[float]] = {name: [] for name in cases}
    for round_index in range(config.fanout_rounds):
        for name in rotated(list(cases), round_index):
            if cases[name].slow and round_index >= config.slow_rounds:
                continue
            samples[name].append(time_once(cases[name].call))
    thread_pool.shutdown()
    pyee_pool.shutdown()
    return FanoutResult(
        {
            name: WallTimes(case.ideal * 1e3, tuple(s * 1e3 for s in samples[name]))
            for name, case in cases.items()
        }
    )


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


def bench_overhead(config: Config, django_signal: SignalFactory | None) -> OverheadResult:
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
    return OverheadResult({name: timer.timing() for name, timer in timers.items()})


# -- 6. saturation ---------------------------------------------------------------


def measure_saturation(callers: int) -> Saturation:
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
    return Saturation(
        callers=callers,
        pending=SATURATION_PENDING - SATURATION_WORKERS,
        bytes_during=during - before,
        bytes_peak=peak - before,
        worker_threads=worker_threads,
    )


def bench_saturation(config: Config, django_signal: SignalFactory | None) -> SaturationResult:
    """Bounded memory when callers and receivers far outnumber workers."""
    del config, django_signal  # the same in every mode; no Django counterpart
    return SaturationResult(tuple(measure_saturation(callers) for callers in (1, 100)))


# -- 8. asend --------------------------------------------------------------------


def bench_asend(config: Config, django_signal: SignalFactory | None) -> AsendResult:
    """``asend`` and ``asend_parallel`` on 32 receivers sleeping 10 ms, vs Django's ``asend``.

    The fast cases (parasignal's ``asend_parallel``, its ``send_parallel`` on
    the same receivers as the in-run baseline, and everything with async
    receivers) are sampled round-robin, so that machine noise hits all alike;
    the sequential ones (both ``asend``s with sync receivers: 320 ms each)
    only ``config.slow_rounds`` times.
    """
    kinds: dict[ReceiverKind, list[Receiver]] = {
        "sync": make_sleepers(ASEND_RECEIVERS, FANOUT_SLEEP),
        "async": make_async_sleepers(ASEND_RECEIVERS, FANOUT_SLEEP),
    }
    calls: dict[AsendKey, tuple[Callable[[], object], bool]] = {}
    for kind, receivers in kinds.items():
        ours = connected(parasignal.Signal, receivers)
        calls[AsendKey("parasignal-asend_parallel", kind)] = (
            partial(run_asend_parallel, ours),
            True,
        )
        calls[AsendKey("parasignal", kind)] = (partial(run_asend, ours), kind == "async")
        if kind == "sync":
            calls[AsendKey("parasignal-send_parallel", "sync")] = (
                partial(run_send_parallel, ours),
                True,
            )
        if django_signal is not None:
            theirs = connected(django_signal, receivers)
            calls[AsendKey("django", kind)] = (partial(run_asend, theirs), kind == "async")
    for call, _ in calls.values():
        call()  # warm up: threads, imports
    samples: dict[AsendKey, list[float]] = {name: [] for name in calls}
    for round_index in range(config.fanout_rounds):
        for name, (call, fast) in calls.items():
            if fast or round_index < config.slow_rounds:
                samples[name].append(time_once(call) * 1000)
    return AsendResult({name: tuple(values) for name, values in samples.items()})
