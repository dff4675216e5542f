"""The sequential cases: ``send()`` cost, ``connect()`` time and memory per receiver.

Sections 1 and 1b (``bench_send``), 2 (``bench_connect``), 3
(``bench_memory``) and 7 (``bench_scale``) of the report. Each case takes the
run's Config, Django's Signal class (None when Django is absent) and, where
the peers take part, the installed peers; it returns a typed result and
renders nothing.
"""

from __future__ import annotations

import gc
import time
import tracemalloc
from collections.abc import Sequence
from typing import Any

import parasignal
from _common import (
    MicroTimer,
    Receiver,
    SignalFactory,
    connected,
    gc_paused,
    make_noops,
    make_positional_noops,
    median,
    rotated,
    run_interleaved,
)
from config import (
    EXTRAPOLATE_TO,
    PEER_CONNECT_BUDGET_S,
    PEER_CONNECT_PROBE,
    SEND_COUNTS,
    Config,
)
from environment import Peer, home_impls
from results import (
    ConnectKey,
    ConnectResult,
    MemoryResult,
    MemorySamples,
    QuadraticFit,
    ScaleExtrapolated,
    ScaleMeasured,
    ScaleResult,
    SendArgs,
    SendKey,
    SendResult,
)

# -- 1. send() -----------------------------------------------------------------


def bench_send(
    config: Config, django_signal: SignalFactory | None, peers: dict[str, Peer] | None = None
) -> SendResult:
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
    statements: dict[SendArgs, str] = {"none": "send(None)", "payload": "send(None, payload=1)"}
    signals: dict[tuple[str, int], Any] = {}
    for count in SEND_COUNTS:
        for impl, factory in impls.items():
            signal = signals[impl, count] = connected(factory, receivers[:count])
            signal.send(None)  # warm any per-signal snapshot or cache
    timers: dict[SendKey, MicroTimer] = {}
    groups: list[list[MicroTimer]] = []
    for count in SEND_COUNTS:
        for args, stmt in statements.items():
            group = []
            for impl in impls:
                namespace = {"send": signals[impl, count].send}
                timer = timers[SendKey(impl, count, args)] = MicroTimer(
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
                    timer = timers[SendKey(peer.key, count, "none")] = MicroTimer(
                        peer.send_stmt, namespace, config.sample_seconds
                    )
                    group.append(timer)
            groups.append(group)
    run_interleaved(groups, config.send_rounds)
    return SendResult({key: timer.timing() for key, timer in timers.items()})


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


def bench_connect(config: Config, django_signal: SignalFactory | None) -> ConnectResult:
    """Connect time: parasignal at 100k (and Django's sizes), Django at its sizes."""
    receivers = make_noops(max(config.connect_n, *config.django_connect_ns))
    cases: dict[ConnectKey, tuple[SignalFactory, int, int]] = {
        ConnectKey("parasignal", config.connect_n): (
            parasignal.Signal,
            config.connect_n,
            config.connect_rounds,
        )
    }
    for n in config.django_connect_ns:
        cases[ConnectKey("parasignal", n)] = (parasignal.Signal, n, config.connect_rounds)
        if django_signal is not None:
            cases[ConnectKey("django", n)] = (django_signal, n, config.django_connect_rounds)
    samples: dict[ConnectKey, list[float]] = {name: [] for name in cases}
    rounds = max(rounds for _, _, rounds in cases.values())
    for round_index in range(rounds):
        for name in rotated(list(cases), round_index):
            factory, n, case_rounds = cases[name]
            if round_index < case_rounds:
                samples[name].append(time_connect(factory, receivers[:n]))
    fit: QuadraticFit | None = None
    extrapolated: float | None = None
    if django_signal is not None:
        points = [(n, median(samples[ConnectKey("django", n)])) for n in config.django_connect_ns]
        linear, quadratic = fit_quadratic(points)
        fit = QuadraticFit(linear, quadratic)
        extrapolated = linear * EXTRAPOLATE_TO + quadratic * EXTRAPOLATE_TO**2
    return ConnectResult(
        {name: tuple(values) for name, values in samples.items()}, fit, extrapolated
    )


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


def bench_memory(config: Config, django_signal: SignalFactory | None) -> MemoryResult:
    receivers = make_noops(config.memory_n)
    impls: dict[str, SignalFactory] = {"parasignal": parasignal.Signal}
    if django_signal is not None:
        impls["django"] = django_signal
    connect: dict[str, list[float]] = {impl: [] for impl in impls}
    connect_send: dict[str, list[float]] = {impl: [] for impl in impls}
    for round_index in range(config.memory_rounds):
        for impl in rotated(list(impls), round_index):
            per_connect, per_connect_send = measure_memory(impls[impl], receivers)
            connect[impl].append(per_connect)
            connect_send[impl].append(per_connect_send)
    return MemoryResult(
        config.memory_n,
        {impl: MemorySamples(tuple(connect[impl]), tuple(connect_send[impl])) for impl in impls},
    )


# -- 7. every peer at 100,000 receivers ----------------------------------------


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


def bench_scale(
    config: Config, django_signal: SignalFactory | None, peers: dict[str, Peer] | None = None
) -> ScaleResult:
    """Connect time and memory at 100,000 receivers, for every implementation that can.

    Each implementation is first timed at 10,000 receivers; when its time
    grows faster than linearly, or 100,000 would take longer than
    PEER_CONNECT_BUDGET_S, its 100,000 figure is extrapolated instead.
    """
    impls = {**home_impls(django_signal), **(peers or {})}
    kwarg_noops = make_noops(EXTRAPOLATE_TO)
    positional = make_positional_noops(EXTRAPOLATE_TO)
    entries: dict[str, ScaleMeasured | ScaleExtrapolated] = {}
    for key, impl in impls.items():
        receivers = kwarg_noops if key in ("parasignal", "django") else positional
        half = connect_all(impl, receivers[: PEER_CONNECT_PROBE // 2])
        probe = connect_all(impl, receivers[:PEER_CONNECT_PROBE])
        growth = probe / max(half, 1e-9)
        scale = EXTRAPOLATE_TO / PEER_CONNECT_PROBE
        if growth > 3.0 or probe * scale > PEER_CONNECT_BUDGET_S:
            entries[key] = ScaleExtrapolated(
                probe_s=probe,
                half_probe_s=half,
                growth=growth,
                extrapolated_s=probe * scale**2 if growth > 3.0 else probe * scale,
                quadratic=growth > 3.0,
            )
        else:
            connect_s = tuple(
                connect_all(impl, receivers) for _ in range(config.peer_connect_rounds)
            )
            entries[key] = ScaleMeasured(
                probe_s=probe,
                half_probe_s=half,
                growth=growth,
                connect_s=connect_s,
                bytes_per_receiver=memory_per_receiver(impl, receivers),
            )
    return ScaleResult(entries)
