"""Eight threads dispatch on one signal at once, each checking every answer against its own model.

Each thread owns a sender and the receivers it connects for it (functions and
bound methods, weakly connected); a few shared receivers, connected for every
sender before the threads start, stay connected throughout. In a loop, with
the interpreter switching threads as often as it can, each thread connects
new receivers, drops some (deleting the last strong reference, with no
``gc.collect()``: the receivers are acyclic, so reference counting frees
them), disconnects others (keeping them alive a while), and dispatches from
its own sender with ``send_parallel``, ``send_parallel_robust`` or, for
comparison, ``send``. Some dispatches make a receiver fail.

Receivers record every call with the dispatch's sequence number, which the
dispatch passes as a named argument. Every dispatch is checked against the
thread's model, as Django's ``send`` and ``send_robust`` would answer:

* the answer lists exactly the shared receivers, then the receivers the
  thread has connected and not dropped nor disconnected, in connection order,
  with their responses (or their exceptions, for the robust method); a
  failing ``send`` or ``send_parallel`` raises the first failing receiver's
  exception;
* exactly those receivers were called (``send_parallel`` may also have
  started receivers after the failing one: it documents that they run in
  the background);
* no receiver dropped or disconnected before a dispatch is ever called by
  it, then or later;
* a dropped receiver dies; its payload (a named argument) dies as soon as the
  dispatch returns.

The duration of each case comes from ``PARASIGNAL_STRESS_SECONDS`` (default 2).
"""

from __future__ import annotations

import os
import random
import threading
import time
import traceback
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from parasignal import Signal

DURATION = float(os.environ.get("PARASIGNAL_STRESS_SECONDS", "2.0"))
THREADS = 8
# How long a thread may take past the duration before the test fails rather than hangs.
JOIN_SLACK = 60.0
# How long a dropped receiver may take to die when something may legitimately
# hold it for a moment (see Worker.drop).
GRACE = 5.0
# Checked dispatches every thread must make per second of the run, at least.
MIN_SENDS_PER_THREAD_SECOND = 25
MAX_OWN = 8  # receivers a thread keeps connected at most
METHODS = ("send_parallel", "send_parallel_robust", "send")
SHARED = ("shared function", "shared method", "shared callable")

Log = list[tuple[int, object]]


class ReceiverError(Exception):
    """What a failing receiver raises: its id and the dispatch's sequence number."""


class Payload:
    """A named argument whose life is watched."""

    __slots__ = ("__weakref__",)


def _respond(rid: object, seq: int, log: Log, fail: frozenset[object]) -> tuple[object, int]:
    log.append((seq, rid))
    if rid in fail:
        raise ReceiverError(rid, seq)
    return (rid, seq)


def make_function(rid: object) -> Callable[..., Any]:
    # Refers to nothing that refers back to it: reference counting frees it.
    def receiver(*, seq: int, log: Log, fail: frozenset[object], **kwargs: Any) -> Any:
        return _respond(rid, seq, log, fail)

    receiver.__dict__["rid"] = rid
    return receiver


class Holder:
    """Provides its receiver as a bound method."""

    def __init__(self, rid: object) -> None:
        self.rid = rid

    def receive(self, *, seq: int, log: Log, fail: frozenset[object], **kwargs: Any) -> Any:
        return _respond(self.rid, seq, log, fail)


class SharedCallable:
    """A callable instance, connected strongly for every sender."""

    rid = SHARED[2]

    def __call__(self, *, seq: int, log: Log, fail: frozenset[object], **kwargs: Any) -> Any:
        return _respond(self.rid, seq, log, fail)


def rid_of(receiver: object) -> object:
    owner = getattr(receiver, "__self__", receiver)
    return vars(owner).get("rid", getattr(owner, "rid", None))


class Sender:
    def __init__(self, index: int) -> None:
        self.index = index

    def __repr__(self) -> str:
        return f"<Sender of thread {self.index}>"


class CountingSignal(Signal):
    """Counts reported failures instead of logging them (nothing is printed)."""

    def __init__(self, use_caching: bool, max_workers: int | None) -> None:
        super().__init__(use_caching, max_workers=max_workers)
        self.reported = 0

    def _log_robust_failure(self, receiver: Callable[..., Any], err: BaseException) -> None:
        self.reported += 1  # racy across threads, and only read as "some"


@dataclass
class Own:
    """A receiver a thread connected: the only strong reference to its object, until dropped."""

    rid: object
    obj: Any
    method: bool

    @property
    def receiver(self) -> Callable[..., Any]:
        return self.obj.receive if self.method else self.obj  # type: ignore[no-any-return]


@dataclass
class Worker:
    """One thread's sender, receivers and model of what the signal answers it."""

    signal: Signal
    index: int
    seed: int
    deadline: float
    sender: Sender = field(init=False)
    rng: random.Random = field(init=False)
    log: Log = field(default_factory=list)
    connected: list[Own] = field(default_factory=list)  # the model, in connection order
    disconnected: list[Own] = field(default_factory=list)  # alive, no longer connected
    # For each receiver, the last dispatch issued before it was connected, and
    # before it was dropped or disconnected: it may be called by none outside.
    connected_after: dict[object, int] = field(default_factory=dict)
    removed_after: dict[object, int] = field(default_factory=dict)
    # Receivers a send_parallel that raised may still run, or hold for a moment,
    # in the background.
    lingering: set[object] = field(default_factory=set)
    seq: int = 0
    made: int = 0
    checked: int = 0
    late_deaths: int = 0  # dropped receivers that did not die at once (see drop)
    mismatches: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.sender = Sender(self.index)
        self.rng = random.Random(self.seed)  # noqa: S311 - reproducible, not cryptographic

    def mismatch(self, text: str) -> None:
        self.mismatches.append(
            f"thread {self.index} (seed {self.seed}), dispatch {self.seq}: {text}"
        )

    # -- operations --------------------------------------------------------------

    def connect(self) -> None:
        self.made += 1
        rid = f"{self.index}.{self.made}"
        method = self.rng.random() < 0.5
        own = Own(rid, Holder(rid) if method else make_function(rid), method)
        self.signal.connect(own.receiver, sender=self.sender)
        self.connected.append(own)
        self.connected_after[rid] = self.seq

    def disconnect(self) -> None:
        own = self.connected.pop(self.rng.randrange(len(self.connected)))
        if not self.signal.disconnect(own.receiver, sender=self.sender):
            self.mismatch(f"disconnect({own.rid}) found nothing")
        self.removed_after[own.rid] = self.seq
        self.disconnected.append(own)

    def drop(self, pool: list[Own]) -> None:
        own = pool.pop(self.rng.randrange(len(pool)))
        self.removed_after.setdefault(own.rid, self.seq)
        rid = own.rid
        ref = weakref.ref(own.obj)
        del own  # the last strong reference: only the signal's weak one is left
        if ref() is None:
            self.lingering.discard(rid)
            return
        self.late_deaths += 1
        if rid in self.lingering:
            # A send_parallel of this thread that raised may still run it in
            # the background, or its worker may be letting go of it: that
            # ends soon.
            if not _wait_dead(ref):
                self.mismatch(f"dropped receiver {rid} is still alive after {GRACE} s")
            self.lingering.discard(rid)
            return
        # Another thread cleaning up dead receivers tests every weak
        # reference, under the signal's lock, holding each object for an
        # instant. Once we have had the lock, that is over; whatever still
        # holds the receiver is a dispatch that answered already (left
        # alive, the next dispatch may call it: the log check catches that).
        with self.signal.lock:
            pass
        if ref() is not None:
            self.mismatch(f"dropped receiver {rid} is kept alive by dispatches that answered")

    def step(self) -> None:
        choice = self.rng.random()
        if choice < 0.35 and len(self.connected) < MAX_OWN:
            self.connect()
        elif choice < 0.55 and self.connected:
            self.drop(self.connected)
        elif choice < 0.65 and self.connected:
            self.disconnect()
        if self.disconnected and self.rng.random() < 0.3:
            self.drop(self.disconnected)
        self.dispatch(self.rng.choice(METHODS))

    # -- the dispatch and its check ----------------------------------------------

    def dispatch(self, method: str) -> None:
        self.seq += 1
        seq = self.seq
        expected: list[object] = [*SHARED, *(own.rid for own in self.connected)]
        fail: frozenset[object] = frozenset()
        if self.connected and self.rng.random() < 0.15:
            fail = frozenset(own.rid for own in self.rng.sample(self.connected, 1))
        start = len(self.log)
        payload = Payload()
        payload_ref = weakref.ref(payload)
        raised: ReceiverError | None = None
        answer: list[tuple[object, object]] = []
        try:
            result = getattr(self.signal, method)(
                self.sender, seq=seq, log=self.log, fail=fail, payload=payload
            )
        except ReceiverError as exc:
            exc.__traceback__ = None  # its frames would hold receivers and the payload
            raised = exc
        else:
            for receiver, response in result:
                if isinstance(response, BaseException):
                    response.__traceback__ = None
                    answer.append((rid_of(receiver), (type(response), *response.args)))
                else:
                    answer.append((rid_of(receiver), response))
            del result
        del payload
        calls = [rid for s, rid in self.log[start:] if s == seq]
        self.checked += 1
        robust = method.endswith("robust")
        first_failing = next((i for i, rid in enumerate(expected) if rid in fail), None)
        if raised is not None:
            self.check_raised(method, raised, expected, first_failing, calls)
            return
        if payload_ref() is not None:
            self.mismatch(f"{method}: the payload outlived the dispatch")
        if first_failing is not None and not robust:
            self.mismatch(f"{method} returned although {expected[first_failing]} failed")
            return
        want = [(rid, (ReceiverError, rid, seq) if rid in fail else (rid, seq)) for rid in expected]
        if answer != want:
            self.mismatch(f"{method} answered {answer}, not {want}")
        if sorted(map(str, calls)) != sorted(map(str, expected)):
            self.mismatch(f"{method} called {calls}, not {expected}")

    def check_raised(
        self,
        method: str,
        raised: ReceiverError,
        expected: list[object],
        first_failing: int | None,
        calls: list[object],
    ) -> None:
        if method.endswith("robust") or first_failing is None:
            self.mismatch(f"{method} raised {raised.args}")
            return
        failing = expected[first_failing]
        if raised.args != (failing, self.seq):
            self.mismatch(f"{method} raised {raised.args}, not {failing}'s")
        before = expected[: first_failing + 1]
        if method == "send":
            if calls != before:
                self.mismatch(f"send called {calls}, not {before}")
            return
        # send_parallel: every receiver up to the failing one has finished;
        # later ones may have started and still run in the background.
        missing = [rid for rid in before if rid not in calls]
        unknown = [rid for rid in calls if rid not in expected]
        if missing or unknown or len(set(calls)) != len(calls):
            self.mismatch(f"send_parallel called {calls}; expected {before} (+ some of {expected})")
        self.lingering.update(expected)

    def check_log(self) -> None:
        """No receiver was called by a dispatch issued before it was connected or after it left."""
        for seq, rid in list(self.log):
            if rid in SHARED:
                continue
            if seq <= self.connected_after.get(rid, seq):
                self.mismatch(f"{rid} was called by dispatch {seq}, issued before it was connected")
            if seq > self.removed_after.get(rid, seq):
                self.mismatch(
                    f"{rid} was called by dispatch {seq}, issued after it was dropped or "
                    f"disconnected (after dispatch {self.removed_after[rid]})"
                )

    def run(self, start: threading.Barrier, errors: list[str]) -> None:
        try:
            start.wait(JOIN_SLACK)
            while time.monotonic() < self.deadline:
                self.step()
            while self.connected:
                self.drop(self.connected)
            while self.disconnected:
                self.drop(self.disconnected)
            self.dispatch("send_parallel_robust")
        except BaseException:
            errors.append(f"thread {self.index} (seed {self.seed}):\n{traceback.format_exc()}")


def _wait_dead(ref: weakref.ref[Any]) -> bool:
    """Wait up to GRACE seconds for *ref*'s object to die; True once it has."""
    obj = ref()
    if obj is None:
        return True
    died = threading.Event()
    watcher = weakref.ref(obj, lambda _: died.set())
    del obj
    dead = died.wait(GRACE)
    del watcher
    return dead


def shared_function(*, seq: int, log: Log, fail: frozenset[object], **kwargs: Any) -> Any:
    return _respond(SHARED[0], seq, log, fail)


shared_function.__dict__["rid"] = SHARED[0]


class SharedHolder:
    rid = SHARED[1]

    def receive(self, *, seq: int, log: Log, fail: frozenset[object], **kwargs: Any) -> Any:
        return _respond(self.rid, seq, log, fail)


@pytest.mark.usefixtures("tiny_switch_interval")
@pytest.mark.timeout(DURATION + 2 * JOIN_SLACK)  # the joins below fail first
@pytest.mark.parametrize(
    ("use_caching", "max_workers"),
    [(False, None), (True, 4)],
    ids=["uncached-shared-pool", "cached-own-pool-of-4"],
)
def test_every_thread_gets_the_answers_its_model_predicts(
    use_caching: bool, max_workers: int | None
) -> None:
    signal = CountingSignal(use_caching, max_workers)
    shared_holder = SharedHolder()  # held here: weakly connected, never dropped
    signal.connect(shared_function, weak=False)
    signal.connect(shared_holder.receive)
    signal.connect(SharedCallable(), weak=False)
    seed = random.randrange(1 << 32)  # noqa: S311 - reproducible, not cryptographic
    deadline = time.monotonic() + DURATION
    workers = [Worker(signal, i, seed + i, deadline) for i in range(THREADS)]
    start = threading.Barrier(THREADS)
    errors: list[str] = []
    threads = [
        threading.Thread(target=w.run, args=(start, errors), name=f"stress-{w.index}", daemon=True)
        for w in workers
    ]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()) + JOIN_SLACK)
        hung = [thread.name for thread in threads if thread.is_alive()]
        assert not hung, f"threads never finished: {hung}"
        assert errors == [], errors[0]
        for worker in workers:
            worker.check_log()
        mismatches = [text for worker in workers for text in worker.mismatches]
        checked = sum(worker.checked for worker in workers)
        assert mismatches == [], (
            f"{len(mismatches)} mismatches in {checked} checked sends (seed {seed}); "
            f"first: {mismatches[:5]}"
        )
        assert checked >= THREADS * DURATION * MIN_SENDS_PER_THREAD_SECOND, (
            f"only {checked} checked sends in {DURATION} s"
        )
        assert signal.reported > 0, "no robust dispatch reported a failure"
        # Every thread dropped all its receivers: once the signal has cleaned
        # up, only the shared ones are left.
        assert signal.has_listeners(workers[0].sender)
        assert len(signal.receivers) == len(SHARED), signal.receivers
    finally:
        signal.shutdown(wait=True)
