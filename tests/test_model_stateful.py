"""A Signal driven by Hypothesis against a pure-Python model of Django 6.1's signals.

The model knows, for every connection, its lookup key (the ``dispatch_uid`` if
truthy, else the receiver's identity, together with the sender's identity),
the receiver, the sender and whether it is weak. It predicts what ``send``,
``send_robust``, ``has_listeners`` and ``disconnect`` return, which receivers
are called in which order, and which receiver objects stay alive:

* the first registration of a lookup key wins and keeps its place;
* a receiver connected for ``None`` hears every sender, one connected for a
  sender hears only that sender;
* a weakly connected receiver leaves once garbage collected;
* a sender's receivers leave once the sender is garbage collected;
* the signal keeps a receiver alive exactly as long as it is connected strongly.

Receivers and senders are referred to by labels only, so that Hypothesis never
holds a reference to them.
"""

from __future__ import annotations

import gc
import types
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from conftest import collect
from parasignal import Signal

# A receiver: (label of the object that provides it, method name or "" for the object itself).
Ident = tuple[int, str]
# A lookup key: (("uid", dispatch_uid) or ("id", Ident), sender label).
Key = tuple[tuple[str, object], str]

ANY = "none"  # the label of the sender None
TRUTHY_UIDS = ("a", "b", 1)
FALSY_UIDS = (None, "", 0)
MAX_RECEIVER_OBJECTS = 6
MAX_DROPPABLE_SENDERS = 3
DISPATCH_METHODS = ("send", "send_robust", "has_listeners")

raising = st.integers(0, 3).map(lambda n: n == 0)  # one receiver in four raises


@pytest.fixture(autouse=True)
def _unfreeze() -> Iterator[None]:
    """Give back to the garbage collector what each example froze (see SignalModel)."""
    try:
        yield
    finally:
        gc.unfreeze()


class ReceiverError(Exception):
    def __init__(self, ident: Ident) -> None:
        super().__init__(ident)
        self.ident = ident


def _respond(log: list[Ident], ident: Ident, raises: bool) -> Ident:
    log.append(ident)
    if raises:
        raise ReceiverError(ident)
    return ident


def make_function(log: list[Ident], ident: Ident, raises: bool) -> Callable[..., Ident]:
    def function_receiver(**kwargs: Any) -> Ident:
        return _respond(log, ident, raises)

    function_receiver.__dict__["ident"] = ident
    return function_receiver


class CallableReceiver:
    def __init__(self, log: list[Ident], ident: Ident, raises: bool) -> None:
        self.log = log
        self.ident = ident
        self.raises = raises

    def __call__(self, **kwargs: Any) -> Ident:
        return _respond(self.log, self.ident, self.raises)


class Holder:
    """An object whose bound methods ``m0`` and ``m1`` are two distinct receivers."""

    def __init__(self, log: list[Ident], label: int, raises: dict[str, bool]) -> None:
        self.log = log
        self.label = label
        self.raises = raises

    def m0(self, **kwargs: Any) -> Ident:
        return _respond(self.log, (self.label, "m0"), self.raises["m0"])

    def m1(self, **kwargs: Any) -> Ident:
        return _respond(self.log, (self.label, "m1"), self.raises["m1"])


class SenderObject:
    """A sender that can be weakly referenced (and so can die)."""


# Never connected for: has_listeners() from it makes the signal clean up.
_UNRELATED_SENDER = SenderObject()


def ident_of(receiver: object) -> Ident:
    """Which modelled receiver a receiver returned by the signal is."""
    if isinstance(receiver, types.MethodType):
        return (vars(receiver.__self__)["label"], receiver.__func__.__name__)
    ident: Ident = vars(receiver)["ident"]
    return ident


class RecordingSignal(Signal):
    """Records ``_log_robust_failure`` calls (by label, holding no reference)."""

    def __init__(self, use_caching: bool = False) -> None:
        super().__init__(use_caching)
        self.failures: list[tuple[Ident, Ident]] = []

    def _log_robust_failure(self, receiver: Callable[..., Any], err: BaseException) -> None:
        assert isinstance(err, ReceiverError)
        self.failures.append((ident_of(receiver), err.ident))


@dataclass(frozen=True)
class Entry:
    key: Key
    ident: Ident
    sender: str
    weak: bool


class SignalModel(RuleBasedStateMachine):
    use_caching: ClassVar[bool] = False

    def __init__(self) -> None:
        super().__init__()
        # Keep everything older than this example out of collect(): the rules
        # call it often, and Hypothesis accumulates objects as it runs.
        gc.freeze()
        self.signal = RecordingSignal(use_caching=self.use_caching)
        self.log: list[Ident] = []
        self.next_label = 0
        # Receiver objects the test holds, by label.
        self.held: dict[int, Any] = {}
        # Receiver objects the model says are alive, and a weak reference to each.
        self.alive: set[int] = set()
        self.refs: dict[int, weakref.ref[Any]] = {}
        self.provides: dict[int, tuple[Ident, ...]] = {}
        self.raises: dict[Ident, bool] = {}
        # Live senders by label; the droppable ones also have a weak reference.
        self.senders: dict[str, object] = {
            ANY: None,
            "int": 7,
            "str": "a sender",
            "plain": object(),
        }
        self.sender_refs: dict[str, weakref.ref[Any]] = {}
        # The model: connections in order.
        self.entries: list[Entry] = []

    # -- helpers ----------------------------------------------------------------

    def _label(self) -> int:
        self.next_label += 1
        return self.next_label

    def _held_idents(self) -> list[Ident]:
        return [ident for label in sorted(self.held) for ident in self.provides[label]]

    def _receiver(self, ident: Ident) -> Any:
        obj = self.held[ident[0]]
        return getattr(obj, ident[1]) if ident[1] else obj

    def _draw_sender(self, data: st.DataObject) -> str:
        return data.draw(st.sampled_from(sorted(self.senders)), label="sender")

    def _register(self, label: int, obj: object, idents: tuple[Ident, ...]) -> None:
        self.held[label] = obj
        self.alive.add(label)
        self.refs[label] = weakref.ref(obj)
        self.provides[label] = idents

    def _model_connect(self, ident: Ident, sender: str, weak: bool, uid: object) -> None:
        key: Key = (("uid", uid) if uid else ("id", ident), sender)
        if all(entry.key != key for entry in self.entries):
            self.entries.append(Entry(key, ident, sender, weak))

    def _model_disconnect(self, key: Key) -> bool:
        for index, entry in enumerate(self.entries):
            if entry.key == key:
                del self.entries[index]
                self._settle_model()
                return True
        return False

    def _settle_model(self) -> None:
        """Forget dead senders' connections, then objects nothing keeps alive."""
        self.entries = [entry for entry in self.entries if entry.sender in self.senders]
        strongly_held = {entry.ident[0] for entry in self.entries if not entry.weak}
        self.alive = set(self.held) | strongly_held
        self.entries = [entry for entry in self.entries if entry.ident[0] in self.alive]

    def _connect(self, ident: Ident, sender: str, weak: bool, uid: object) -> None:
        self.signal.connect(
            self._receiver(ident), sender=self.senders[sender], weak=weak, dispatch_uid=uid
        )
        self._model_connect(ident, sender, weak, uid)
        assert len(self.signal.receivers) == len(self.entries)

    # -- rules ------------------------------------------------------------------

    @precondition(lambda self: len(self.held) < MAX_RECEIVER_OBJECTS)
    @rule(raises=raising, function=st.booleans())
    def create_function_or_callable(self, raises: bool, function: bool) -> None:
        label = self._label()
        ident = (label, "")
        obj: object = (
            make_function(self.log, ident, raises)
            if function
            else CallableReceiver(self.log, ident, raises)
        )
        self.raises[ident] = raises
        self._register(label, obj, (ident,))

    @precondition(lambda self: len(self.held) < MAX_RECEIVER_OBJECTS)
    @rule(raises0=raising, raises1=raising)
    def create_holder(self, raises0: bool, raises1: bool) -> None:
        label = self._label()
        self.raises[label, "m0"] = raises0
        self.raises[label, "m1"] = raises1
        holder = Holder(self.log, label, {"m0": raises0, "m1": raises1})
        self._register(label, holder, ((label, "m0"), (label, "m1")))

    @precondition(lambda self: len(self.sender_refs) < MAX_DROPPABLE_SENDERS)
    @rule(as_class=st.booleans())
    def create_sender(self, as_class: bool) -> None:
        label = f"s{self._label()}"
        # A class, like Django's model senders, or a plain instance.
        sender: object = type(f"Model{label}", (), {}) if as_class else SenderObject()
        self.senders[label] = sender
        self.sender_refs[label] = weakref.ref(sender)

    @precondition(lambda self: bool(self.held))
    @rule(
        data=st.data(),
        weak=st.booleans(),
        uid=st.sampled_from(FALSY_UIDS + TRUTHY_UIDS),
    )
    def connect(self, data: st.DataObject, weak: bool, uid: object) -> None:
        ident = data.draw(st.sampled_from(self._held_idents()), label="receiver")
        self._connect(ident, self._draw_sender(data), weak, uid)

    @precondition(lambda self: any(entry.ident[0] in self.held for entry in self.entries))
    @rule(data=st.data(), weak=st.booleans())
    def connect_duplicate(self, data: st.DataObject, weak: bool) -> None:
        entries = [entry for entry in self.entries if entry.ident[0] in self.held]
        entry = data.draw(st.sampled_from(entries), label="duplicate of")
        (kind, value), sender = entry.key
        if kind == "uid":  # any receiver with the same dispatch_uid is a duplicate
            ident = data.draw(st.sampled_from(self._held_idents()), label="receiver")
            uid = value
        else:
            ident = entry.ident
            uid = data.draw(st.sampled_from(FALSY_UIDS), label="uid")
        before = list(self.entries)
        self._connect(ident, sender, weak, uid)
        assert self.entries == before

    @rule(data=st.data(), by_uid=st.booleans(), existing=st.booleans())
    def disconnect(self, data: st.DataObject, by_uid: bool, existing: bool) -> None:
        known = [
            entry.key
            for entry in self.entries
            if entry.key[0][0] == "uid" or entry.ident[0] in self.held
        ]
        key: Key
        if existing and known:  # the right receiver or uid with the right sender
            key = data.draw(st.sampled_from(known), label="key")
        elif by_uid or not self.held:
            uid = data.draw(st.sampled_from(TRUTHY_UIDS), label="uid")
            key = (("uid", uid), self._draw_sender(data))
        else:
            ident = data.draw(st.sampled_from(self._held_idents()), label="receiver")
            key = (("id", ident), self._draw_sender(data))
        (kind, value), sender = key
        if kind == "uid":
            result = self.signal.disconnect(sender=self.senders[sender], dispatch_uid=value)
        else:
            assert isinstance(value, tuple)
            uid = data.draw(st.sampled_from(FALSY_UIDS), label="uid")
            result = self.signal.disconnect(
                self._receiver(value), sender=self.senders[sender], dispatch_uid=uid
            )
        assert result is self._model_disconnect(key)

    @precondition(lambda self: bool(self.held))
    @rule(data=st.data())
    def drop_receiver_object(self, data: st.DataObject) -> None:
        label = data.draw(st.sampled_from(sorted(self.held)), label="drop object")
        del self.held[label]
        collect()
        self._settle_model()

    @precondition(lambda self: bool(self.sender_refs))
    @rule(data=st.data())
    def drop_sender(self, data: st.DataObject) -> None:
        label = data.draw(st.sampled_from(sorted(self.sender_refs)), label="drop sender")
        ref = self.sender_refs.pop(label)
        del self.senders[label]
        collect()
        assert ref() is None, "the signal keeps a sender alive"
        # A dead sender's receivers go at the signal's next cleanup, which frees
        # the receivers only they held strongly, whose other (weak) connections
        # go at the cleanup after that.
        for _ in range(2):
            self.signal.has_listeners(_UNRELATED_SENDER)
        self._settle_model()

    @rule(data=st.data(), method=st.sampled_from(DISPATCH_METHODS))
    def dispatch(self, data: st.DataObject, method: str) -> None:
        label = self._draw_sender(data)
        sender = self.senders[label]
        expected = [entry.ident for entry in self.entries if entry.sender in (ANY, label)]
        self.log.clear()
        if method == "has_listeners":
            assert self.signal.has_listeners(sender) is bool(expected)
        elif method == "send":
            self._check_send(sender, expected)
        else:
            self._check_send_robust(sender, expected)
        assert len(self.signal.receivers) == len(self.entries)

    def _check_send(self, sender: object, expected: list[Ident]) -> None:
        failing = [index for index, ident in enumerate(expected) if self.raises[ident]]
        if failing:  # the first failure propagates, later receivers are not called
            with pytest.raises(ReceiverError) as excinfo:
                self.signal.send(sender, extra="value")
            raised = excinfo.value.ident
            del excinfo  # its traceback would keep receivers alive
            assert raised == expected[failing[0]]
            assert self.log == expected[: failing[0] + 1]
        else:
            result = self.signal.send(sender, extra="value")
            assert [(ident_of(r), response) for r, response in result] == [
                (ident, ident) for ident in expected
            ]
            assert self.log == expected

    def _check_send_robust(self, sender: object, expected: list[Ident]) -> None:
        self.signal.failures.clear()
        result = self.signal.send_robust(sender, extra="value")
        got: list[tuple[Ident, object, bool]] = []
        for r, response in result:
            if isinstance(response, BaseException):
                response.__traceback__ = None  # no reference cycle keeping receivers alive
                failed = isinstance(response, ReceiverError)
                got.append((ident_of(r), getattr(response, "ident", response), failed))
            else:
                got.append((ident_of(r), response, False))
        del result
        assert got == [(ident, ident, self.raises[ident]) for ident in expected]
        assert self.log == expected
        assert self.signal.failures == [(ident, ident) for ident in expected if self.raises[ident]]

    # -- invariants -------------------------------------------------------------

    @invariant()
    def receiver_objects_live_as_modelled(self) -> None:
        for label, ref in list(self.refs.items()):
            if label in self.alive:
                assert ref() is not None, f"receiver object {label} died while connected"
            else:
                assert ref() is None, (
                    f"receiver object {label} is no longer held by the test nor strongly "
                    "connected, yet something keeps it alive"
                )
                del self.refs[label]


class CachingSignalModel(SignalModel):
    use_caching = True


_settings = settings(
    max_examples=200,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

TestSignalModel = SignalModel.TestCase
TestSignalModel.settings = _settings
TestCachingSignalModel = CachingSignalModel.TestCase
TestCachingSignalModel.settings = _settings
