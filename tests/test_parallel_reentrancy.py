"""Receivers that dispatch, connect or disconnect from worker threads never deadlock."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import structlog

from parasignal import Signal

WAIT = 10.0  # seconds: how long any Event, Barrier or lock wait may take before the test fails

Receiver = Callable[..., Any]


class Sender:
    def __init__(self, label: str) -> None:
        self.label = label

    def __repr__(self) -> str:
        return f"<Sender {self.label}>"


@pytest.mark.parametrize("method", ["send_parallel", "send_parallel_robust"])
def test_a_receiver_may_dispatch_the_same_signal_for_another_sender_on_a_one_thread_pool(
    method: str,
) -> None:
    signal = Signal(max_workers=1)
    outer, inner = Sender("outer"), Sender("inner")

    def inner_receiver(**kwargs: Any) -> str:
        return f"inner {kwargs['depth']}"

    def other_inner_receiver(**kwargs: Any) -> str:
        return "other inner"

    def outer_receiver(**kwargs: Any) -> Any:
        return getattr(signal, method)(inner, depth=1)

    signal.connect(outer_receiver, sender=outer)
    signal.connect(inner_receiver, sender=inner)
    signal.connect(other_inner_receiver, sender=inner)

    result = getattr(signal, method)(outer)

    assert result == [
        (outer_receiver, [(inner_receiver, "inner 1"), (other_inner_receiver, "other inner")])
    ]


def test_a_receiver_may_dispatch_another_signal_on_the_same_one_thread_executor() -> None:
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="shared") as executor:
        first = Signal(executor=executor, caller_runs=False)
        second = Signal(executor=executor, caller_runs=False)
        threads: list[str] = []

        def on_second(**kwargs: Any) -> int:
            threads.append(threading.current_thread().name)
            return 2

        def on_first(**kwargs: Any) -> Any:
            threads.append(threading.current_thread().name)
            return second.send_parallel(None)

        second.connect(on_second)
        first.connect(on_first)

        assert first.send_parallel(None) == [(on_first, [(on_second, 2)])]
        assert len(threads) == 2
        assert all(name.startswith("shared") for name in threads)


@pytest.mark.parametrize("pool", ["own pool", "caller's executor"])
def test_nested_dispatch_does_not_deadlock_when_every_worker_is_busy(pool: str) -> None:
    workers = 2
    executor = ThreadPoolExecutor(max_workers=workers) if pool == "caller's executor" else None
    signal = Signal(executor=executor) if executor else Signal(max_workers=workers)
    outer, inner = Sender("outer"), Sender("inner")
    # Every worker is inside an outer receiver before any of them dispatches.
    all_busy = threading.Barrier(workers)

    def make_outer(index: int) -> Receiver:
        def outer_receiver(**kwargs: Any) -> Any:
            all_busy.wait(WAIT)
            return signal.send_parallel(inner, index=index)

        return outer_receiver

    def make_inner(index: int) -> Receiver:
        def inner_receiver(**kwargs: Any) -> tuple[int, int]:
            return kwargs["index"], index

        return inner_receiver

    outers = [make_outer(i) for i in range(workers)]
    inners = [make_inner(i) for i in range(5)]
    for receiver in outers:
        signal.connect(receiver, sender=outer)
    for receiver in inners:
        signal.connect(receiver, sender=inner)

    try:
        result = signal.send_parallel(outer)
    finally:
        if executor is not None:
            executor.shutdown()

    assert result == [
        (o, [(r, (index, j)) for j, r in enumerate(inners)]) for index, o in enumerate(outers)
    ]


def test_dispatch_nested_three_levels_deep_on_a_one_thread_pool_completes() -> None:
    signal = Signal(max_workers=1)
    levels = [Sender(f"level {i}") for i in range(4)]

    def make(level: int, index: int) -> Receiver:
        def receiver(**kwargs: Any) -> Any:
            if level + 1 < len(levels):
                return signal.send_parallel(levels[level + 1])
            return f"leaf {index}"

        return receiver

    tree: list[list[Receiver]] = [[make(level, i) for i in range(2)] for level in range(4)]
    for level, receivers in enumerate(tree):
        for receiver in receivers:
            signal.connect(receiver, sender=levels[level])

    result = signal.send_parallel(levels[0])

    leaves = [(r, f"leaf {i}") for i, r in enumerate(tree[3])]
    level_2 = [(r, leaves) for r in tree[2]]
    level_1 = [(r, level_2) for r in tree[1]]
    assert result == [(r, level_1) for r in tree[0]]


def test_two_signals_on_one_thread_pools_may_dispatch_each_other_back_and_forth() -> None:
    ping = Signal(max_workers=1, name="ping")
    pong = Signal(max_workers=1, name="pong")
    rounds = 6

    def on_ping(*, n: int, **kwargs: Any) -> Any:
        return n if n >= rounds else pong.send_parallel(None, n=n + 1)[0][1]

    def on_pong(*, n: int, **kwargs: Any) -> Any:
        return n if n >= rounds else ping.send_parallel(None, n=n + 1)[0][1]

    ping.connect(on_ping)
    pong.connect(on_pong)

    assert ping.send_parallel(None, n=0) == [(on_ping, rounds)]
    assert pong.send_parallel_robust(None, n=1) == [(on_pong, rounds)]


def test_a_failure_in_a_nested_dispatch_propagates_through_the_outer_one() -> None:
    signal = Signal(max_workers=1)
    outer, inner = Sender("outer"), Sender("inner")

    def inner_fails(**kwargs: Any) -> None:
        raise ValueError("inner failure")

    def outer_receiver(**kwargs: Any) -> Any:
        return signal.send_parallel(inner)

    signal.connect(outer_receiver, sender=outer)
    signal.connect(inner_fails, sender=inner)

    with pytest.raises(ValueError, match="inner failure"):
        signal.send_parallel(outer)
    with structlog.testing.capture_logs():
        [(receiver, response)] = signal.send_parallel_robust(outer)
    assert receiver is outer_receiver
    assert isinstance(response, ValueError)


def test_many_nested_dispatches_on_the_shared_pool_all_complete() -> None:
    outer_signal = Signal()
    inner_signal = Signal()
    fan_out = 80  # more receivers than the shared pool has threads

    def make_inner(index: int) -> Receiver:
        def inner_receiver(*, n: int, **kwargs: Any) -> int:
            return n * 1000 + index

        return inner_receiver

    def make_outer(index: int) -> Receiver:
        def outer_receiver(**kwargs: Any) -> Any:
            return [response for _, response in inner_signal.send_parallel(None, n=index)]

        return outer_receiver

    inners = [make_inner(i) for i in range(fan_out)]
    outers = [make_outer(i) for i in range(fan_out)]
    for receiver in inners:
        inner_signal.connect(receiver)
    for receiver in outers:
        outer_signal.connect(receiver)

    result = outer_signal.send_parallel(None)

    assert result == [(o, [i * 1000 + j for j in range(fan_out)]) for i, o in enumerate(outers)]


@pytest.mark.parametrize("max_workers", [None, 1, 4])
def test_receivers_may_connect_and_disconnect_receivers_themselves_included(
    max_workers: int | None,
) -> None:
    signal = Signal(max_workers=max_workers)
    count = 12
    lock_taken: list[bool] = []
    disconnected: list[bool] = []

    def replacement(**kwargs: Any) -> str:
        return "replacement"

    def make(index: int) -> Receiver:
        def receiver(**kwargs: Any) -> int:
            # The signal's lock is free while receivers run: taking it succeeds.
            taken = signal.lock.acquire(timeout=WAIT)
            if taken:
                signal.lock.release()
            lock_taken.append(taken)
            disconnected.append(signal.disconnect(receiver))
            signal.connect(replacement, dispatch_uid=f"replacement {index}")
            return index

        return receiver

    originals = [make(i) for i in range(count)]
    for receiver in originals:
        signal.connect(receiver)

    # A dispatch calls every receiver it started with, changes or not.
    result = signal.send_parallel(None)
    assert result == [(r, i) for i, r in enumerate(originals)]
    assert lock_taken == [True] * count
    assert disconnected == [True] * count
    # And the changes show in the next dispatch.
    assert signal.send_parallel(None) == [(replacement, "replacement")] * count
    assert len(signal.receivers) == count


def test_receivers_of_concurrent_dispatches_may_reconnect_each_other() -> None:
    signal = Signal(max_workers=3)
    senders = [Sender(f"sender {i}") for i in range(6)]
    rounds = 30

    def make(sender: Sender) -> Receiver:
        def receiver(*, round: int, **kwargs: Any) -> int:  # noqa: A002 - a named argument
            # Move every other sender's receiver to the end of the list.
            for other in senders:
                if other is not sender:
                    signal.disconnect(dispatch_uid=other.label, sender=other)
                    signal.connect(receivers[other.label], sender=other, dispatch_uid=other.label)
            return round

        return receiver

    receivers = {s.label: make(s) for s in senders}
    for sender in senders:
        signal.connect(receivers[sender.label], sender=sender, dispatch_uid=sender.label)
    errors: list[BaseException] = []

    def caller(sender: Sender) -> None:
        try:
            for round_ in range(rounds):
                result = signal.send_parallel(sender, round=round_)
                assert result == [(receivers[sender.label], round_)]
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=caller, args=(s,), daemon=True) for s in senders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT * 3)

    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    assert len(signal.receivers) == len(senders)
