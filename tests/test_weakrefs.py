"""Weak references: receivers and senders that die leave the signal on their own."""

from __future__ import annotations

import functools
import weakref
from collections.abc import Callable
from typing import Any

import pytest

from conftest import collect
from parasignal import Signal, dispatcher


class Sender:
    """A sender that can be weakly referenced."""


class Listener:
    def on_signal(self, **kwargs: Any) -> str:
        return "on_signal"


class CallableListener:
    def __call__(self, **kwargs: Any) -> str:
        return "called"


def make_receiver(name: str) -> Callable[..., str]:
    def receiver(**kwargs: Any) -> str:
        return name

    return receiver


def responses(signal: Signal, sender: object = None) -> list[Any]:
    return [response for _, response in signal.send(sender)]


# -- receivers are weak by default ---------------------------------------------------


def test_a_weakly_connected_function_leaves_once_it_is_garbage_collected() -> None:
    signal = Signal()
    doomed = make_receiver("doomed")
    signal.connect(doomed)
    assert responses(signal) == ["doomed"]
    del doomed
    collect()
    assert signal.send(None) == []
    assert signal.receivers == []


def test_has_listeners_cleans_up_a_dead_receiver() -> None:
    signal = Signal()
    doomed = make_receiver("doomed")
    signal.connect(doomed)
    del doomed
    collect()
    assert signal.has_listeners() is False
    assert signal.receivers == []


def test_a_dying_receiver_only_raises_a_flag_until_the_next_lookup() -> None:
    signal = Signal()
    doomed = make_receiver("doomed")
    signal.connect(doomed)
    del doomed
    collect()
    assert len(signal.receivers) == 1  # not removed by the weakref callback itself
    assert signal.send_robust(None) == []
    assert signal.receivers == []


def test_a_receiver_dying_while_the_lock_is_held_does_not_deadlock() -> None:
    signal = Signal()
    doomed, survivor = make_receiver("doomed"), make_receiver("survivor")
    signal.connect(doomed)
    signal.connect(survivor)
    with signal.lock:
        del doomed
        collect()
    assert responses(signal) == ["survivor"]
    assert len(signal.receivers) == 1


def test_connect_cleans_up_dead_receivers() -> None:
    signal = Signal()
    doomed, newcomer = make_receiver("doomed"), make_receiver("newcomer")
    signal.connect(doomed)
    del doomed
    collect()
    signal.connect(newcomer)
    assert [entry[0] for entry in signal.receivers] == [
        (dispatcher._make_id(newcomer), dispatcher.NONE_ID)
    ]


def test_disconnect_cleans_up_dead_receivers() -> None:
    signal = Signal()
    doomed, other = make_receiver("doomed"), make_receiver("other")
    signal.connect(doomed)
    del doomed
    collect()
    assert signal.disconnect(other) is False
    assert signal.receivers == []


def test_a_weakly_connected_bound_method_leaves_with_its_instance() -> None:
    signal = Signal()
    listener = Listener()
    signal.connect(listener.on_signal)
    assert responses(signal) == ["on_signal"]
    del listener
    collect()
    assert signal.send(None) == []
    assert signal.receivers == []


def test_a_weakly_connected_bound_method_survives_while_its_instance_lives() -> None:
    signal = Signal()
    listener = Listener()
    signal.connect(listener.on_signal)  # the bound method object itself dies at once
    collect()
    assert signal.send(None) == [(listener.on_signal, "on_signal")]


def test_only_the_dead_receiver_leaves_and_the_others_keep_their_order() -> None:
    signal = Signal()
    first, doomed, last = make_receiver("first"), make_receiver("doomed"), make_receiver("last")
    for receiver in (first, doomed, last):
        signal.connect(receiver)
    del doomed
    collect()
    assert responses(signal) == ["first", "last"]
    assert len(signal.receivers) == 2


def test_a_dead_receiver_can_be_replaced_by_a_new_one_with_the_same_dispatch_uid() -> None:
    signal = Signal()
    doomed, newcomer = make_receiver("doomed"), make_receiver("newcomer")
    signal.connect(doomed, dispatch_uid="uid")
    del doomed
    collect()
    signal.connect(newcomer, dispatch_uid="uid")
    assert responses(signal) == ["newcomer"]


# -- strong receivers ----------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda: make_receiver("function"),
        CallableListener,
        lambda: Listener().on_signal,
        lambda: functools.partial(make_receiver("partial")),
    ],
    ids=["function", "callable instance", "bound method", "partial"],
)
def test_a_receiver_connected_with_weak_false_stays_alive(make: Callable[[], Any]) -> None:
    signal = Signal()
    receiver = make()
    expected = receiver()
    held = weakref.ref(receiver.__self__ if hasattr(receiver, "__self__") else receiver)
    signal.connect(receiver, weak=False)
    del receiver
    collect()
    assert held() is not None
    assert responses(signal) == [expected]


def test_disconnecting_a_strong_receiver_releases_it() -> None:
    signal = Signal()
    receiver = CallableListener()
    held = weakref.ref(receiver)
    signal.connect(receiver, weak=False)
    assert responses(signal) == ["called"]
    assert signal.disconnect(receiver) is True
    del receiver
    collect()
    assert held() is None


def test_disconnecting_a_strong_receiver_that_was_never_sent_to_releases_it() -> None:
    signal = Signal()
    receiver = CallableListener()
    held = weakref.ref(receiver)
    signal.connect(receiver, weak=False)
    assert signal.disconnect(receiver) is True
    del receiver
    collect()
    assert held() is None


# -- connecting never keeps a weak receiver alive -----------------------------------------


def _wrapped() -> Callable[..., Any]:
    def inner(**kwargs: Any) -> str:
        return "inner"

    @functools.wraps(inner)
    def wrapper(**kwargs: Any) -> str:
        return inner(**kwargs)

    return wrapper


def _partial() -> Callable[..., Any]:
    return functools.partial(make_receiver("partial"))


WEAK_RECEIVERS: dict[str, Callable[[], Any]] = {
    "function": lambda: make_receiver("function"),
    "lambda": lambda: lambda **_kwargs: "lambda",
    "callable instance": CallableListener,
    "partial": _partial,
    "functools.wraps wrapper": _wrapped,
}


@pytest.mark.parametrize("use_caching", [False, True])
@pytest.mark.parametrize("make", WEAK_RECEIVERS.values(), ids=WEAK_RECEIVERS.keys())
def test_connecting_and_sending_do_not_keep_a_weak_receiver_alive(
    make: Callable[[], Any], use_caching: bool
) -> None:
    signal = Signal(use_caching=use_caching)
    sender = Sender()
    receiver = make()
    held = weakref.ref(receiver)
    signal.connect(receiver)
    assert signal.send(sender) == [(receiver, receiver())]
    assert signal.has_listeners(sender) is True
    del receiver
    collect()
    assert held() is None
    assert signal.send(sender) == []


@pytest.mark.parametrize("use_caching", [False, True])
def test_connecting_and_sending_do_not_keep_a_bound_methods_instance_alive(
    use_caching: bool,
) -> None:
    signal = Signal(use_caching=use_caching)
    sender = Sender()
    listener = Listener()
    held = weakref.ref(listener)
    signal.connect(listener.on_signal)
    assert responses(signal, sender) == ["on_signal"]
    del listener
    collect()
    assert held() is None
    assert signal.send(sender) == []


def test_a_rejected_weak_receiver_is_not_kept_alive() -> None:
    def no_kwargs(sender: object) -> None:
        pass

    signal = Signal()
    held = weakref.ref(no_kwargs)
    with pytest.raises(ValueError, match="keyword arguments"):
        signal.connect(no_kwargs)
    del no_kwargs
    collect()
    assert held() is None


# -- senders ---------------------------------------------------------------------------


def test_the_signal_does_not_keep_a_sender_alive() -> None:
    signal = Signal()
    receiver = make_receiver("receiver")
    sender = Sender()
    held = weakref.ref(sender)
    signal.connect(receiver, sender=sender)
    assert responses(signal, sender) == ["receiver"]
    del sender
    collect()
    assert held() is None


def test_receivers_for_a_dead_sender_leave_the_signal() -> None:
    signal = Signal()
    receiver, general = make_receiver("receiver"), make_receiver("general")
    sender = Sender()
    signal.connect(receiver, sender=sender)
    signal.connect(general)
    del sender
    collect()
    assert signal.has_listeners() is True
    assert [entry[0] for entry in signal.receivers] == [
        (dispatcher._make_id(general), dispatcher.NONE_ID)
    ]


def test_a_strong_receiver_for_a_dead_sender_is_released() -> None:
    signal = Signal()
    receiver = CallableListener()
    held = weakref.ref(receiver)
    sender = Sender()
    signal.connect(receiver, sender=sender, weak=False)
    assert responses(signal, sender) == ["called"]
    del receiver, sender
    collect()
    assert signal.has_listeners() is False
    assert signal.receivers == []
    collect()
    assert held() is None


@pytest.mark.parametrize("use_caching", [False, True])
def test_a_new_sender_reusing_a_dead_senders_id_gets_none_of_its_receivers(
    monkeypatch: pytest.MonkeyPatch, use_caching: bool
) -> None:
    # Django ticket #35801: id() values are reused once an object is gone.
    signal = Signal(use_caching=use_caching)
    receiver = make_receiver("for the dead sender")
    sender = Sender()
    dead_key = dispatcher._make_id(sender)
    signal.connect(receiver, sender=sender, weak=False)
    assert responses(signal, sender) == ["for the dead sender"]
    del sender
    collect()

    newcomer = Sender()
    original = dispatcher._make_id

    def reuse_the_dead_id(target: object) -> object:
        return dead_key if target is newcomer else original(target)

    monkeypatch.setattr(dispatcher, "_make_id", reuse_the_dead_id)
    assert signal.send(newcomer) == []
    assert signal.send_robust(newcomer) == []
    assert signal.has_listeners(newcomer) is False
    assert signal.receivers == []


def test_a_sender_id_reused_by_the_next_object_gets_none_of_the_dead_senders_receivers() -> None:
    signal = Signal()
    receiver = make_receiver("for the dead sender")
    sender = Sender()
    signal.connect(receiver, sender=sender)
    del sender
    collect()
    # Whether or not CPython hands out the same address again, nothing leaks.
    for _ in range(100):
        newcomer = Sender()
        assert signal.send(newcomer) == []
        assert signal.has_listeners(newcomer) is False


@pytest.mark.parametrize("sender", [object(), 10**20, "a string sender", (1, 2)])
def test_a_sender_that_cannot_be_weakly_referenced_still_works(sender: object) -> None:
    signal = Signal()
    receiver = make_receiver("receiver")
    signal.connect(receiver, sender=sender)
    assert responses(signal, sender) == ["receiver"]
    assert signal.has_listeners(sender) is True
    assert signal.receivers[0][2] is None
    assert signal.disconnect(receiver, sender=sender) is True
    assert signal.send(sender) == []


def test_a_dead_receiver_with_use_caching_is_not_returned_from_the_cache() -> None:
    signal = Signal(use_caching=True)
    sender = Sender()
    doomed, survivor = make_receiver("doomed"), make_receiver("survivor")
    signal.connect(doomed)
    signal.connect(survivor)
    assert responses(signal, sender) == ["doomed", "survivor"]
    del doomed
    collect()
    assert responses(signal, sender) == ["survivor"]
    assert responses(signal, sender) == ["survivor"]
    assert len(signal.receivers) == 1
