"""The contract of ``Signal.send_parallel``: what it calls, where, and what it returns."""

from __future__ import annotations

import contextvars
import functools
import threading
import time
from collections.abc import Callable, MutableMapping
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import Any

import pytest
import structlog
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import collect, thread_names
from parasignal import Signal, _fanout, _pool
from parasignal.dispatcher import NO_RECEIVERS

WAIT = 10.0  # seconds: how long any Event or Barrier wait may take before the test fails

Receiver = Callable[..., Any]
Result = list[tuple[Receiver, Any]]


class Sender:
    """A hashable, weakly referenceable sender."""

    def __init__(self, label: str = "sender") -> None:
        self.label = label

    def __repr__(self) -> str:
        return f"<Sender {self.label}>"


class Call(threading.Thread):
    """Run a call on a thread of its own and keep its outcome."""

    def __init__(self, call: Callable[[], Result]) -> None:
        super().__init__(daemon=True)
        self._call = call
        self.result: Result | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = self._call()
        except BaseException as exc:
            self.error = exc


class CountingExecutor(Executor):
    """An executor the caller owns, counting what it is asked to run."""

    def __init__(self) -> None:
        self.inner = ThreadPoolExecutor(max_workers=2, thread_name_prefix="counting")
        self.submitted = 0

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        self.submitted += 1
        return self.inner.submit(fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self.inner.shutdown(wait, cancel_futures=cancel_futures)


def wait_for(event: threading.Event) -> None:
    if not event.wait(WAIT):
        raise AssertionError("an event the test relies on was never set")


def failures_logged(logs: list[MutableMapping[str, Any]], count: int) -> list[Any]:
    """Poll, briefly and boundedly, until *count* receiver failures were logged."""
    found: list[Any] = []
    for _ in range(500):
        found = [entry for entry in list(logs) if entry["event"] == "signal.receiver_failed"]
        if len(found) >= count:
            break
        time.sleep(0.01)
    return found


def test_send_parallel_returns_responses_in_connection_order_whatever_the_finish_order() -> None:
    signal = Signal()
    count = 10
    finished = [threading.Event() for _ in range(count)]
    order: list[int] = []

    def make(index: int) -> Receiver:
        def receiver(**kwargs: Any) -> int:
            # Each receiver waits for the next one: they finish last to first.
            if index + 1 < count:
                wait_for(finished[index + 1])
            order.append(index)
            finished[index].set()
            return index * 10

        return receiver

    receivers = [make(i) for i in range(count)]
    for receiver in receivers:
        signal.connect(receiver)

    result = signal.send_parallel(sender=None)

    assert result == [(r, i * 10) for i, r in enumerate(receivers)]
    assert order == list(reversed(range(count)))
    assert result == signal.send(sender=None)


def test_send_parallel_calls_receivers_with_the_signal_the_sender_and_named_arguments() -> None:
    signal = Signal()
    sender = Sender()
    calls: list[dict[str, Any]] = []

    def receiver(**kwargs: Any) -> str:
        calls.append(kwargs)
        return "done"

    signal.connect(receiver)

    result = signal.send_parallel(sender, a=1, b="two")

    assert result == [(receiver, "done")]
    assert calls == [{"signal": signal, "sender": sender, "a": 1, "b": "two"}]


def test_named_arguments_called_like_settings_reach_the_receivers() -> None:
    signal = Signal()

    def receiver(**kwargs: Any) -> dict[str, Any]:
        # Long enough that a 1 ms timeout, were it taken, would expire.
        time.sleep(0.05)
        return {k: v for k, v in kwargs.items() if k not in {"signal", "sender"}}

    signal.connect(receiver)
    named: dict[str, Any] = {
        "timeout": 0.001,
        "executor": "not an executor",
        "max_workers": 0,
        "method": "mine",
        "robust": True,
        "named": {"x": 1},
        "receivers": [],
    }

    assert signal.send_parallel(None, **named) == [(receiver, named)]
    assert signal.send_parallel_robust(None, **named) == [(receiver, named)]


def test_without_a_timeout_the_calling_thread_runs_a_lone_receiver_itself() -> None:
    signal = Signal()
    threads: list[int] = []

    def receiver(**kwargs: Any) -> None:
        threads.append(threading.get_ident())

    signal.connect(receiver)
    signal.send_parallel(None)
    signal.send_parallel_robust(None)

    assert threads == [threading.get_ident()] * 2


@pytest.mark.parametrize("named", [{}, {"x": 1}], ids=["no named arguments", "named"])
def test_a_lone_receiver_on_the_calling_thread_keeps_every_rule_of_send_parallel(
    named: dict[str, Any],
) -> None:
    # One receiver and no deadline take a path of their own (no batch, no
    # dispatch value unless it is robust): its own context, the same
    # arguments, a failure raised as is, or answered and logged if robust.
    var: contextvars.ContextVar[str] = contextvars.ContextVar("lone", default="unset")
    signal = Signal()
    seen: list[tuple[str, dict[str, Any]]] = []
    fail = False

    def receiver(**kwargs: Any) -> str:
        seen.append((var.get(), kwargs))
        var.set("receiver")
        if fail:
            raise KeyError("lone")
        return "answer"

    signal.connect(receiver)
    token = var.set("caller")
    try:
        assert signal.send_parallel("sender", **named) == [(receiver, "answer")]
        assert var.get() == "caller"
        fail = True
        with pytest.raises(KeyError, match="lone"):
            signal.send_parallel("sender", **named)
        assert var.get() == "caller"
        with structlog.testing.capture_logs() as logs:
            [(who, response)] = signal.send_parallel_robust("sender", **named)
        assert var.get() == "caller"
    finally:
        var.reset(token)

    assert who is receiver
    assert isinstance(response, KeyError)
    [event] = failures_logged(logs, 1)
    assert event["method"] == "send_parallel_robust"
    assert seen == [("caller", {"signal": signal, "sender": "sender", **named})] * 3


@pytest.mark.parametrize("config", [{"timeout": 10.0}, {"caller_runs": False}], ids=str)
def test_with_a_timeout_or_caller_runs_false_receivers_run_only_on_worker_threads(
    config: dict[str, Any],
) -> None:
    signal = Signal(**config)
    threads: list[int] = []

    def receiver(**kwargs: Any) -> None:
        threads.append(threading.get_ident())

    signal.connect(receiver)
    signal.connect(lambda **kwargs: receiver(), weak=False)
    signal.send_parallel(None)
    signal.send_parallel_robust(None)

    assert len(threads) == 4
    assert threading.get_ident() not in threads


def test_without_a_timeout_slow_receivers_spread_over_the_caller_and_workers() -> None:
    signal = Signal()
    together = threading.Barrier(4, timeout=10)
    threads: list[int] = []

    def receiver(**kwargs: Any) -> None:
        threads.append(threading.get_ident())
        together.wait()  # each holds its thread until all four run at once

    for uid in range(4):
        signal.connect(receiver, weak=False, dispatch_uid=uid)
    signal.send_parallel(None)

    assert len(set(threads)) == 4
    assert threading.get_ident() in threads  # the caller ran the first one


def test_receivers_see_the_context_variables_the_caller_set() -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="unset")
    signal = Signal()

    def receiver(**kwargs: Any) -> str:
        return var.get()

    signal.connect(receiver)
    token = var.set("request-42")
    try:
        assert signal.send_parallel(None) == [(receiver, "request-42")]
        assert signal.send_parallel_robust(None) == [(receiver, "request-42")]
    finally:
        var.reset(token)


def test_context_set_by_a_receiver_leaks_neither_to_the_caller_nor_to_other_receivers() -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("who", default="unset")
    # One thread, so that receivers run one after another on the same worker.
    signal = Signal(max_workers=1)

    def make(index: int) -> Receiver:
        def receiver(**kwargs: Any) -> tuple[str, str]:
            seen = var.get()
            var.set(f"receiver-{index}")
            return seen, var.get()

        return receiver

    receivers = [make(i) for i in range(8)]
    for receiver in receivers:
        signal.connect(receiver)
    token = var.set("caller")
    try:
        result = signal.send_parallel(None)
        assert var.get() == "caller"
        robust = signal.send_parallel_robust(None)
        assert var.get() == "caller"
    finally:
        var.reset(token)

    expected = [(r, ("caller", f"receiver-{i}")) for i, r in enumerate(receivers)]
    assert result == expected
    assert robust == expected


def test_send_parallel_chooses_receivers_by_sender_as_send_does() -> None:
    signal = Signal()
    first, second = Sender("first"), Sender("second")

    def for_everyone(**kwargs: Any) -> str:
        return "everyone"

    def for_first(**kwargs: Any) -> str:
        return "first"

    def for_second(**kwargs: Any) -> str:
        return "second"

    signal.connect(for_first, sender=first)
    signal.connect(for_everyone)
    signal.connect(for_second, sender=second)

    assert signal.send_parallel(first) == [(for_first, "first"), (for_everyone, "everyone")]
    assert signal.send_parallel(second) == [(for_everyone, "everyone"), (for_second, "second")]
    assert signal.send_parallel(Sender("other")) == [(for_everyone, "everyone")]
    for sender in (first, second, Sender("other"), None):
        assert signal.send_parallel(sender) == signal.send(sender)


def test_send_parallel_uses_and_fills_the_sender_cache_when_caching() -> None:
    signal = Signal(use_caching=True)
    sender, lonely = Sender("sender"), Sender("lonely")

    def receiver(**kwargs: Any) -> int:
        return 1

    def later(**kwargs: Any) -> int:
        return 2

    signal.connect(receiver, sender=sender)

    assert signal.send_parallel(sender) == [(receiver, 1)]
    assert sender in signal.sender_receivers_cache
    assert signal.send_parallel(lonely) == []
    assert signal.sender_receivers_cache.get(lonely) is NO_RECEIVERS

    # Connecting clears the cache, so the next dispatch sees the new receiver.
    signal.connect(later, sender=sender)
    assert signal.send_parallel(sender) == [(receiver, 1), (later, 2)]
    assert signal.send_parallel(sender) == signal.send(sender)


@pytest.mark.parametrize("sender", [7, "text", (1, 2), object()])
def test_senders_that_cannot_be_cached_are_dispatched_to_when_caching(sender: object) -> None:
    signal = Signal(use_caching=True)

    def everyone(**kwargs: Any) -> str:
        return "everyone"

    def only_this(**kwargs: Any) -> str:
        return "only this"

    signal.connect(everyone)
    signal.connect(only_this, sender=sender)

    expected = [(everyone, "everyone"), (only_this, "only this")]
    assert signal.send_parallel(sender) == expected
    assert signal.send_parallel(sender) == expected
    assert signal.send_parallel(Sender("other")) == [(everyone, "everyone")]


def test_send_parallel_skips_garbage_collected_receivers_and_forgets_them() -> None:
    signal = Signal()

    class Listener:
        def on_event(self, **kwargs: Any) -> str:
            return "method"

    def kept(**kwargs: Any) -> str:
        return "kept"

    def dropped(**kwargs: Any) -> str:
        return "dropped"

    listener = Listener()
    signal.connect(dropped)
    signal.connect(listener.on_event)
    signal.connect(kept)
    assert len(signal.receivers) == 3

    del dropped, listener
    collect()

    assert signal.send_parallel(None) == [(kept, "kept")]
    assert len(signal.receivers) == 1


@pytest.mark.parametrize("use_caching", [False, True])
def test_send_parallel_sees_a_disconnect_followed_by_a_connect(use_caching: bool) -> None:
    signal = Signal(use_caching=use_caching)
    sender = Sender()

    def old(**kwargs: Any) -> str:
        return "old"

    def new(**kwargs: Any) -> str:
        return "new"

    signal.connect(old)
    assert signal.send_parallel(sender) == [(old, "old")]

    # The list keeps its length, but not its receivers.
    assert signal.disconnect(old)
    signal.connect(new)

    assert signal.send_parallel(sender) == [(new, "new")]
    assert signal.send_parallel_robust(sender) == [(new, "new")]


@pytest.mark.parametrize("situation", ["never connected", "other sender only", "all dead"])
def test_send_parallel_with_no_receivers_returns_nothing_without_touching_a_pool(
    situation: str,
) -> None:
    executor = CountingExecutor()
    signals = [Signal(), Signal(max_workers=2, name="unused-own-pool"), Signal(executor=executor)]

    def receiver(**kwargs: Any) -> None:
        raise AssertionError("must not be called")

    for signal in signals:
        if situation == "other sender only":
            signal.connect(receiver, sender=Sender("other"))
        elif situation == "all dead":

            def doomed(**kwargs: Any) -> None:
                raise AssertionError("must not be called")

            signal.connect(doomed)
            del doomed
    collect()
    before = thread_names()

    try:
        for signal in signals:
            assert signal.send_parallel(Sender("lonely"), x=1) == []
            assert signal.send_parallel_robust(Sender("lonely"), x=1) == []
        assert _pool._default is None
        assert thread_names() - before == set()
        assert executor.submitted == 0
    finally:
        executor.shutdown()


def test_the_exception_of_the_earliest_connected_failing_receiver_propagates() -> None:
    signal = Signal()

    def succeeds(**kwargs: Any) -> str:
        return "fine"

    def fails_first(**kwargs: Any) -> None:
        raise ValueError("first failure")

    def fails_later(**kwargs: Any) -> None:
        raise KeyError("later failure")

    signal.connect(succeeds)
    signal.connect(fails_first)
    signal.connect(fails_later)

    with pytest.raises(ValueError, match="first failure") as parallel:
        signal.send_parallel(None)
    with pytest.raises(ValueError, match="first failure"):
        signal.send(None)
    assert parallel.value.__traceback__ is not None


@pytest.mark.parametrize("first_outcome", ["succeeds", "fails"])
def test_a_later_failure_is_raised_only_once_every_earlier_receiver_has_finished(
    first_outcome: str,
) -> None:
    signal = Signal()
    release_first = threading.Event()
    first_started = threading.Event()
    third_failing = threading.Event()

    def first(**kwargs: Any) -> str:
        first_started.set()
        wait_for(release_first)
        if first_outcome == "fails":
            raise RuntimeError("first receiver failed")
        return "first"

    def second(**kwargs: Any) -> str:
        return "second"

    def third(**kwargs: Any) -> None:
        wait_for(first_started)
        third_failing.set()
        raise LookupError("third receiver failed")

    for receiver in (first, second, third):
        signal.connect(receiver)

    with structlog.testing.capture_logs() as logs:
        call = Call(lambda: signal.send_parallel(None))
        call.start()
        try:
            wait_for(third_failing)
            # The third receiver has failed, but the first is still running.
            call.join(0.2)
            assert call.is_alive()
        finally:
            release_first.set()
        call.join(WAIT)
        assert not call.is_alive()

    assert call.result is None
    if first_outcome == "succeeds":
        assert isinstance(call.error, LookupError)
        assert call.error.args == ("third receiver failed",)
        assert [e for e in logs if e["event"] == "signal.receiver_failed"] == []
    else:
        assert isinstance(call.error, RuntimeError)
        assert str(call.error) == "first receiver failed"
        # The failure that was not raised is reported, not lost.
        logged = [e for e in logs if e["event"] == "signal.receiver_failed"]
        assert len(logged) == 1
        assert third.__qualname__ in logged[0]["receiver"]
        assert logged[0]["method"] == "send_parallel"
        assert isinstance(logged[0]["exc_info"], LookupError)


def test_receivers_that_had_not_started_when_one_failed_are_never_called() -> None:
    signal = Signal(max_workers=1)
    called: list[str] = []

    def fails(**kwargs: Any) -> None:
        called.append("fails")
        raise ValueError("boom")

    def never(**kwargs: Any) -> None:
        called.append("never")

    def probe(**kwargs: Any) -> str:
        return "probe"

    signal.connect(fails)
    for _ in range(5):
        signal.connect(never, sender=None, dispatch_uid=object())

    with pytest.raises(ValueError, match="boom"):
        signal.send_parallel(None)

    # The pool's single thread runs one dispatch after another: once a later
    # dispatch has run, the failed one can start nothing more.
    other = Sender("probe")
    signal.receivers = []
    signal.connect(probe, sender=other)
    assert signal.send_parallel(other) == [(probe, "probe")]
    assert called == ["fails"]


def test_failures_of_receivers_still_running_when_send_parallel_raises_are_logged() -> None:
    signal = Signal()
    slow_started = threading.Event()
    release_slow = threading.Event()
    slow_failing = threading.Event()

    def fails_fast(**kwargs: Any) -> None:
        wait_for(slow_started)
        raise ValueError("fast failure")

    def fails_slowly(**kwargs: Any) -> None:
        slow_started.set()
        wait_for(release_slow)
        slow_failing.set()
        raise KeyError("slow failure")

    signal.connect(fails_fast)
    signal.connect(fails_slowly)
    sender = Sender("logged")

    with structlog.testing.capture_logs() as logs:
        try:
            # Raised while the second receiver is still blocked.
            with pytest.raises(ValueError, match="fast failure"):
                signal.send_parallel(sender)
            assert not slow_failing.is_set()
        finally:
            release_slow.set()
        wait_for(slow_failing)
        logged = failures_logged(logs, 1)

    assert len(logged) == 1
    entry = logged[0]
    assert fails_slowly.__qualname__ in entry["receiver"]
    assert entry["method"] == "send_parallel"
    assert entry["sender"] == repr(sender)
    assert isinstance(entry["exc_info"], KeyError)
    assert entry["exc_info"].args == ("slow failure",)


def test_send_parallel_raises_a_base_exception_that_is_not_an_exception() -> None:
    class Abort(BaseException):
        pass

    signal = Signal()

    def aborts(**kwargs: Any) -> None:
        raise Abort("stop")

    signal.connect(aborts)

    with pytest.raises(Abort, match="stop"):
        signal.send_parallel(None)


# -- send_parallel answers what send answers ---------------------------------------------

receiver_specs = st.lists(
    st.tuples(
        st.floats(min_value=0.0, max_value=0.004),  # delay in seconds
        st.one_of(st.none(), st.integers(), st.text(max_size=5)),  # response
        st.sampled_from(["everyone", "mine", "other"]),  # which sender it listens to
        st.booleans(),  # whether it fails
    ),
    max_size=12,
)


class Tally:
    """Which receivers started and finished, to know when a dispatch has gone quiet."""

    def __init__(self) -> None:
        self.started: list[bool] = []  # whether each started receiver fails
        self.finished = 0

    def clear(self) -> None:
        self.started.clear()
        self.finished = 0


def build(
    signal: Signal,
    specs: list[tuple[float, object, str, bool]],
    mine: Sender,
    other: Sender,
    tally: Tally,
) -> list[Receiver]:
    senders = {"everyone": None, "mine": mine, "other": other}
    receivers: list[Receiver] = []
    for index, (delay, response, listens_to, fails) in enumerate(specs):

        def receiver(
            *, _delay: float = delay, _response: object = response, _fails: bool = fails, **kw: Any
        ) -> object:
            tally.started.append(_fails)
            try:
                time.sleep(_delay)
                if _fails:
                    raise ValueError(_response)
                return _response
            finally:
                tally.finished += 1

        receiver.__qualname__ = f"receiver_{index}"
        signal.connect(receiver, sender=senders[listens_to])
        receivers.append(receiver)
    return receivers


def outcome(call: Callable[[], Result]) -> tuple[str, Any]:
    try:
        return "returned", call()
    except ValueError as exc:
        return "raised", exc.args


@settings(max_examples=40, deadline=None, database=None)
@given(
    specs=receiver_specs,
    max_workers=st.sampled_from([None, 1, 2, 5]),
    use_caching=st.booleans(),
)
def test_send_parallel_answers_exactly_what_send_answers(
    specs: list[tuple[float, object, str, bool]], max_workers: int | None, use_caching: bool
) -> None:
    signal = Signal(use_caching=use_caching, max_workers=max_workers)
    mine, other = Sender("mine"), Sender("other")
    tally = Tally()
    receivers = build(signal, specs, mine, other, tally)

    with structlog.testing.capture_logs() as logs:
        for sender in (mine, other, None):
            expected = outcome(functools.partial(signal.send, sender, value=1))
            tally.clear()
            actual = outcome(functools.partial(signal.send_parallel, sender, value=1))
            assert actual == expected

            # Receivers still running when it raised finish in the background;
            # every failure but the one raised is logged, none is lost.
            def quiet(raised: bool = actual[0] == "raised") -> bool:
                failed = sum(tally.started) - (1 if raised else 0)
                logged = [e for e in list(logs) if e["event"] == "signal.receiver_failed"]
                return tally.finished == len(tally.started) and len(logged) == failed

            for _ in range(1000):
                if quiet():
                    break
                time.sleep(0.005)
            assert quiet()
            logs.clear()
    assert len(receivers) == len(specs)


class _PausingTickets:
    """Claim tickets that pause after handing out 0 until the batch stops: a GIL switch, forced."""

    def __init__(self, batch: _fanout.Batch) -> None:
        self.batch = batch
        self.next = 0

    def __next__(self) -> int:
        claimed, self.next = self.next, self.next + 1
        if claimed == 0:
            deadline = time.monotonic() + 10
            while not self.batch.stop and time.monotonic() < deadline:
                time.sleep(0.001)
        return claimed


def test_a_receiver_claimed_just_before_a_later_one_fails_still_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Regression: a helper that claimed receiver 0, then saw the batch stop
    # because receiver 1 (claimed by another helper) failed, gave receiver 0
    # back; nobody ran it and send_parallel waited for it forever. A claimed
    # receiver always runs now.
    original = _fanout.Batch.__init__

    def patched(self: _fanout.Batch, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self._tickets = _PausingTickets(self)  # type: ignore[assignment]

    monkeypatch.setattr(_fanout.Batch, "__init__", patched)
    ran: list[str] = []

    def first(**kwargs: Any) -> str:
        ran.append("first")
        return "first"

    def second(**kwargs: Any) -> str:
        ran.append("second")
        msg = "second failed"
        raise ValueError(msg)

    # Both receivers on workers, so that one can pause while the other fails.
    signal = Signal(max_workers=2, caller_runs=False)
    signal.connect(first)
    signal.connect(second)
    outcome: list[BaseException] = []

    def call() -> None:
        try:
            signal.send_parallel(sender=None)
        except ValueError as exc:
            outcome.append(exc)

    caller = threading.Thread(target=call, daemon=True)
    caller.start()
    caller.join(20)
    assert not caller.is_alive(), "send_parallel hung on a receiver given back"
    assert sorted(ran) == ["first", "second"]
    assert [str(e) for e in outcome] == ["second failed"]
    signal.shutdown()
