"""Signal.send and Signal.has_listeners: arguments, order, sender filtering, failures."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from parasignal import Signal, dispatcher


class Sender:
    """A sender that can be weakly referenced."""


class SubSender(Sender):
    """A subclass is a different sender."""


class EqualSender:
    """Every instance is equal to every other: senders must still be told apart."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, EqualSender)

    def __hash__(self) -> int:
        return 1


class Listener:
    def on_signal(self, **kwargs: Any) -> str:
        return "on_signal"


def make_receiver(name: str, calls: list[str] | None = None) -> Callable[..., str]:
    def receiver(**kwargs: Any) -> str:
        if calls is not None:
            calls.append(name)
        return name

    return receiver


def responses(signal: Signal, sender: object = None) -> list[Any]:
    return [response for _, response in signal.send(sender)]


# -- arguments and results -----------------------------------------------------------


def test_send_with_no_receivers_returns_an_empty_list() -> None:
    signal = Signal()
    assert signal.send(None) == []
    assert signal.send(Sender(), value=1) == []


def test_receivers_get_the_signal_the_sender_and_the_named_arguments() -> None:
    signal = Signal()
    seen: list[tuple[object, object, dict[str, Any]]] = []

    def receiver(signal: object, sender: object, **kwargs: Any) -> None:
        seen.append((signal, sender, kwargs))

    signal.connect(receiver)
    sender = Sender()
    signal.send(sender, value=1, other="two")
    signal.send(sender)
    assert seen == [(signal, sender, {"value": 1, "other": "two"}), (signal, sender, {})]


def test_send_returns_each_receiver_with_its_response_in_connection_order() -> None:
    signal = Signal()
    receivers = [make_receiver(f"r{i}") for i in range(5)]
    for receiver in reversed(receivers):
        signal.connect(receiver)
    assert signal.send(None) == [(r, r()) for r in reversed(receivers)]


def test_send_returns_the_receiver_itself_not_a_weak_reference() -> None:
    signal = Signal()
    listener = Listener()
    first = make_receiver("first")
    signal.connect(first)
    signal.connect(listener.on_signal)
    [(got_first, _), (got_method, _)] = signal.send(None)
    assert got_first is first
    assert got_method == listener.on_signal


def test_each_receiver_response_is_returned_unchanged() -> None:
    signal = Signal()
    payload = object()

    def returns_payload(**kwargs: Any) -> object:
        return payload

    def returns_nothing(**kwargs: Any) -> None:
        return None

    signal.connect(returns_payload)
    signal.connect(returns_nothing)
    assert signal.send(None) == [(returns_payload, payload), (returns_nothing, None)]
    assert signal.send(None)[0][1] is payload


def test_a_receiver_connected_twice_is_called_once() -> None:
    signal = Signal()
    calls: list[str] = []
    first = make_receiver("first", calls)
    signal.connect(first)
    signal.connect(first)
    signal.send(None)
    assert calls == ["first"]


# -- sender filtering ----------------------------------------------------------------


def test_a_receiver_for_one_sender_only_receives_that_senders_signals() -> None:
    signal = Signal()
    sender, other = Sender(), Sender()
    specific = make_receiver("specific")
    signal.connect(specific, sender=sender)
    assert responses(signal, sender) == ["specific"]
    assert signal.send(other) == []
    assert signal.send(None) == []


def test_a_receiver_for_every_sender_receives_all_signals() -> None:
    signal = Signal()
    everyone = make_receiver("everyone")
    signal.connect(everyone)
    for sender in (None, Sender(), Sender, 42, "text"):
        assert responses(signal, sender) == ["everyone"]


def test_specific_and_general_receivers_are_interleaved_in_connection_order() -> None:
    signal = Signal()
    sender, other = Sender(), Sender()
    signal.connect(make_receiver("general 1"), weak=False)
    signal.connect(make_receiver("for sender"), sender=sender, weak=False)
    signal.connect(make_receiver("general 2"), weak=False)
    signal.connect(make_receiver("for other"), sender=other, weak=False)
    signal.connect(make_receiver("general 3"), weak=False)
    assert responses(signal, sender) == ["general 1", "for sender", "general 2", "general 3"]
    assert responses(signal, other) == ["general 1", "general 2", "for other", "general 3"]
    assert responses(signal, Sender()) == ["general 1", "general 2", "general 3"]


def test_a_class_sender_is_not_its_subclass() -> None:
    signal = Signal()
    signal.connect(make_receiver("parent"), sender=Sender, weak=False)
    signal.connect(make_receiver("child"), sender=SubSender, weak=False)
    assert responses(signal, Sender) == ["parent"]
    assert responses(signal, SubSender) == ["child"]
    assert responses(signal, Sender()) == []


def test_senders_are_told_apart_by_identity_not_equality() -> None:
    signal = Signal()
    sender, equal = EqualSender(), EqualSender()
    assert sender == equal
    signal.connect(make_receiver("for sender"), sender=sender, weak=False)
    assert responses(signal, sender) == ["for sender"]
    assert signal.send(equal) == []


def test_a_sender_that_cannot_be_weakly_referenced_still_works() -> None:
    signal = Signal()
    sender = object()
    number = 10**20
    signal.connect(make_receiver("object"), sender=sender, weak=False)
    signal.connect(make_receiver("number"), sender=number, weak=False)
    assert responses(signal, sender) == ["object"]
    assert responses(signal, number) == ["number"]
    assert signal.send(object()) == []


def test_send_looks_up_make_id_at_call_time(monkeypatch: pytest.MonkeyPatch) -> None:
    signal = Signal()
    sender, impostor = Sender(), Sender()
    signal.connect(make_receiver("for sender"), sender=sender, weak=False)
    assert signal.send(impostor) == []
    original = dispatcher._make_id

    def impostor_is_sender(target: object) -> object:
        return original(sender) if target is impostor else original(target)

    monkeypatch.setattr(dispatcher, "_make_id", impostor_is_sender)
    assert responses(signal, impostor) == ["for sender"]
    assert signal.has_listeners(impostor) is True


# -- has_listeners -------------------------------------------------------------------


def test_a_signal_without_receivers_has_no_listeners() -> None:
    signal = Signal()
    assert signal.has_listeners() is False
    assert signal.has_listeners(Sender()) is False


def test_a_general_receiver_is_a_listener_for_every_sender() -> None:
    signal = Signal()
    signal.connect(make_receiver("general"), weak=False)
    assert signal.has_listeners() is True
    assert signal.has_listeners(Sender()) is True
    assert signal.has_listeners(42) is True


def test_a_specific_receiver_is_a_listener_for_its_sender_only() -> None:
    signal = Signal()
    sender = Sender()
    signal.connect(make_receiver("specific"), sender=sender, weak=False)
    assert signal.has_listeners(sender) is True
    assert signal.has_listeners() is False
    assert signal.has_listeners(Sender()) is False


def test_has_listeners_follows_connect_and_disconnect() -> None:
    signal = Signal()
    first = make_receiver("first")
    signal.connect(first)
    assert signal.has_listeners() is True
    signal.disconnect(first)
    assert signal.has_listeners() is False


# -- failures ------------------------------------------------------------------------


class ReceiverError(Exception):
    pass


def test_send_propagates_the_first_exception_and_calls_no_later_receiver() -> None:
    signal = Signal()
    calls: list[str] = []
    error = ReceiverError("first failure")

    def failing(**kwargs: Any) -> None:
        calls.append("failing")
        raise error

    def also_failing(**kwargs: Any) -> None:
        calls.append("also failing")
        raise ReceiverError("second failure")

    before, after = make_receiver("before", calls), make_receiver("after", calls)
    signal.connect(before)
    signal.connect(failing)
    signal.connect(also_failing)
    signal.connect(after)
    with pytest.raises(ReceiverError) as excinfo:
        signal.send(None)
    assert excinfo.value is error
    assert calls == ["before", "failing"]


def test_send_propagates_exceptions_that_are_not_exception_subclasses() -> None:
    signal = Signal()

    def interrupted(**kwargs: Any) -> None:
        raise KeyboardInterrupt

    signal.connect(interrupted)
    with pytest.raises(KeyboardInterrupt):
        signal.send(None)


def test_a_failed_send_leaves_the_signal_usable() -> None:
    signal = Signal()
    fail = [True]

    def sometimes(**kwargs: Any) -> str:
        if fail[0]:
            raise ReceiverError
        return "fine"

    signal.connect(sometimes)
    with pytest.raises(ReceiverError):
        signal.send(None)
    fail[0] = False
    assert responses(signal) == ["fine"]


# -- changes during a send -----------------------------------------------------------


def test_a_receiver_connected_during_a_send_is_called_from_the_next_send() -> None:
    signal = Signal()
    late = make_receiver("late")

    def connector(**kwargs: Any) -> str:
        signal.connect(late)
        return "connector"

    signal.connect(connector)
    assert responses(signal) == ["connector"]
    assert responses(signal) == ["connector", "late"]


def test_a_receiver_disconnected_during_a_send_is_still_called_by_that_send() -> None:
    signal = Signal()
    victim = make_receiver("victim")

    def disconnector(**kwargs: Any) -> str:
        signal.disconnect(victim)
        return "disconnector"

    signal.connect(disconnector)
    signal.connect(victim)
    assert responses(signal) == ["disconnector", "victim"]
    assert responses(signal) == ["disconnector"]


def test_the_lock_is_not_held_while_a_receiver_runs() -> None:
    signal = Signal()
    acquired: list[bool] = []

    def probe(**kwargs: Any) -> bool:
        got = signal.lock.acquire(blocking=False)
        if got:
            signal.lock.release()
        acquired.append(got)
        return signal.has_listeners()

    signal.connect(probe)
    assert signal.send(None) == [(probe, True)]
    assert acquired == [True]


def test_a_receiver_may_send_the_same_signal_again() -> None:
    signal = Signal()
    depth: list[int] = []

    def recursive(level: int = 0, **kwargs: Any) -> int:
        depth.append(level)
        if level < 3:
            signal.send(None, level=level + 1)
        return level

    signal.connect(recursive)
    assert signal.send(None) == [(recursive, 0)]
    assert depth == [0, 1, 2, 3]


def test_sends_from_several_threads_each_get_every_receiver(tiny_switch_interval: None) -> None:
    signal = Signal()
    receivers = [make_receiver(f"r{i}") for i in range(20)]
    for receiver in receivers:
        signal.connect(receiver)
    expected = [r() for r in receivers]
    results: list[list[Any]] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(50):
            got = responses(signal)
            with lock:
                results.append(got)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 200
    assert all(result == expected for result in results)
