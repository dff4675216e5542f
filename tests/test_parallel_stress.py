"""Many threads at once: each checks every answer against its own model of the signal."""

from __future__ import annotations

import gc
import random
import threading
import traceback
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import structlog

from conftest import collect
from parasignal import Signal, _pool

WAIT = 30.0  # seconds: how long a thread may take before the test fails

Receiver = Callable[..., Any]
Result = list[tuple[Receiver, Any]]

METHODS = ("send", "send_robust", "send_parallel", "send_parallel_robust")


class Sender:
    def __init__(self, label: str) -> None:
        self.label = label

    def __repr__(self) -> str:
        return f"<Sender {self.label}>"


class Listener:
    """Receives through a bound method; with *cyclic*, only the collector can free it."""

    def __init__(self, tag: str, *, cyclic: bool) -> None:
        self.tag = tag
        self.me: Listener | None = self if cyclic else None

    def on_signal(self, *, value: int, **kwargs: Any) -> tuple[str, int]:
        return self.tag, value


def make_function(tag: str, *, fails: bool) -> Receiver:
    def receiver(*, value: int, **kwargs: Any) -> tuple[str, int]:
        if fails:
            raise ValueError(tag)
        return tag, value

    return receiver


@dataclass
class Entry:
    """One receiver a thread connected, as the thread's model sees it."""

    tag: str
    fails: bool
    # Held while connected and not dropped; None once dropped.
    receiver: Receiver | None
    # What is left of a dropped (weakly connected) receiver: until collected,
    # the signal may or may not still call it.
    ghost: Callable[[], Receiver | None]
    weak: bool


class Worker:
    """One thread's sender, receivers and model of what the signal must answer."""

    def __init__(self, signal: Signal, index: int, shared: list[Receiver], seed: int) -> None:
        self.signal = signal
        self.index = index
        self.sender = Sender(f"thread {index}")
        self.shared = shared  # connected for every sender before the threads start
        self.rng = random.Random(seed)  # noqa: S311 - reproducible, not cryptographic
        self.model: list[Entry] = []
        self.made = 0
        self.sends = 0

    # -- operations ----------------------------------------------------------------

    def connect(self) -> None:
        tag = f"{self.index}-{self.made}"
        self.made += 1
        fails = self.rng.random() < 0.1
        kind = "function" if fails else self.rng.choice(["function", "method", "cyclic"])
        # Failing receivers are connected strongly, so they are never dropped
        # and whether one fails is never in doubt.
        weak = not fails and self.rng.random() < 0.7
        receiver: Receiver
        if kind == "function":
            receiver = make_function(tag, fails=fails)
            ghost: Callable[[], Receiver | None] = weakref.ref(receiver)
        else:
            receiver = Listener(tag, cyclic=kind == "cyclic").on_signal
            ghost = weakref.WeakMethod(receiver)
        self.signal.connect(receiver, sender=self.sender, weak=weak)
        self.model.append(Entry(tag, fails, receiver, ghost, weak))

    def disconnect(self) -> None:
        live = [entry for entry in self.model if entry.receiver is not None]
        if not live:
            return
        entry = self.rng.choice(live)
        assert self.signal.disconnect(entry.receiver, sender=self.sender), entry.tag
        self.model.remove(entry)

    def drop(self) -> None:
        droppable = [entry for entry in self.model if entry.receiver is not None and entry.weak]
        if not droppable:
            return
        self.rng.choice(droppable).receiver = None
        if self.rng.random() < 0.1:
            gc.collect()

    def drop_all(self) -> None:
        for entry in self.model:
            if entry.weak:
                entry.receiver = None

    def send(self, method: str | None = None) -> None:
        method = method or self.rng.choice(METHODS)
        value = self.sends
        self.sends += 1
        try:
            result: Result = getattr(self.signal, method)(self.sender, value=value)
        except ValueError as exc:
            self.check_raised(method, exc)
        else:
            self.check(method, result, value)
        # Forget ghosts that are gone for good.
        self.model = [e for e in self.model if e.receiver is not None or e.ghost() is not None]

    # -- checks ----------------------------------------------------------------------

    def first_failing(self) -> Entry | None:
        return next((e for e in self.model if e.fails and e.receiver is not None), None)

    def check_raised(self, method: str, exc: ValueError) -> None:
        failing = self.first_failing()
        assert method in {"send", "send_parallel"}, f"{method} raised {exc!r}"
        assert failing is not None, f"{method} raised {exc!r} with no failing receiver"
        assert exc.args == (failing.tag,), f"{method} raised {exc!r}, not {failing.tag}'s"

    def check(self, method: str, result: Result, value: int) -> None:
        robust = method.endswith("robust")
        if not robust:
            failing = self.first_failing()
            assert failing is None, f"{method} returned although {failing} fails"
        shared = len(self.shared)
        assert [r for r, _ in result[:shared]] == self.shared, method
        assert [response for _, response in result[:shared]] == [("shared", value)] * shared
        position = shared
        for entry in self.model:
            current = result[position][0] if position < len(result) else None
            if entry.receiver is None:
                # A dropped receiver may still be called until it is collected.
                ghost = entry.ghost()
                if ghost is None or current != ghost:  # bound methods are new at every access
                    continue
            else:
                assert current == entry.receiver, (
                    f"{method}: expected {entry.tag} at {position}, got {current!r}"
                )
            response = result[position][1]
            if entry.fails:
                assert isinstance(response, ValueError), (method, entry.tag, response)
                assert response.args == (entry.tag,)
            else:
                assert response == (entry.tag, value), (method, entry.tag, response)
            position += 1
        assert position == len(result), f"{method}: unexpected {result[position:]!r}"

    def run(self, operations: int, start: threading.Barrier, errors: list[str]) -> None:
        try:
            start.wait(WAIT)
            actions = [self.connect] * 3 + [self.disconnect, self.drop] + [self.send] * 3
            for _ in range(operations):
                self.rng.choice(actions)()
            self.send()
        except BaseException:
            errors.append(f"thread {self.index}:\n{traceback.format_exc()}")


def shared_receiver(*, value: int, **kwargs: Any) -> tuple[str, int]:
    return "shared", value


def another_shared_receiver(*, value: int, **kwargs: Any) -> tuple[str, int]:
    return "shared", value


def never_called(**kwargs: Any) -> None:
    raise AssertionError("connected for a sender nobody sends with")


@pytest.mark.usefixtures("tiny_switch_interval")
@pytest.mark.parametrize("max_workers", [None, 3])
@pytest.mark.parametrize("use_caching", [False, True])
def test_concurrent_threads_each_get_the_answers_their_own_model_predicts(
    use_caching: bool, max_workers: int | None
) -> None:
    threads, operations = 12, 250
    signal = Signal(use_caching=use_caching, max_workers=max_workers)
    nobody = Sender("nobody")
    signal.connect(shared_receiver)
    signal.connect(never_called, sender=nobody)
    signal.connect(another_shared_receiver)
    shared: list[Receiver] = [shared_receiver, another_shared_receiver]
    workers = [Worker(signal, i, shared, seed=1000 * i + 7) for i in range(threads)]
    start = threading.Barrier(threads)
    errors: list[str] = []

    with structlog.testing.capture_logs():
        running = [
            threading.Thread(target=w.run, args=(operations, start, errors), daemon=True)
            for w in workers
        ]
        for thread in running:
            thread.start()
        for thread in running:
            thread.join(WAIT)
        assert not any(thread.is_alive() for thread in running)

    assert errors == [], errors[0]
    assert sum(w.sends for w in workers) > threads * operations // 4

    # Once every weakly connected receiver is dropped and collected, only the
    # strongly connected ones are left, and nothing else keeps the others alive.
    for worker in workers:
        worker.drop_all()
    collect()
    for worker in workers:
        for method in METHODS:
            worker.send(method)
    assert [e for w in workers for e in w.model if e.weak] == []
    assert len(signal.receivers) == 3 + sum(len(w.model) for w in workers)


def test_many_callers_on_a_small_pool_never_exceed_its_threads() -> None:
    name = "bounded-pool-signal"
    workers, callers, rounds = 3, 20, 10
    signal = Signal(max_workers=workers, name=name, caller_runs=False)
    peak: list[int] = []
    ran_on: set[str] = set()

    def make(index: int) -> Receiver:
        def receiver(*, value: int, **kwargs: Any) -> tuple[int, int]:
            ran_on.add(threading.current_thread().name)
            peak.append(sum(1 for t in threading.enumerate() if name in t.name))
            return index, value

        return receiver

    receivers = [make(i) for i in range(5)]
    for receiver in receivers:
        signal.connect(receiver)
    start = threading.Barrier(callers)
    errors: list[str] = []

    def call(caller: int) -> None:
        try:
            start.wait(WAIT)
            for round_ in range(rounds):
                value = caller * 100 + round_
                method = signal.send_parallel if round_ % 2 else signal.send_parallel_robust
                expected = [(r, (i, value)) for i, r in enumerate(receivers)]
                assert method(None, value=value) == expected
        except BaseException:
            errors.append(traceback.format_exc())

    threads = [threading.Thread(target=call, args=(i,), daemon=True) for i in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)

    assert not any(thread.is_alive() for thread in threads)
    assert errors == [], errors[0]
    assert len(peak) == callers * rounds * len(receivers)
    assert max(peak) <= workers
    assert 1 <= len(ran_on) <= workers
    assert all(name in thread_name for thread_name in ran_on)


@pytest.mark.usefixtures("tiny_switch_interval")
def test_many_callers_on_the_shared_pool_each_get_their_own_answers() -> None:
    callers, rounds = 16, 15
    signal = Signal()
    senders = [Sender(f"caller {i}") for i in range(callers)]

    def everyone(*, value: int, **kwargs: Any) -> int:
        return value

    def make(index: int) -> Receiver:
        def receiver(*, value: int, **kwargs: Any) -> tuple[int, int]:
            return index, value

        return receiver

    signal.connect(everyone)
    own = [make(i) for i in range(callers)]
    for sender, receiver in zip(senders, own, strict=True):
        signal.connect(receiver, sender=sender)
    start = threading.Barrier(callers)
    errors: list[str] = []

    def call(index: int) -> None:
        try:
            start.wait(WAIT)
            for round_ in range(rounds):
                value = index * 1000 + round_
                expected = [(everyone, value), (own[index], (index, value))]
                assert signal.send_parallel(senders[index], value=value) == expected
                assert signal.send_parallel_robust(senders[index], value=value) == expected
        except BaseException:
            errors.append(traceback.format_exc())

    threads = [threading.Thread(target=call, args=(i,), daemon=True) for i in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)

    assert not any(thread.is_alive() for thread in threads)
    assert errors == [], errors[0]
    pool = _pool._default
    assert pool is not None
    assert pool.thread_count <= _pool.DEFAULT_MAX_WORKERS
