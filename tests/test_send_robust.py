"""Signal.send_robust: failing receivers become responses; the others still run."""

from __future__ import annotations

import functools
import traceback
from collections.abc import Callable
from typing import Any

import pytest

from parasignal import Signal


class Sender:
    """A sender that can be weakly referenced."""


class ReceiverError(Exception):
    pass


def make_receiver(name: str, calls: list[str] | None = None) -> Callable[..., str]:
    def receiver(**kwargs: Any) -> str:
        if calls is not None:
            calls.append(name)
        return name

    return receiver


def raise_error(**kwargs: Any) -> None:
    raise ReceiverError("boom")


class FailingCallable:
    """A callable instance: it has no ``__qualname__`` of its own."""

    def __call__(self, **kwargs: Any) -> None:
        raise ReceiverError("callable instance failed")


class RecordingSignal(Signal):
    """Overrides Django's failure hook, as applications do."""

    def __init__(self) -> None:
        super().__init__()
        self.failures: list[tuple[Callable[..., Any], BaseException]] = []

    def _log_robust_failure(self, receiver: Callable[..., Any], err: BaseException) -> None:
        self.failures.append((receiver, err))


def test_send_robust_with_no_receivers_returns_an_empty_list() -> None:
    signal = Signal()
    assert signal.send_robust(None) == []
    assert signal.send_robust(Sender(), value=1) == []


def test_send_robust_returns_the_same_responses_as_send_when_nothing_fails() -> None:
    signal = Signal()
    sender = Sender()
    receivers = [make_receiver(f"r{i}") for i in range(4)]
    for receiver in receivers:
        signal.connect(receiver)
    seen: list[dict[str, Any]] = []

    def echo(**kwargs: Any) -> dict[str, Any]:
        seen.append(kwargs)
        return kwargs

    signal.connect(echo)
    assert signal.send_robust(sender, value=1) == signal.send(sender, value=1)
    assert seen[0] == {"signal": signal, "sender": sender, "value": 1}


def test_a_failing_receiver_gets_its_exception_as_response_and_the_rest_still_run() -> None:
    signal = Signal()
    calls: list[str] = []
    before, after = make_receiver("before", calls), make_receiver("after", calls)
    error = ReceiverError("the failure")

    def failing(**kwargs: Any) -> None:
        calls.append("failing")
        raise error

    signal.connect(before)
    signal.connect(failing)
    signal.connect(after)
    assert signal.send_robust(None) == [(before, "before"), (failing, error), (after, "after")]
    assert calls == ["before", "failing", "after"]


def test_the_returned_exception_carries_its_traceback() -> None:
    signal = Signal()
    signal.connect(raise_error)
    [(_, error)] = signal.send_robust(None)
    assert isinstance(error, ReceiverError)
    assert error.__traceback__ is not None
    frames = traceback.extract_tb(error.__traceback__)
    assert frames[-1].name == "raise_error"


def test_every_failing_receiver_gets_its_own_exception() -> None:
    signal = Signal()

    def fail_one(**kwargs: Any) -> None:
        raise ReceiverError("one")

    def fail_two(**kwargs: Any) -> None:
        msg = "two"
        raise KeyError(msg)

    signal.connect(fail_one)
    signal.connect(fail_two)
    [(got_one, one), (got_two, two)] = signal.send_robust(None)
    assert (got_one, got_two) == (fail_one, fail_two)
    assert isinstance(one, ReceiverError)
    assert str(one) == "one"
    assert isinstance(two, KeyError)
    assert two.args == ("two",)


def test_send_robust_reports_each_failure_through_log_robust_failure() -> None:
    signal = RecordingSignal()
    ok = make_receiver("ok")
    signal.connect(raise_error)
    signal.connect(ok)
    responses = signal.send_robust(None)
    assert signal.failures == [(raise_error, responses[0][1])]
    assert isinstance(responses[0][1], ReceiverError)
    assert responses[1] == (ok, "ok")


@pytest.mark.parametrize("exception", [KeyboardInterrupt, SystemExit, GeneratorExit])
def test_exceptions_that_are_not_exception_subclasses_propagate(
    exception: type[BaseException],
) -> None:
    signal = RecordingSignal()
    calls: list[str] = []
    after = make_receiver("after", calls)

    def interrupted(**kwargs: Any) -> None:
        raise exception

    signal.connect(interrupted)
    signal.connect(after)
    with pytest.raises(exception):
        signal.send_robust(None)
    assert calls == []
    assert signal.failures == []


def test_a_failing_functools_partial_without_qualname_is_handled() -> None:
    def fail_with(message: str, **kwargs: Any) -> None:
        raise ReceiverError(message)

    signal = Signal()
    partial = functools.partial(fail_with, "partial failed")
    assert not hasattr(partial, "__qualname__")
    signal.connect(partial, weak=False)
    [(got, error)] = signal.send_robust(None)
    assert got is partial
    assert isinstance(error, ReceiverError)
    assert str(error) == "partial failed"


def test_a_failing_callable_instance_without_qualname_is_handled() -> None:
    signal = Signal()
    instance = FailingCallable()
    assert not hasattr(instance, "__qualname__")
    after = make_receiver("after")
    signal.connect(instance)
    signal.connect(after)
    [(got, error), second] = signal.send_robust(None)
    assert got is instance
    assert isinstance(error, ReceiverError)
    assert second == (after, "after")


def test_a_failure_with_a_sender_whose_repr_fails_is_still_returned() -> None:
    class BadRepr:
        def __repr__(self) -> str:
            raise RuntimeError("no repr")

    signal = Signal()
    sender = BadRepr()
    signal.connect(raise_error, sender=sender)
    [(_, error)] = signal.send_robust(sender)
    assert isinstance(error, ReceiverError)


def test_send_robust_only_calls_receivers_for_the_sender() -> None:
    signal = Signal()
    sender, other = Sender(), Sender()
    general, specific = make_receiver("general"), make_receiver("specific")
    signal.connect(general)
    signal.connect(specific, sender=sender)
    signal.connect(raise_error, sender=other)
    assert signal.send_robust(sender) == [(general, "general"), (specific, "specific")]
    assert [type(r) for _, r in signal.send_robust(other)] == [str, ReceiverError]
