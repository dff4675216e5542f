"""Signal.disconnect: what it matches, what it returns, and what it leaves behind."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from parasignal import Signal, dispatcher


class Sender:
    """A sender that can be weakly referenced."""


class Listener:
    def on_signal(self, **kwargs: Any) -> str:
        return "on_signal"


def make_receiver(name: str) -> Callable[..., str]:
    def receiver(**kwargs: Any) -> str:
        return name

    return receiver


def responses(signal: Signal, sender: object = None) -> list[Any]:
    return [response for _, response in signal.send(sender)]


def test_disconnect_returns_true_when_it_disconnected_a_receiver() -> None:
    signal = Signal()
    first = make_receiver("first")
    signal.connect(first)
    assert signal.disconnect(first) is True
    assert signal.receivers == []
    assert signal.send(None) == []
    assert signal.has_listeners() is False


def test_disconnect_returns_false_when_nothing_matched() -> None:
    signal = Signal()
    first, other = make_receiver("first"), make_receiver("other")
    assert signal.disconnect(first) is False
    signal.connect(first)
    assert signal.disconnect(other) is False
    assert responses(signal) == ["first"]


def test_disconnecting_twice_returns_true_then_false() -> None:
    signal = Signal()
    first = make_receiver("first")
    signal.connect(first)
    assert [signal.disconnect(first), signal.disconnect(first)] == [True, False]


def test_a_bound_method_is_disconnected_through_a_new_bound_method_object() -> None:
    signal = Signal()
    listener = Listener()
    signal.connect(listener.on_signal)
    assert signal.disconnect(listener.on_signal) is True
    assert signal.send(None) == []


def test_disconnecting_one_instance_method_leaves_another_instance_connected() -> None:
    signal = Signal()
    one, two = Listener(), Listener()
    signal.connect(one.on_signal)
    signal.connect(two.on_signal)
    assert signal.disconnect(one.on_signal) is True
    assert signal.send(None) == [(two.on_signal, "on_signal")]


def test_a_receiver_is_disconnected_by_its_dispatch_uid_alone() -> None:
    signal = Signal()
    first = make_receiver("first")
    signal.connect(first, dispatch_uid="uid")
    assert signal.disconnect(dispatch_uid="uid") is True
    assert signal.send(None) == []
    assert signal.disconnect(dispatch_uid="uid") is False


def test_a_receiver_connected_with_a_dispatch_uid_is_not_disconnected_by_identity() -> None:
    signal = Signal()
    first = make_receiver("first")
    signal.connect(first, dispatch_uid="uid")
    assert signal.disconnect(first) is False
    assert responses(signal) == ["first"]


def test_a_dispatch_uid_takes_precedence_over_the_receiver_passed_with_it() -> None:
    signal = Signal()
    first, other = make_receiver("first"), make_receiver("other")
    signal.connect(first, dispatch_uid="uid")
    assert signal.disconnect(other, dispatch_uid="uid") is True
    assert signal.send(None) == []


@pytest.mark.parametrize("dispatch_uid", ["", 0, None, False])
def test_a_falsy_dispatch_uid_is_ignored_when_disconnecting(dispatch_uid: object) -> None:
    signal = Signal()
    first = make_receiver("first")
    signal.connect(first)
    assert signal.disconnect(first, dispatch_uid=dispatch_uid) is True
    assert signal.send(None) == []


def test_an_unhashable_dispatch_uid_disconnects_nothing() -> None:
    signal = Signal()
    first = make_receiver("first")
    signal.connect(first)
    assert signal.disconnect(first, dispatch_uid=["unhashable"]) is False
    assert responses(signal) == ["first"]


def test_disconnect_needs_the_sender_the_receiver_was_connected_for() -> None:
    signal = Signal()
    first = make_receiver("first")
    sender = Sender()
    signal.connect(first, sender=sender)
    assert signal.disconnect(first) is False
    assert signal.disconnect(first, sender=Sender()) is False
    assert responses(signal, sender) == ["first"]
    assert signal.disconnect(first, sender=sender) is True
    assert signal.send(sender) == []


def test_disconnecting_for_one_sender_keeps_the_other_registrations() -> None:
    signal = Signal()
    first = make_receiver("first")
    sender_a, sender_b = Sender(), Sender()
    signal.connect(first)
    signal.connect(first, sender=sender_a)
    signal.connect(first, sender=sender_b)
    assert signal.disconnect(first, sender=sender_a) is True
    assert responses(signal, sender_a) == ["first"]
    assert responses(signal, sender_b) == ["first", "first"]
    assert signal.disconnect(first) is True
    assert signal.send(sender_a) == []
    assert responses(signal, sender_b) == ["first"]


def test_a_sender_that_cannot_be_weakly_referenced_is_matched_by_identity() -> None:
    signal = Signal()
    first = make_receiver("first")
    sender = object()
    signal.connect(first, sender=sender)
    assert signal.disconnect(first, sender=object()) is False
    assert signal.disconnect(first, sender=sender) is True
    assert signal.send(sender) == []


def test_disconnecting_keeps_the_order_of_the_other_receivers() -> None:
    signal = Signal()
    receivers = [make_receiver(f"r{i}") for i in range(6)]
    for receiver in receivers:
        signal.connect(receiver)
    signal.disconnect(receivers[0])
    signal.disconnect(receivers[3])
    signal.disconnect(receivers[5])
    assert responses(signal) == ["r1", "r2", "r4"]


def test_a_disconnected_receiver_connected_again_goes_last() -> None:
    signal = Signal()
    first, second = make_receiver("first"), make_receiver("second")
    signal.connect(first)
    signal.connect(second)
    signal.disconnect(first)
    signal.connect(first)
    assert responses(signal) == ["second", "first"]


def test_a_disconnected_dispatch_uid_can_be_used_by_another_receiver() -> None:
    signal = Signal()
    first, second = make_receiver("first"), make_receiver("second")
    signal.connect(first, dispatch_uid="uid")
    signal.disconnect(dispatch_uid="uid")
    signal.connect(second, dispatch_uid="uid")
    assert responses(signal) == ["second"]


def test_disconnecting_one_of_twenty_thousand_receivers_removes_exactly_that_one() -> None:
    signal = Signal()
    receivers = [make_receiver(f"r{i}") for i in range(20_000)]
    for receiver in receivers:
        signal.connect(receiver)
    assert signal.disconnect(receivers[10_000]) is True
    assert signal.disconnect(receivers[10_000]) is False
    result = responses(signal)
    assert len(result) == 19_999
    assert "r10000" not in result
    signal.connect(receivers[10_000])
    assert responses(signal)[-1] == "r10000"


def test_disconnect_looks_up_make_id_at_call_time(monkeypatch: pytest.MonkeyPatch) -> None:
    signal = Signal()
    first, stand_in = make_receiver("first"), make_receiver("stand_in")
    signal.connect(first)
    original = dispatcher._make_id

    def stand_in_is_first(target: object) -> object:
        return original(first) if target is stand_in else original(target)

    monkeypatch.setattr(dispatcher, "_make_id", stand_in_is_first)
    assert signal.disconnect(stand_in) is True
    assert signal.send(None) == []


def test_a_receiver_may_disconnect_itself_while_being_called() -> None:
    signal = Signal()

    def once(**kwargs: Any) -> str:
        signal.disconnect(once)
        return "once"

    signal.connect(once)
    assert signal.send(None) == [(once, "once")]
    assert signal.send(None) == []
