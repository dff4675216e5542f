"""Signal(use_caching=True): the per-sender cache, its invalidation, and muting."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

import pytest

from conftest import collect
from parasignal import Signal, dispatcher


class Sender:
    """A sender that can be weakly referenced."""


class UnhashableSender:
    """Can be weakly referenced but not hashed."""

    __hash__ = None  # type: ignore[assignment]


def make_receiver(name: str, calls: list[str] | None = None) -> Callable[..., str]:
    def receiver(**kwargs: Any) -> str:
        if calls is not None:
            calls.append(name)
        return name

    return receiver


def responses(signal: Signal, sender: object = None) -> list[Any]:
    return [response for _, response in signal.send(sender)]


def test_the_cache_is_a_weak_key_dictionary_only_with_caching() -> None:
    assert isinstance(Signal(use_caching=True).sender_receivers_cache, weakref.WeakKeyDictionary)
    assert type(Signal().sender_receivers_cache) is dict
    assert Signal(use_caching=True).use_caching is True
    assert Signal().use_caching is False


def test_send_fills_the_cache_for_the_sender() -> None:
    signal = Signal(use_caching=True)
    receiver = make_receiver("receiver")
    signal.connect(receiver)
    sender = Sender()
    assert sender not in signal.sender_receivers_cache
    assert responses(signal, sender) == ["receiver"]
    assert sender in signal.sender_receivers_cache
    assert responses(signal, sender) == ["receiver"]


def test_a_sender_without_receivers_is_cached_as_no_receivers() -> None:
    signal = Signal(use_caching=True)
    receiver = make_receiver("receiver")
    signal.connect(receiver, sender=Sender)
    sender = Sender()
    assert signal.send(sender) == []
    assert signal.sender_receivers_cache[sender] is dispatcher.NO_RECEIVERS
    assert signal.send(sender) == []
    assert signal.send_robust(sender) == []
    assert signal.has_listeners(sender) is False
    assert responses(signal, Sender) == ["receiver"]
    assert signal.sender_receivers_cache[Sender] is not dispatcher.NO_RECEIVERS


@pytest.mark.parametrize("change", ["connect", "disconnect"])
def test_connect_and_disconnect_clear_the_cache(change: str) -> None:
    signal = Signal(use_caching=True)
    first, second = make_receiver("first"), make_receiver("second")
    signal.connect(first)
    sender, other = Sender(), Sender()
    signal.send(sender)
    signal.send(other)
    assert len(signal.sender_receivers_cache) == 2
    if change == "connect":
        signal.connect(second)
    else:
        signal.disconnect(first)
    assert len(signal.sender_receivers_cache) == 0


def test_a_receiver_connected_after_caching_is_called() -> None:
    signal = Signal(use_caching=True)
    first, second = make_receiver("first"), make_receiver("second")
    sender = Sender()
    signal.connect(first)
    assert responses(signal, sender) == ["first"]
    signal.connect(second)
    assert responses(signal, sender) == ["first", "second"]
    signal.connect(first, sender=sender)
    assert responses(signal, sender) == ["first", "second", "first"]


def test_a_sender_cached_as_no_receivers_gets_a_receiver_connected_later() -> None:
    signal = Signal(use_caching=True)
    general, specific = make_receiver("general"), make_receiver("specific")
    sender = Sender()
    signal.connect(general, sender=Sender)
    assert signal.send(sender) == []
    signal.connect(specific, sender=sender)
    assert responses(signal, sender) == ["specific"]
    assert signal.has_listeners(sender) is True


def test_a_receiver_disconnected_after_caching_is_not_called() -> None:
    signal = Signal(use_caching=True)
    calls: list[str] = []
    first, second = make_receiver("first", calls), make_receiver("second", calls)
    sender = Sender()
    signal.connect(first)
    signal.connect(second)
    signal.send(sender)
    signal.disconnect(first)
    calls.clear()
    assert responses(signal, sender) == ["second"]
    assert calls == ["second"]


def test_the_death_of_a_receiver_clears_the_cache() -> None:
    signal = Signal(use_caching=True)
    doomed, survivor = make_receiver("doomed"), make_receiver("survivor")
    signal.connect(doomed)
    signal.connect(survivor)
    sender, other = Sender(), Sender()
    signal.send(sender)
    signal.send(other)
    del doomed
    collect()
    assert responses(signal, sender) == ["survivor"]
    assert other not in signal.sender_receivers_cache
    assert responses(signal, other) == ["survivor"]
    assert len(signal.receivers) == 1


def test_the_death_of_a_sender_removes_its_cache_entry_and_receivers() -> None:
    signal = Signal(use_caching=True)
    receiver = make_receiver("receiver")
    sender = Sender()
    signal.connect(receiver, sender=sender)
    signal.send(sender)
    held = weakref.ref(sender)
    del sender
    collect()
    assert held() is None
    assert len(signal.sender_receivers_cache) == 0
    assert signal.has_listeners() is False
    assert signal.receivers == []


@pytest.mark.parametrize(
    "sender",
    [None, 42, 10**20, "text", object(), UnhashableSender()],
    ids=["None", "small int", "big int", "str", "object()", "unhashable"],
)
def test_senders_that_cannot_be_cached_still_work(sender: object) -> None:
    # Django raises TypeError here; parasignal just does not cache them.
    signal = Signal(use_caching=True)
    general, specific = make_receiver("general"), make_receiver("specific")
    signal.connect(general)
    assert responses(signal, sender) == ["general"]
    assert [r for _, r in signal.send_robust(sender)] == ["general"]
    assert signal.has_listeners(sender) is True
    signal.connect(specific, sender=sender)
    assert responses(signal, sender) == ["general", "specific"]
    signal.disconnect(general)
    assert responses(signal, sender) == ["specific"]
    signal.disconnect(specific, sender=sender)
    assert signal.send(sender) == []
    assert signal.has_listeners(sender) is False


def test_caching_gives_the_same_answers_as_no_caching() -> None:
    cached, uncached = Signal(use_caching=True), Signal()
    sender_a, sender_b = Sender(), Sender()
    receivers = [make_receiver(f"r{i}") for i in range(6)]
    for_sender: list[object] = [None, sender_a, None, Sender, sender_b, sender_a]
    for signal in (cached, uncached):
        for receiver, sender in zip(receivers, for_sender, strict=True):
            signal.connect(receiver, sender=sender)
    probes: list[object] = [None, sender_a, sender_b, Sender, Sender(), 7, "x"]
    for _ in range(2):
        for probe in probes:
            assert cached.send(probe) == uncached.send(probe)
            assert cached.has_listeners(probe) == uncached.has_listeners(probe)
    assert responses(cached, sender_a) == ["r0", "r1", "r2", "r5"]


def test_the_cache_does_not_keep_a_weak_receiver_alive() -> None:
    signal = Signal(use_caching=True)
    doomed = make_receiver("doomed")
    held = weakref.ref(doomed)
    signal.connect(doomed)
    sender = Sender()
    signal.send(sender)
    del doomed
    collect()
    assert held() is None
    assert signal.send(sender) == []


# -- muting, as factory_boy's mute_signals does ------------------------------------------


def test_assigning_an_empty_list_to_receivers_mutes_the_signal() -> None:
    signal = Signal(use_caching=True)
    calls: list[str] = []
    receiver = make_receiver("receiver", calls)
    signal.connect(receiver)
    sender = Sender()
    signal.send(sender)  # the cache now holds the receiver for this sender
    saved = signal.receivers
    signal.receivers = []
    assert signal.send(sender) == []
    assert signal.send_robust(sender) == []
    assert signal.send(None) == []
    signal.receivers = saved
    calls.clear()
    assert responses(signal, sender) == ["receiver"]
    assert calls == ["receiver"]


@pytest.mark.parametrize("use_caching", [False, True])
def test_factory_boys_mute_signals_pattern_mutes_and_restores(use_caching: bool) -> None:
    signal = Signal(use_caching=use_caching)
    calls: list[str] = []
    first, second = make_receiver("first", calls), make_receiver("second", calls)
    sender = Sender()
    signal.connect(first)
    signal.connect(second, sender=sender)
    assert responses(signal, sender) == ["first", "second"]

    with signal.lock:
        saved = signal.receivers
        signal.receivers = []
        signal.sender_receivers_cache.clear()
    calls.clear()
    assert signal.send(sender) == []
    assert signal.send_robust(sender) == []
    assert signal.has_listeners(sender) is False
    assert signal.has_listeners() is False
    assert calls == []

    with signal.lock:
        signal.receivers = saved
        signal.sender_receivers_cache.clear()
    assert responses(signal, sender) == ["first", "second"]
    assert signal.has_listeners(sender) is True
    assert calls == ["first", "second"]
    # The restored list is still indexed correctly: no duplicate on reconnect.
    signal.connect(first)
    signal.connect(second, sender=sender)
    assert responses(signal, sender) == ["first", "second"]


def test_a_receiver_connected_while_muted_is_dropped_on_restore() -> None:
    signal = Signal(use_caching=True)
    first, intruder = make_receiver("first"), make_receiver("intruder")
    sender = Sender()
    signal.connect(first)
    with signal.lock:
        saved = signal.receivers
        signal.receivers = []
        signal.sender_receivers_cache.clear()
    signal.connect(intruder)
    assert responses(signal, sender) == ["intruder"]
    with signal.lock:
        signal.receivers = saved
        signal.sender_receivers_cache.clear()
    assert responses(signal, sender) == ["first"]
    signal.connect(intruder)
    assert responses(signal, sender) == ["first", "intruder"]
