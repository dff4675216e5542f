"""Nothing outlives a dispatch: after a parallel or async send returns or raises,
parasignal holds no receiver, sender, argument, response, exception or context
of it (the one exception: a receiver still running past the deadline keeps
what it needs, on its own thread, until it returns).

Every check is made by plain reference counting, with the collector disabled,
over enough rounds to catch a race that leaks once in a thousand calls.
"""

from __future__ import annotations

import asyncio
import gc
import threading
import time
import weakref
from collections.abc import Iterator
from concurrent.futures import CancelledError, ThreadPoolExecutor
from typing import Any

import pytest

from parasignal import Signal

ROUNDS = 2000
POOLS = ("shared", "own", "executor")
METHODS = (
    "send_parallel",
    "send_parallel_robust",
    "asend",
    "asend_robust",
    "asend_parallel",
    "asend_parallel_robust",
)


@pytest.fixture(autouse=True)
def _no_collector() -> Iterator[None]:
    """Refcounting alone must free what a dispatch used: keep the collector out."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


class Payload:
    """A named argument whose life the tests watch."""


class OwnerError(ValueError):
    """A receiver failure that can be weakly referenced."""


class Owner:
    """Owns a weakly connected bound-method receiver."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail

    def on_signal(self, **kwargs: Any) -> str:
        if self.fail:
            raise OwnerError("owner failed")
        return "owner"


def plain(**kwargs: Any) -> str:
    return "plain"


def failing(**kwargs: Any) -> str:
    raise KeyError("plain failure")


@pytest.fixture
def executor() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(8) as pool:
        yield pool


def make_signal(kind: str, executor: ThreadPoolExecutor, **config: Any) -> Signal:
    if kind == "own":
        return Signal(max_workers=4, **config)
    if kind == "executor":
        return Signal(executor=executor, **config)
    return Signal(**config)


def dispatch(signal: Signal, method: str, **named: Any) -> Any:
    """Call *method*; an exception it raises is returned (and so dropped by the caller).

    Async methods are awaited inside a coroutine that catches for itself and
    returns only the exception's type. The exception itself must not become
    the task's result: on Python 3.12 and later, its traceback's frames link
    back (``f_back``) through the event loop to ``run_until_complete``,
    whose frame holds the task, whose result is the exception: a reference
    cycle of asyncio's own, which only the collector frees. (A coroutine that
    raises out of ``asyncio.run()`` makes the same cycle.) Django's ``asend``
    called this way would leave the same cycle behind.
    """
    if not method.startswith("asend"):
        try:
            return getattr(signal, method)(None, **named)
        except Exception as exc:  # the failure path is under test
            return exc

    async def call() -> Any:
        try:
            return await getattr(signal, method)(None, **named)
        except Exception as exc:
            return type(exc)

    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(call())
    finally:
        loop.close()


def leaks_over_rounds(
    signal: Signal, method: str, *, owner_fails: bool, rounds: int = ROUNDS
) -> tuple[int, int]:
    """Connect a weak owner, dispatch with a payload, drop both; count survivors."""
    live_receivers = live_payloads = 0
    for _ in range(rounds):
        owner = Owner(fail=owner_fails)
        signal.connect(owner.on_signal)
        payload = Payload()
        owner_ref, payload_ref = weakref.ref(owner), weakref.ref(payload)
        result = dispatch(signal, method, payload=payload)
        del result
        del owner, payload
        live_receivers += owner_ref() is not None
        live_payloads += payload_ref() is not None
    return live_receivers, live_payloads


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("kind", POOLS)
def test_a_weak_receiver_and_the_payload_die_right_after_a_successful_dispatch(
    kind: str, method: str, executor: ThreadPoolExecutor
) -> None:
    signal = make_signal(kind, executor)
    for uid in range(3):
        signal.connect(plain, weak=False, dispatch_uid=uid)
    rounds = ROUNDS if method.startswith("send") else ROUNDS // 4
    assert leaks_over_rounds(signal, method, owner_fails=False, rounds=rounds) == (0, 0)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("kind", POOLS)
def test_nothing_survives_a_dispatch_in_which_receivers_fail(
    kind: str, method: str, executor: ThreadPoolExecutor
) -> None:
    # The owner fails (raised, or returned as a response), and so does a later
    # receiver (logged in the background, or returned).
    signal = make_signal(kind, executor)
    signal.connect(plain, weak=False, dispatch_uid="first")
    signal.connect(failing, weak=False, dispatch_uid="late failure")
    rounds = ROUNDS // 2 if method.startswith("send") else ROUNDS // 8
    assert leaks_over_rounds(signal, method, owner_fails=True, rounds=rounds) == (0, 0)


def test_a_raised_failure_holds_nothing_once_the_caller_drops_it() -> None:
    signal = Signal(max_workers=4)
    signal.connect(plain, weak=False)
    for _ in range(500):
        owner = Owner(fail=True)
        signal.connect(owner.on_signal)
        payload = Payload()
        refs: list[weakref.ref[Any]] = [weakref.ref(owner), weakref.ref(payload)]
        with pytest.raises(OwnerError, match="owner failed") as excinfo:
            signal.send_parallel(None, payload=payload)
        error_ref = weakref.ref(excinfo.value)
        del excinfo, owner, payload
        # No cycle through parasignal's frames keeps the exception alive.
        assert error_ref() is None
        assert [ref() for ref in refs] == [None, None]


def test_robust_responses_hold_nothing_of_the_dispatch_once_dropped() -> None:
    signal = Signal(max_workers=4)
    for _ in range(500):
        owner = Owner(fail=True)
        signal.connect(owner.on_signal)
        payload = Payload()
        refs: list[weakref.ref[Any]] = [weakref.ref(owner), weakref.ref(payload)]
        result: list[Any] = signal.send_parallel_robust(None, payload=payload)
        error_ref = weakref.ref(result[0][1])
        del result, owner, payload
        assert error_ref() is None
        assert [ref() for ref in refs] == [None, None]


# -- deadlines -----------------------------------------------------------------------


class Stuck:
    """A receiver that blocks until released, holding only its own arguments."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.started = threading.Event()

    def __call__(self, **kwargs: Any) -> str:
        self.started.set()
        self.release.wait(30)
        return "stuck"


def test_after_a_timeout_only_the_stuck_receiver_keeps_what_it_needs() -> None:
    stuck = Stuck()
    signal = Signal(max_workers=4, timeout=0.05)
    signal.connect(stuck, weak=False)
    owner = Owner()
    signal.connect(owner.on_signal)
    payload = Payload()
    owner_ref, payload_ref = weakref.ref(owner), weakref.ref(payload)
    result = signal.send_parallel_robust(None, payload=payload)
    assert isinstance(result[0][1], TimeoutError)
    assert result[1][1] == "owner"
    del result, owner
    # The quick receiver is free; the payload is the stuck receiver's argument.
    assert owner_ref() is None
    assert payload_ref() is not None
    del payload
    stuck.release.set()
    deadline = time.monotonic() + 10
    while payload_ref() is not None and time.monotonic() < deadline:
        time.sleep(0.001)
    assert payload_ref() is None, "the payload outlived the stuck receiver"
    signal.shutdown()


def test_timed_out_dispatches_leave_nothing_queued_on_a_saturated_pool() -> None:
    # Both workers are stuck: every later dispatch times out with its helper
    # still queued, and must take that helper back.
    stuck = Stuck()
    blocker = Signal(max_workers=2, caller_runs=False)
    blocker.connect(stuck, weak=False)
    hogs = [threading.Thread(target=blocker.send_parallel, args=(None,)) for _ in range(2)]
    signal = Signal(timeout=0.005)
    signal.connect(plain, weak=False)
    for hog in hogs:
        hog.start()
    assert stuck.started.wait(10)
    pool = blocker._pools.own_pool
    assert pool is not None
    signal._executor = lambda method: pool  # type: ignore[method-assign]
    while pool.thread_count < 2 or pool.queued:
        time.sleep(0.001)
    for _ in range(100):
        payload = Payload()
        payload_ref = weakref.ref(payload)
        with pytest.raises(TimeoutError):
            signal.send_parallel(None, payload=payload)
        del payload
        assert payload_ref() is None
    assert pool.queued == 0
    stuck.release.set()
    for hog in hogs:
        hog.join(10)
    assert not any(hog.is_alive() for hog in hogs)
    assert pool.queued == 0
    blocker.shutdown()


# -- cancellation --------------------------------------------------------------------


def test_a_dispatch_cancelled_by_shutdown_holds_nothing_afterwards() -> None:
    # On the pool's one thread, so the receivers after the stuck one wait
    # for it, unstarted, when the pool is shut down.
    signal = Signal(max_workers=1, caller_runs=False)
    stuck = Stuck()
    signal.connect(stuck, weak=False)
    owners = [Owner() for _ in range(5)]
    for owner in owners:
        signal.connect(owner.on_signal)
    del owner
    refs = [weakref.ref(owner) for owner in owners]
    payload = Payload()
    payload_ref = weakref.ref(payload)
    outcome: list[Any] = []

    def send(payload: Payload) -> None:
        outcome.append(signal.send_parallel_robust(None, payload=payload))

    caller = threading.Thread(target=send, args=(payload,))
    caller.start()
    assert stuck.started.wait(10)
    signal.shutdown(wait=False, cancel_futures=True)
    stuck.release.set()
    caller.join(10)
    responses = [response for _, response in outcome.pop()]
    assert responses[0] == "stuck"
    assert all(isinstance(r, CancelledError) for r in responses[1:])
    del responses, owners, payload
    assert [ref() for ref in refs] == [None] * 5
    assert payload_ref() is None


# -- under load ----------------------------------------------------------------------


def test_a_quick_dispatchs_payload_is_freed_at_return_while_the_pool_is_busy() -> None:
    # Other signals' slow receivers keep the shared pool busy: 16 threads each
    # sending 8 receivers of 100 ms.
    slow = Signal()
    for uid in range(8):
        slow.connect(lambda **kwargs: time.sleep(0.1), weak=False, dispatch_uid=uid)
    quick = Signal()
    for uid in range(3):
        quick.connect(plain, weak=False, dispatch_uid=uid)
    stop = threading.Event()

    def keep_busy() -> None:
        while not stop.is_set():
            slow.send_parallel(None)

    loaders = [threading.Thread(target=keep_busy) for _ in range(16)]
    for loader in loaders:
        loader.start()
    late: list[float] = []
    try:
        time.sleep(0.15)
        for _ in range(200):
            owner = Owner()
            quick.connect(owner.on_signal)
            payload = Payload()
            refs = (weakref.ref(owner), weakref.ref(payload))
            quick.send_parallel(None, payload=payload)
            returned = time.perf_counter()
            del owner, payload
            if all(ref() is None for ref in refs):
                continue  # freed by the del itself: nothing else held them
            # Something still holds them: time how long. (Timing the first
            # check too would time this thread's wait for the GIL, shared
            # with 16 busy senders, not anything parasignal holds.)
            while any(ref() is not None for ref in refs):
                if time.perf_counter() - returned > 1.0:
                    break
                time.sleep(0.0001)
            freed_after = time.perf_counter() - returned
            if freed_after > 0.001:
                late.append(freed_after)
    finally:
        stop.set()
        for loader in loaders:
            loader.join(10)
    assert late == [], f"{len(late)} of 200 payloads outlived the call by over 1 ms"


# -- interrupts ----------------------------------------------------------------------


@pytest.mark.parametrize("caller_runs", [True, False], ids=["caller-runs", "workers-only"])
def test_an_interrupt_landing_anywhere_in_a_dispatch_leaks_nothing(caller_runs: bool) -> None:
    # A KeyboardInterrupt raised at random moments (through the main thread's
    # pending-call machinery, like Ctrl-C) while dispatches start and wait.
    import _thread  # noqa: PLC0415 - only this test interrupts the main thread
    import random  # noqa: PLC0415

    if threading.current_thread() is not threading.main_thread():
        pytest.skip("interrupts reach the main thread only")
    signal = Signal(max_workers=4, caller_runs=caller_runs)
    started_late: list[float] = []
    interrupted_at = [0.0]

    def receiver(**kwargs: Any) -> None:
        if interrupted_at[0] and time.perf_counter() - interrupted_at[0] > 0.005:
            started_late.append(time.perf_counter() - interrupted_at[0])
        time.sleep(0.0002)

    for uid in range(12):
        signal.connect(receiver, weak=False, dispatch_uid=uid)
    rng = random.Random(1234)  # noqa: S311 - reproducible timing, not cryptography
    interrupts = 0
    for _ in range(400):
        interrupted_at[0] = 0.0
        timer = threading.Timer(rng.uniform(0, 0.0015), _thread.interrupt_main)
        payload = Payload()
        payload_ref = weakref.ref(payload)
        try:
            timer.start()
            try:
                signal.send_parallel(None, payload=payload)
            finally:
                timer.join()
        except KeyboardInterrupt:
            interrupted_at[0] = time.perf_counter()
            interrupts += 1
        del payload
        pool = signal._pools.own_pool
        assert pool is not None
        assert pool.thread_count <= 4
        # Once running receivers finish, nothing of the dispatch is left.
        deadline = time.monotonic() + 5
        while (payload_ref() is not None or pool.queued) and time.monotonic() < deadline:
            time.sleep(0.0005)
        assert payload_ref() is None
        assert pool.queued == 0
    assert interrupts > 50  # the timing did interrupt dispatches
    assert started_late == []
    signal.shutdown()
