"""Signal.connect: identity, dispatch_uid, ordering, validation and rejected connects."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import pytest

from parasignal import Signal, dispatcher


class Sender:
    """A sender that can be weakly referenced."""


class Listener:
    """Holds bound-method receivers."""

    def __init__(self) -> None:
        self.calls = 0

    def on_signal(self, **kwargs: Any) -> str:
        self.calls += 1
        return "on_signal"

    def other(self, **kwargs: Any) -> str:
        return "other"


class CallableListener:
    def __call__(self, **kwargs: Any) -> str:
        return "called"


class SlottedCallable:
    """A callable instance that cannot be weakly referenced."""

    __slots__ = ()

    def __call__(self, **kwargs: Any) -> str:
        return "slotted"


class SlottedListener:
    """Its bound methods cannot be weakly referenced: the instance cannot."""

    __slots__ = ()

    def on_signal(self, **kwargs: Any) -> str:
        return "slotted method"


def make_receiver(name: str) -> Callable[..., str]:
    def receiver(**kwargs: Any) -> str:
        return name

    receiver.__name__ = name
    return receiver


def responses(signal: Signal, sender: object = None) -> list[Any]:
    return [response for _, response in signal.send(sender)]


# -- identity ---------------------------------------------------------------------


def test_connecting_the_same_function_twice_keeps_one_receiver() -> None:
    signal = Signal()
    first = make_receiver("first")
    signal.connect(first)
    signal.connect(first)
    assert len(signal.receivers) == 1
    assert signal.send(None) == [(first, "first")]


def test_connecting_the_same_bound_method_twice_keeps_one_receiver() -> None:
    signal = Signal()
    listener = Listener()
    method_a, method_b = listener.on_signal, listener.on_signal
    assert method_a is not method_b  # two distinct bound-method objects
    signal.connect(method_a)
    signal.connect(method_b)
    assert len(signal.receivers) == 1
    signal.send(None)
    assert listener.calls == 1


def test_bound_methods_of_two_instances_are_two_receivers() -> None:
    signal = Signal()
    one, two = Listener(), Listener()
    signal.connect(one.on_signal)
    signal.connect(two.on_signal)
    signal.send(None)
    assert (one.calls, two.calls) == (1, 1)


def test_two_methods_of_one_instance_are_two_receivers() -> None:
    signal = Signal()
    listener = Listener()
    signal.connect(listener.on_signal)
    signal.connect(listener.other)
    assert responses(signal) == ["on_signal", "other"]


def test_the_same_function_connected_for_two_senders_is_two_receivers() -> None:
    signal = Signal()
    first = make_receiver("first")
    sender_a, sender_b = Sender(), Sender()
    signal.connect(first, sender=sender_a)
    signal.connect(first, sender=sender_b)
    assert len(signal.receivers) == 2
    assert responses(signal, sender_a) == ["first"]
    assert responses(signal, sender_b) == ["first"]


def test_the_same_function_for_every_sender_and_for_one_sender_is_two_receivers() -> None:
    signal = Signal()
    first = make_receiver("first")
    sender = Sender()
    signal.connect(first)
    signal.connect(first, sender=sender)
    assert responses(signal, sender) == ["first", "first"]
    assert responses(signal, Sender()) == ["first"]


# -- dispatch_uid -----------------------------------------------------------------


def test_a_dispatch_uid_identifies_the_receiver_instead_of_its_identity() -> None:
    signal = Signal()
    first, second = make_receiver("first"), make_receiver("second")
    signal.connect(first, dispatch_uid="uid")
    signal.connect(second, dispatch_uid="uid")
    assert responses(signal) == ["first"]


def test_a_dispatch_uid_and_the_receiver_identity_are_distinct_keys() -> None:
    signal = Signal()
    first = make_receiver("first")
    signal.connect(first)
    signal.connect(first, dispatch_uid="uid")
    assert responses(signal) == ["first", "first"]


def test_the_same_dispatch_uid_for_two_senders_is_two_receivers() -> None:
    signal = Signal()
    first, second = make_receiver("first"), make_receiver("second")
    sender_a, sender_b = Sender(), Sender()
    signal.connect(first, sender=sender_a, dispatch_uid="uid")
    signal.connect(second, sender=sender_b, dispatch_uid="uid")
    assert responses(signal, sender_a) == ["first"]
    assert responses(signal, sender_b) == ["second"]


@pytest.mark.parametrize("dispatch_uid", ["", 0, None, False, ()])
def test_a_falsy_dispatch_uid_is_ignored_as_in_django(dispatch_uid: object) -> None:
    signal = Signal()
    first, second = make_receiver("first"), make_receiver("second")
    signal.connect(first, dispatch_uid=dispatch_uid)
    signal.connect(second, dispatch_uid=dispatch_uid)
    signal.connect(first, dispatch_uid=dispatch_uid)
    assert responses(signal) == ["first", "second"]
    assert signal.receivers[0][0] == (dispatcher._make_id(first), dispatcher.NONE_ID)
    assert signal.disconnect(first) is True
    assert responses(signal) == ["second"]


def test_a_non_string_dispatch_uid_works() -> None:
    signal = Signal()
    first, second = make_receiver("first"), make_receiver("second")
    signal.connect(first, dispatch_uid=("app", 1))
    signal.connect(second, dispatch_uid=("app", 1))
    signal.connect(second, dispatch_uid=("app", 2))
    assert responses(signal) == ["first", "second"]


def test_an_unhashable_dispatch_uid_raises_type_error() -> None:
    signal = Signal()
    with pytest.raises(TypeError, match="dispatch_uid must be hashable"):
        signal.connect(make_receiver("first"), dispatch_uid=["not", "hashable"])
    assert signal.receivers == []


# -- order ------------------------------------------------------------------------


def test_receivers_are_kept_in_connection_order() -> None:
    signal = Signal()
    names = [f"receiver_{i}" for i in range(10)]
    receivers = [make_receiver(name) for name in names]
    for receiver in receivers:
        signal.connect(receiver)
    assert responses(signal) == names


def test_the_first_registration_wins_and_keeps_its_place() -> None:
    signal = Signal()
    first, second, third = make_receiver("first"), make_receiver("second"), make_receiver("third")
    signal.connect(first)
    signal.connect(second)
    signal.connect(third)
    signal.connect(first)
    assert responses(signal) == ["first", "second", "third"]


def test_the_first_registration_of_a_dispatch_uid_wins_and_keeps_its_place() -> None:
    signal = Signal()
    first, second, third = make_receiver("first"), make_receiver("second"), make_receiver("third")
    signal.connect(first, dispatch_uid="uid")
    signal.connect(second)
    signal.connect(third, dispatch_uid="uid")
    signal.connect(first, dispatch_uid="uid")
    assert responses(signal) == ["first", "second"]


def test_a_strong_first_registration_is_not_replaced_by_a_weak_one() -> None:
    signal = Signal()
    first = make_receiver("first")
    signal.connect(first, weak=False)
    signal.connect(first)
    assert len(signal.receivers) == 1
    assert signal.receivers[0][1] is first


def test_connecting_one_of_twenty_thousand_receivers_again_does_not_duplicate_it() -> None:
    signal = Signal()
    receivers = [make_receiver(f"r{i}") for i in range(20_000)]
    for receiver in receivers:
        signal.connect(receiver)
    signal.connect(receivers[12_345])
    signal.connect(receivers[0])
    signal.connect(receivers[-1])
    assert len(signal.receivers) == 20_000
    assert [response for _, response in signal.send(None)] == [f"r{i}" for i in range(20_000)]


def test_reusing_one_of_twenty_thousand_dispatch_uids_does_not_duplicate_it() -> None:
    signal = Signal()
    receivers = [make_receiver(f"r{i}") for i in range(20_000)]
    for i, receiver in enumerate(receivers):
        signal.connect(receiver, dispatch_uid=f"uid-{i}")
    intruder = make_receiver("intruder")
    signal.connect(intruder, dispatch_uid="uid-777")
    assert len(signal.receivers) == 20_000
    assert signal.send(None)[777] == (receivers[777], "r777")


def test_connect_looks_up_make_id_at_call_time(monkeypatch: pytest.MonkeyPatch) -> None:
    signal = Signal()
    first, second = make_receiver("first"), make_receiver("second")
    original = dispatcher._make_id

    def same_key_for_both(target: object) -> object:
        if target is first or target is second:
            return "one receiver"
        return original(target)

    monkeypatch.setattr(dispatcher, "_make_id", same_key_for_both)
    signal.connect(first)
    signal.connect(second)
    assert responses(signal) == ["first"]


# -- validation -------------------------------------------------------------------


@pytest.mark.parametrize("weak", [True, False])
@pytest.mark.parametrize("not_callable", [1, "receiver", None, object()])
def test_connecting_something_not_callable_raises_type_error(not_callable: Any, weak: bool) -> None:
    signal = Signal()
    with pytest.raises(TypeError) as excinfo:
        signal.connect(not_callable, weak=weak)
    assert str(excinfo.value) == "Signal receivers must be callable."
    assert signal.receivers == []


def no_kwargs_function(sender: object) -> None:
    pass


class NoKwargsListener:
    def on_signal(self, sender: object) -> None:
        pass

    def __call__(self, sender: object, signal: object) -> None:
        pass


def _no_kwargs_wrapped() -> Callable[..., Any]:
    @functools.wraps(no_kwargs_function)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        no_kwargs_function(*args, **kwargs)

    return wrapper


NO_KWARGS_RECEIVERS: dict[str, Callable[[], Any]] = {
    "function": lambda: no_kwargs_function,
    "lambda": lambda: lambda _sender: None,
    "bound method": lambda: NoKwargsListener().on_signal,
    "callable instance": NoKwargsListener,
    "partial": lambda: functools.partial(no_kwargs_function),
    "wrapper of a function without kwargs": _no_kwargs_wrapped,
}


@pytest.mark.parametrize("weak", [True, False])
@pytest.mark.parametrize("make", NO_KWARGS_RECEIVERS.values(), ids=NO_KWARGS_RECEIVERS.keys())
def test_connecting_a_receiver_without_kwargs_raises_value_error(
    make: Callable[[], Any], weak: bool
) -> None:
    signal = Signal()
    receiver = make()
    with pytest.raises(ValueError) as excinfo:
        signal.connect(receiver, weak=weak)
    assert str(excinfo.value) == "Signal receivers must accept keyword arguments (**kwargs)."
    assert signal.receivers == []


def test_a_wrapper_without_kwargs_around_a_function_with_kwargs_is_accepted() -> None:
    def inner(sender: object, **kwargs: Any) -> str:
        return "inner"

    @functools.wraps(inner)
    def wrapper(sender: object, signal: object) -> str:
        return inner(sender)

    sig = Signal()
    sig.connect(wrapper)
    assert sig.send(None) == [(wrapper, "inner")]


def test_a_bound_method_wrapping_a_function_without_kwargs_is_rejected() -> None:
    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return func(*args, **kwargs)

        return wrapper

    class Decorated:
        @decorate
        def on_signal(self, sender: object) -> None:
            pass

    signal = Signal()
    with pytest.raises(ValueError, match=r"must accept keyword arguments \(\*\*kwargs\)"):
        signal.connect(Decorated().on_signal, weak=False)
    assert signal.receivers == []


def test_an_explicit_signature_without_kwargs_is_rejected() -> None:
    def receiver(**kwargs: Any) -> None:
        pass

    receiver.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter("sender", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    )
    signal = Signal()
    with pytest.raises(ValueError, match=r"must accept keyword arguments \(\*\*kwargs\)"):
        signal.connect(receiver)
    assert signal.receivers == []


def test_receivers_taking_keyword_only_arguments_and_kwargs_are_accepted() -> None:
    def receiver(*, sender: object, signal: object, **kwargs: Any) -> object:
        return sender

    sig = Signal()
    sig.connect(receiver)
    assert sig.send("the sender") == [(receiver, "the sender")]


def test_a_callable_instance_and_a_partial_with_kwargs_are_accepted() -> None:
    def base(prefix: str, **kwargs: Any) -> str:
        return prefix

    signal = Signal()
    instance = CallableListener()
    partial = functools.partial(base, "partial")
    signal.connect(instance)
    signal.connect(partial, weak=False)
    assert signal.send(None) == [(instance, "called"), (partial, "partial")]


# -- weak references to things that cannot be weakly referenced ----------------------


@pytest.mark.parametrize(
    "make",
    [SlottedCallable, lambda: SlottedListener().on_signal],
    ids=["slotted callable instance", "bound method of a slotted instance"],
)
def test_weakly_connecting_a_receiver_that_cannot_be_weakly_referenced_asks_for_weak_false(
    make: Callable[[], Any],
) -> None:
    signal = Signal()
    with pytest.raises(TypeError, match="weak=False"):
        signal.connect(make())
    assert signal.receivers == []


@pytest.mark.parametrize(
    "make",
    [SlottedCallable, lambda: SlottedListener().on_signal],
    ids=["slotted callable instance", "bound method of a slotted instance"],
)
def test_a_receiver_that_cannot_be_weakly_referenced_connects_with_weak_false(
    make: Callable[[], Any],
) -> None:
    signal = Signal()
    receiver = make()
    signal.connect(receiver, weak=False)
    assert [response for _, response in signal.send(None)] == [receiver()]


# -- rejected connects leave the signal unchanged -------------------------------------


REJECTED: dict[str, tuple[Any, dict[str, Any], type[Exception]]] = {
    "not callable": (42, {}, TypeError),
    "no kwargs": (no_kwargs_function, {}, ValueError),
    "unhashable dispatch_uid": (
        make_receiver("rejected"),
        {"dispatch_uid": ["unhashable"]},
        TypeError,
    ),
    "cannot be weakly referenced": (SlottedCallable(), {}, TypeError),
}


@pytest.mark.parametrize("use_caching", [False, True])
@pytest.mark.parametrize(("receiver", "kwargs", "error"), REJECTED.values(), ids=REJECTED.keys())
def test_a_rejected_connect_leaves_the_signal_unchanged(
    receiver: Any, kwargs: dict[str, Any], error: type[Exception], use_caching: bool
) -> None:
    signal = Signal(use_caching=use_caching)
    kept = make_receiver("kept")
    sender = Sender()
    signal.connect(kept)
    assert signal.send(sender) == [(kept, "kept")]
    receivers_list = signal.receivers
    before = list(signal.receivers)
    cache_before = dict(signal.sender_receivers_cache)

    with pytest.raises(error):
        signal.connect(receiver, sender=sender, **kwargs)

    assert signal.receivers is receivers_list
    assert signal.receivers == before
    assert dict(signal.sender_receivers_cache) == cache_before
    assert signal.send(sender) == [(kept, "kept")]
    # The signal still works normally afterwards.
    extra = make_receiver("extra")
    signal.connect(extra, sender=sender)
    assert responses(signal, sender) == ["kept", "extra"]
