"""Many threads connect, disconnect and send on shared signals at once.

Every test runs with the switch interval at its minimum (the
``tiny_switch_interval`` fixture) and with and without ``use_caching``. Each
thread checks what it can know for sure; the main thread collects every
failure, checks that every thread finished, and checks the final state.
"""

from __future__ import annotations

import gc
import random
import threading
import time
import traceback
import weakref
from collections.abc import Callable
from typing import Any

import pytest

from conftest import collect
from parasignal import Signal

WAIT = 30.0  # seconds all the threads of a test may take together
THREADS = 16

Receiver = Callable[..., Any]

pytestmark = pytest.mark.usefixtures("tiny_switch_interval")
caching = pytest.mark.parametrize("use_caching", [False, True], ids=["plain", "caching"])


def run_threads(count: int, work: Callable[[int], None]) -> None:
    """Run ``work(0)`` ... ``work(count - 1)`` on threads started together.

    Fail if any of them raised or had not finished within ``WAIT`` seconds.
    """
    barrier = threading.Barrier(count)
    errors: list[str] = []

    def main(index: int) -> None:
        try:
            barrier.wait(timeout=WAIT)
            work(index)
        except BaseException:
            errors.append(f"thread {index}:\n{traceback.format_exc()}")
            barrier.abort()

    threads = [
        threading.Thread(target=main, args=(index,), name=f"stress-{index}", daemon=True)
        for index in range(count)
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + WAIT
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    stuck = [thread.name for thread in threads if thread.is_alive()]
    assert not stuck, f"threads still running after {WAIT} s (deadlock?): {stuck}"
    assert not errors, "\n".join(errors)


def seeded(seed: int) -> random.Random:
    return random.Random(seed)  # noqa: S311 - reproducible, not cryptographic


class Sender:
    def __init__(self, label: str) -> None:
        self.label = label

    def __repr__(self) -> str:
        return f"<Sender {self.label}>"


def make_function(tag: str) -> Receiver:
    def function_receiver(**kwargs: Any) -> str:
        return tag

    return function_receiver


class Listener:
    """Provides two receivers, its bound methods ``first`` and ``second``."""

    def __init__(self, tag: str, *, cyclic: bool = False) -> None:
        self.tag = tag
        self.me = self if cyclic else None  # only the collector can free a cyclic one

    def first(self, **kwargs: Any) -> str:
        return f"{self.tag}.first"

    def second(self, **kwargs: Any) -> str:
        return f"{self.tag}.second"


class CallableReceiver:
    def __init__(self, tag: str) -> None:
        self.tag = tag

    def __call__(self, **kwargs: Any) -> str:
        return self.tag


def receiver_pool(prefix: str) -> list[tuple[str, Receiver]]:
    """Distinct receivers of every kind, with the tag each one answers."""
    listener = Listener(f"{prefix}-listener")
    return [
        (f"{prefix}-f0", make_function(f"{prefix}-f0")),
        (f"{prefix}-f1", make_function(f"{prefix}-f1")),
        (f"{prefix}-f2", make_function(f"{prefix}-f2")),
        (f"{prefix}-listener.first", listener.first),
        (f"{prefix}-listener.second", listener.second),
        (f"{prefix}-callable", CallableReceiver(f"{prefix}-callable")),
    ]


def answers(result: list[tuple[Receiver, Any]]) -> list[Any]:
    return [response for _, response in result]


# -- (a) threads that share signals but not receivers or senders ---------------


@caching
def test_each_thread_sees_exactly_its_own_receivers(use_caching: bool) -> None:
    signals = [Signal(use_caching=use_caching) for _ in range(2)]
    operations = 600
    checked = [0] * THREADS

    def work(index: int) -> None:
        rng = seeded(index)
        sender = Sender(f"t{index}")
        pool = receiver_pool(f"t{index}")
        uids = [f"t{index}-uid0", f"t{index}-uid1"]
        # Per signal, what this thread connected for its sender, in order:
        # [lookup key, tag, receiver].
        models: list[list[tuple[object, str, Receiver]]] = [[] for _ in signals]
        for _ in range(operations):
            which = rng.randrange(len(signals))
            signal, model = signals[which], models[which]
            position = rng.randrange(len(pool))
            tag, receiver = pool[position]
            uid = rng.choice([None, None, *uids])
            key: object = uid or position
            if rng.random() < 0.6:
                signal.connect(receiver, sender=sender, weak=rng.random() < 0.5, dispatch_uid=uid)
                if all(entry[0] != key for entry in model):
                    model.append((key, tag, receiver))
            else:
                found = [entry for entry in model if entry[0] == key]
                assert signal.disconnect(receiver, sender=sender, dispatch_uid=uid) is bool(found)
                if found:
                    model.remove(found[0])
            # Whatever the other threads do meanwhile, this sender's receivers
            # are exactly this thread's, in this thread's connection order.
            expected = [(entry[2], entry[1]) for entry in model]
            assert signal.send(sender) == expected
            assert signal.send_robust(sender, extra=1) == expected
            assert signal.has_listeners(sender) is bool(expected)
            checked[index] += 1
        for signal, model in zip(signals, models, strict=True):
            for key, _, receiver in list(model):
                uid = key if isinstance(key, str) else None
                assert signal.disconnect(receiver, sender=sender, dispatch_uid=uid)
            assert signal.send(sender) == []

    run_threads(THREADS, work)
    assert checked == [operations] * THREADS
    for signal in signals:
        assert signal.receivers == []


# -- (b) one thread changes a shared any-sender set while the others send --------


@caching
def test_sends_see_a_consistent_snapshot_of_a_changing_set(use_caching: bool) -> None:
    signal = Signal(use_caching=use_caching)
    pool = receiver_pool("shared")
    mutations = 3000
    # history[k]: the tags connected after the mutator's k-th change, in order.
    history: list[tuple[str, ...]] = [()]
    done = threading.Event()
    # Per sender thread: (len(history) before, tags answered, len(history) after).
    observed: list[list[tuple[int, tuple[str, ...], int]]] = [[] for _ in range(THREADS)]

    def mutate() -> None:
        rng = seeded(0)
        connected: list[str] = []
        try:
            for _ in range(mutations):
                tag, receiver = rng.choice(pool)
                if tag in connected and rng.random() < 0.6:
                    assert signal.disconnect(receiver)
                    connected.remove(tag)
                else:
                    signal.connect(receiver, weak=rng.random() < 0.5)
                    if tag not in connected:
                        connected.append(tag)
                history.append(tuple(connected))
        finally:
            done.set()

    receivers = dict(pool)

    def send(index: int) -> None:
        rng = seeded(index)
        sender: object = Sender(f"t{index}") if index % 2 else None
        for _ in range(5000):  # bounded; normally stops when the mutator is done
            before = len(history)
            result = signal.send(sender) if rng.random() < 0.5 else signal.send_robust(sender)
            after = len(history)
            assert all(receiver == receivers[tag] for receiver, tag in result)
            observed[index].append((before, tuple(answers(result)), after))
            if done.is_set() and len(observed[index]) >= 20:
                break

    def work(index: int) -> None:
        if index == 0:
            mutate()
        else:
            send(index)

    run_threads(THREADS, work)
    assert len(history) == mutations + 1
    assert check_snapshots(history, observed[1:]) >= 20 * (THREADS - 1)
    assert answers(signal.send(None)) == list(history[-1])


def check_snapshots(
    history: list[tuple[str, ...]], observed: list[list[tuple[int, tuple[str, ...], int]]]
) -> int:
    """Check each send's answer against the history of the set; return how many."""
    sends = 0
    for records in observed:
        assert len(records) >= 20
        for before, tags, after in records:
            # The mutator had finished change before-1 when the send started,
            # and had not started change after+1 when it ended: the answer is
            # the set as it was at one moment in between (so no duplicate, no
            # receiver disconnected for good before the send started, order
            # as connected).
            candidates = history[before - 1 : after + 1]
            assert tags in candidates, (tags, candidates)
            assert len(set(tags)) == len(tags)
            sends += 1
    return sends


# -- (c) weakly connected receivers die on other threads during sends -----------


@caching
def test_receivers_dying_on_other_threads(use_caching: bool) -> None:
    signal = Signal(use_caching=use_caching)
    shared_sender = Sender("shared")
    # Connected for good before the threads start: in every answer, in order.
    permanent = receiver_pool("permanent")
    for _, receiver in permanent:
        signal.connect(receiver, weak=False)
    permanent_tags = [tag for tag, _ in permanent]
    dropped: list[weakref.ref[Any]] = []
    killers = THREADS // 2

    def kill(index: int) -> None:
        rng = seeded(index)
        for round_ in range(40):
            own_sender = Sender(f"k{index}-{round_}")
            listener = Listener(f"k{index}-{round_}", cyclic=rng.random() < 0.3)
            function = make_function(f"k{index}-{round_}-f")
            signal.connect(listener.first)
            signal.connect(function, sender=shared_sender)
            signal.connect(listener.second, sender=own_sender)
            signal.connect(function, sender=own_sender, weak=False)
            mine = [f"k{index}-{round_}.first", f"k{index}-{round_}.second", function()]
            tags = answers(signal.send(own_sender))
            assert tags[: len(permanent_tags)] == permanent_tags
            assert [tag for tag in tags if tag in mine] == mine
            dropped.extend([weakref.ref(listener), weakref.ref(function)])
            del listener, function, own_sender
            if round_ % 10 == 9:
                gc.collect()

    def send(index: int) -> None:
        rng = seeded(index)
        for _ in range(400):
            sender = rng.choice([None, shared_sender])
            result = signal.send(sender) if rng.random() < 0.5 else signal.send_robust(sender)
            tags = answers(result)
            # Every answer comes from a live receiver, once, and the permanent
            # ones are all there, in their order, ahead of the others.
            assert tags[: len(permanent_tags)] == permanent_tags
            assert len(set(tags)) == len(tags)
            for receiver, tag in result:
                assert receiver(signal=signal, sender=sender) == tag

    run_threads(THREADS, lambda index: kill(index) if index < killers else send(index))
    collect()
    for sender in (None, shared_sender, Sender("new")):
        assert answers(signal.send(sender)) == permanent_tags
    assert len(signal.receivers) == len(permanent)
    # The signal let go of them all (the functions it held strongly for dead
    # senders included).
    collect()
    assert len(dropped) == killers * 40 * 2
    assert [ref for ref in dropped if ref() is not None] == []


# -- (d) receivers that change the signal that is calling them -----------------


@caching
def test_receivers_changing_their_own_signal_do_not_deadlock(use_caching: bool) -> None:
    signal = Signal(use_caching=use_caching)
    nested = threading.local()

    def toggler(**kwargs: Any) -> str:
        # Disconnects and reconnects itself, racing every other thread.
        signal.disconnect(toggler)
        signal.connect(toggler, weak=False)
        return "toggler"

    signal.connect(toggler, weak=False)
    rounds = 300

    def work(index: int) -> None:
        sender = Sender(f"t{index}")
        helper_tag = f"t{index}-helper"
        helper = make_function(helper_tag)

        def churner(**kwargs: Any) -> Any:
            if getattr(nested, "active", False):
                return "churner"
            nested.active = True
            try:
                # Changes made while a send runs apply to the next send only.
                signal.connect(helper, sender=sender, dispatch_uid=helper_tag)
                assert signal.has_listeners(sender)
                inner = answers(signal.send(sender))
                assert inner.count(helper_tag) == 1
                assert inner.count("churner") == 1
                assert inner.index("churner") < inner.index(helper_tag)
                assert signal.disconnect(sender=sender, dispatch_uid=helper_tag)
                with signal.lock:  # never held while a receiver runs
                    pass
            finally:
                nested.active = False
            return "churner"

        signal.connect(churner, sender=sender)
        for _ in range(rounds):
            method = signal.send if index % 2 else signal.send_robust
            tags = answers(method(sender))
            # The helper was connected and disconnected during the send: absent.
            assert "churner" in tags
            assert tags.count("toggler") <= 1
            assert set(tags) <= {"churner", "toggler"}
        assert signal.disconnect(churner, sender=sender)
        # The toggler may be between its disconnect and connect on another thread.
        assert set(answers(signal.send(sender))) <= {"toggler"}

    run_threads(THREADS, work)
    assert answers(signal.send(None)) == ["toggler"]
    assert len(signal.receivers) == 1
