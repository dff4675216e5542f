"""Django's public attributes: receivers, lock, use_caching, sender_receivers_cache."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import Any

import pytest

import parasignal
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


def debug_toolbar_receivers(signal: Signal) -> list[Any]:
    """Read receivers the way django-debug-toolbar's signals panel does."""
    found = []
    for entry in signal.receivers:
        receiver = entry[1]
        if isinstance(receiver, weakref.ReferenceType):
            receiver = receiver()
        if receiver is not None:
            found.append(receiver)
    return found


# -- module-level names --------------------------------------------------------------


def test_the_package_exports_the_dispatcher_signal_and_receiver() -> None:
    assert parasignal.Signal is dispatcher.Signal
    assert parasignal.receiver is dispatcher.receiver


def test_make_id_identifies_bound_methods_by_instance_and_function() -> None:
    listener = Listener()
    function = make_receiver("function")
    assert dispatcher._make_id(listener.on_signal) == (
        id(listener),
        id(Listener.on_signal),
    )
    assert dispatcher._make_id(listener.on_signal) == dispatcher._make_id(listener.on_signal)
    assert dispatcher._make_id(function) == id(function)
    assert id(None) == dispatcher.NONE_ID


def test_no_receivers_is_a_unique_marker() -> None:
    assert dispatcher.NO_RECEIVERS is not None
    assert dispatcher.NO_RECEIVERS is not dispatcher.NONE_ID
    assert dispatcher.NO_RECEIVERS != []


# -- receivers ---------------------------------------------------------------------------


def test_a_new_signal_has_an_empty_receivers_list() -> None:
    signal = Signal()
    assert signal.receivers == []
    assert isinstance(signal.receivers, list)


def test_receivers_are_django_shaped_four_tuples_in_connection_order() -> None:
    signal = Signal()
    weak, strong = make_receiver("weak"), make_receiver("strong")
    listener = Listener()
    sender = Sender()
    signal.connect(weak)
    signal.connect(strong, sender=sender, weak=False)
    signal.connect(listener.on_signal, dispatch_uid="uid")

    first, second, third = signal.receivers
    assert all(len(entry) == 4 for entry in signal.receivers)

    assert first[0] == (id(weak), dispatcher.NONE_ID)
    assert isinstance(first[1], weakref.ReferenceType)
    assert first[1]() is weak
    assert first[2] is None
    assert first[3] is False

    assert second[0] == (id(strong), id(sender))
    assert second[1] is strong
    assert isinstance(second[2], weakref.ReferenceType)
    assert second[2]() is sender
    assert second[3] is False

    assert third[0] == ("uid", dispatcher.NONE_ID)
    assert isinstance(third[1], weakref.WeakMethod)
    assert third[1]() == listener.on_signal


def test_django_debug_toolbar_can_read_the_receivers() -> None:
    signal = Signal()
    weak, strong = make_receiver("weak"), make_receiver("strong")
    listener = Listener()
    signal.connect(weak)
    signal.connect(strong, weak=False)
    signal.connect(listener.on_signal)
    assert debug_toolbar_receivers(signal) == [weak, strong, listener.on_signal]


def test_unpacking_the_receiver_key_and_the_sender_key_works_as_in_django() -> None:
    signal = Signal()
    first = make_receiver("first")
    sender = Sender()
    signal.connect(first, sender=sender)
    keys = [(receiver_key, sender_key) for (receiver_key, sender_key), *_ in signal.receivers]
    assert keys == [(dispatcher._make_id(first), dispatcher._make_id(sender))]


def test_assigning_a_new_list_to_receivers_replaces_the_receivers() -> None:
    signal, other = Signal(), Signal()
    first, second = make_receiver("first"), make_receiver("second")
    signal.connect(first)
    other.connect(second)
    assert responses(signal) == ["first"]
    signal.receivers = list(other.receivers)
    assert responses(signal) == ["second"]
    assert signal.has_listeners() is True


def test_a_filtered_list_assigned_from_outside_is_indexed_again() -> None:
    signal = Signal()
    receivers = [make_receiver(f"r{i}") for i in range(4)]
    for receiver in receivers:
        signal.connect(receiver)
    removed_key = (dispatcher._make_id(receivers[1]), dispatcher.NONE_ID)
    signal.receivers = [entry for entry in signal.receivers if entry[0] != removed_key]
    assert responses(signal) == ["r0", "r2", "r3"]
    signal.connect(receivers[2])
    assert responses(signal) == ["r0", "r2", "r3"]
    signal.connect(receivers[1])
    assert responses(signal) == ["r0", "r2", "r3", "r1"]
    assert signal.disconnect(receivers[1]) is True
    assert signal.disconnect(receivers[1]) is False


def test_changing_the_receivers_list_in_place_is_noticed_when_its_length_changes() -> None:
    signal = Signal()
    first, second, third = make_receiver("first"), make_receiver("second"), make_receiver("third")
    signal.connect(first)
    signal.connect(second)
    assert responses(signal) == ["first", "second"]
    del signal.receivers[0]
    assert responses(signal) == ["second"]
    signal.connect(first)
    signal.connect(second)
    assert responses(signal) == ["second", "first"]
    signal.receivers.clear()
    assert signal.send(None) == []
    assert signal.has_listeners() is False
    signal.connect(third)
    assert responses(signal) == ["third"]


def test_restoring_a_saved_receivers_list_unmutes_the_signal() -> None:
    signal = Signal()
    first = make_receiver("first")
    signal.connect(first)
    saved = signal.receivers
    signal.receivers = []
    assert signal.send(None) == []
    assert signal.has_listeners() is False
    signal.receivers = saved
    assert responses(signal) == ["first"]
    signal.connect(first)
    assert len(signal.receivers) == 1


# -- lock ----------------------------------------------------------------------------------


def test_the_lock_is_a_threading_lock_that_is_free_between_calls() -> None:
    signal = Signal()
    assert isinstance(signal.lock, type(threading.Lock()))
    first = make_receiver("first")
    signal.connect(first)
    signal.send(None)
    signal.disconnect(first)
    assert signal.lock.acquire(blocking=False) is True
    signal.lock.release()


def test_each_signal_has_its_own_lock() -> None:
    assert Signal().lock is not Signal().lock


def test_holding_the_lock_from_outside_does_not_block_a_send_with_no_receivers() -> None:
    signal = Signal()
    with signal.lock:
        assert signal.send(None) == []
        assert signal.send_robust(None) == []


def test_an_assigned_lock_is_the_one_used() -> None:
    signal = Signal()
    first = make_receiver("first")
    signal.connect(first)
    assert responses(signal) == ["first"]
    signal.lock = threading.Lock()
    second = make_receiver("second")
    signal.connect(second)
    assert responses(signal) == ["first", "second"]
    assert signal.disconnect(first) is True
    assert responses(signal) == ["second"]


# -- use_caching and sender_receivers_cache ------------------------------------------------------


@pytest.mark.parametrize("use_caching", [False, True])
def test_use_caching_is_stored_as_given(use_caching: bool) -> None:
    assert Signal(use_caching=use_caching).use_caching is use_caching
    assert Signal(use_caching).use_caching is use_caching


def test_sender_receivers_cache_is_an_empty_dict_without_caching() -> None:
    signal = Signal()
    receiver = make_receiver("receiver")
    signal.connect(receiver)
    signal.send(Sender())
    assert signal.sender_receivers_cache == {}
    assert type(signal.sender_receivers_cache) is dict


def test_sender_receivers_cache_is_a_weak_key_dictionary_with_caching() -> None:
    signal = Signal(use_caching=True)
    assert isinstance(signal.sender_receivers_cache, weakref.WeakKeyDictionary)
    assert len(signal.sender_receivers_cache) == 0


def test_an_assigned_cache_is_the_one_used() -> None:
    signal = Signal(use_caching=True)
    receiver = make_receiver("receiver")
    signal.connect(receiver)
    sender = Sender()
    signal.send(sender)
    old_cache = signal.sender_receivers_cache
    new_cache: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
    signal.sender_receivers_cache = new_cache
    assert responses(signal, sender) == ["receiver"]
    assert sender in new_cache
    other = Sender()
    signal.send(other)
    assert other not in old_cache
    assert other in new_cache
