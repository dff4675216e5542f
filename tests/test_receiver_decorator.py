"""The receiver decorator: connects to one or more signals, returns the function unchanged."""

from __future__ import annotations

import weakref
from typing import Any

import pytest

from conftest import collect
from parasignal import Signal, receiver


class Sender:
    """A sender that can be weakly referenced."""


def test_the_decorator_returns_the_function_unchanged() -> None:
    signal = Signal()

    def handler(**kwargs: Any) -> str:
        return "handled"

    decorated = receiver(signal)(handler)
    assert decorated is handler
    assert signal.send(None) == [(handler, "handled")]


def test_the_decorator_connects_the_function_to_one_signal() -> None:
    signal, other = Signal(), Signal()

    @receiver(signal)
    def handler(sender: object, **kwargs: Any) -> object:
        return sender

    assert signal.send("sent") == [(handler, "sent")]
    assert other.send("sent") == []
    assert handler(sender="direct") == "direct"


@pytest.mark.parametrize("container", [list, tuple])
def test_the_decorator_connects_the_function_to_each_signal_of_a_list_or_tuple(
    container: type[list[Signal] | tuple[Signal, ...]],
) -> None:
    first, second, unrelated = Signal(), Signal(), Signal()

    @receiver(container([first, second]))
    def handler(**kwargs: Any) -> str:
        return "handled"

    assert first.send(None) == [(handler, "handled")]
    assert second.send(None) == [(handler, "handled")]
    assert unrelated.send(None) == []


def test_the_decorator_passes_the_sender_to_connect() -> None:
    signal = Signal()
    sender = Sender()

    @receiver(signal, sender=sender)
    def handler(**kwargs: Any) -> str:
        return "handled"

    assert signal.send(sender) == [(handler, "handled")]
    assert signal.send(Sender()) == []
    assert signal.disconnect(handler, sender=sender) is True


def test_the_decorator_passes_the_dispatch_uid_to_connect() -> None:
    signal = Signal()

    @receiver(signal, dispatch_uid="uid")
    def first(**kwargs: Any) -> str:
        return "first"

    @receiver(signal, dispatch_uid="uid")
    def second(**kwargs: Any) -> str:
        return "second"

    assert signal.send(None) == [(first, "first")]
    assert second(sender=None) == "second"
    assert signal.disconnect(dispatch_uid="uid") is True
    assert signal.send(None) == []


def test_the_decorator_passes_all_connect_arguments_to_every_signal() -> None:
    first, second = Signal(), Signal()
    sender = Sender()

    @receiver([first, second], sender=sender, dispatch_uid="uid")
    def handler(**kwargs: Any) -> str:
        return "handled"

    for signal in (first, second):
        assert signal.send(sender) == [(handler, "handled")]
        assert signal.send(None) == []
        assert signal.disconnect(dispatch_uid="uid", sender=sender) is True


def test_the_decorator_connects_weakly_by_default() -> None:
    signal = Signal()

    def define() -> weakref.ref[Any]:
        @receiver(signal)
        def handler(**kwargs: Any) -> str:
            return "handled"

        assert signal.has_listeners() is True
        return weakref.ref(handler)

    held = define()
    collect()
    assert held() is None
    assert signal.send(None) == []


def test_the_decorator_passes_weak_false_to_connect() -> None:
    signal = Signal()

    def define() -> None:
        @receiver(signal, weak=False)
        def handler(**kwargs: Any) -> str:
            return "kept"

    define()
    collect()
    assert [response for _, response in signal.send(None)] == ["kept"]


def test_the_decorator_rejects_a_function_without_kwargs() -> None:
    signal = Signal()

    def handler(sender: object) -> None:
        pass

    with pytest.raises(ValueError, match=r"must accept keyword arguments \(\*\*kwargs\)"):
        receiver(signal)(handler)
    assert signal.receivers == []


def test_the_decorator_with_an_empty_list_connects_nothing() -> None:
    def handler(**kwargs: Any) -> str:
        return "handled"

    assert receiver([])(handler) is handler
