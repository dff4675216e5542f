"""Hypothesis drives Django's real ``Signal`` and parasignal's side by side: they must agree.

Each example applies the same random operations to a ``django.dispatch.Signal``
and to a parasignal :class:`~parasignal.Signal`: connecting functions, bound
methods and callable instances (weakly or strongly, for every sender or one,
with or without a ``dispatch_uid``, duplicates included), disconnecting (by
receiver, by uid, and what was never connected), dropping receiver objects
and senders, ``has_listeners``, and dispatching. Django answers with ``send``
or ``send_robust``; parasignal with ``send`` or ``send_parallel`` against the
former, ``send_robust`` or ``send_parallel_robust`` against the latter.

Each side has its own twin of every receiver object (same label, same
behaviour), so that each signal's hold on its receivers can be watched on its
own. After every step the two must agree on:

* the live connections, in order (lookup key, sender, weak or strong);
* which receiver objects are alive: a signal keeps one alive exactly while it
  is connected strongly, so a weak receiver whose last reference the test
  drops dies at once, by reference counting: the collector is disabled for
  the whole example and receivers hold no reference cycle;
* every dispatch's answer (receivers in order, responses, which receivers
  failed and with what), the exception ``send`` raises, the failures
  reported through ``_log_robust_failure``, and the receivers actually
  called. Receivers record each call with the dispatch's sequence number
  (a named argument), so a weak receiver dropped before a dispatch being
  called by it, or any call made after a dispatch answered, is caught;
* nothing of a dispatch outliving it: its payload (a named argument) dies as
  soon as it returns.

The one latitude given to parasignal is ``send_parallel``'s documented one:
when a receiver raises, receivers connected after it may have been started
and still run in the background; they finish, and let go of what they hold,
on their own thread.

Django 5.x keeps a dead sender's receivers (it matches senders by ``id()``
alone); Django 6 and parasignal forget them. Against Django 5.x the test does
for Django what Django 6 does, just before the sender dies.
"""

from __future__ import annotations

import gc
import threading
import types
import weakref
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from parasignal import Signal

dispatch: Any = pytest.importorskip("django.dispatch", reason="the differential needs Django")

# Shrinking a failure replays thousands of examples, for up to Hypothesis's
# five-minute limit: let it finish and report the minimal example. Every wait
# inside an example is bounded (WAIT).
pytestmark = pytest.mark.timeout(420)

# A receiver: (label of the object providing it, method name or "" for the object itself).
Ident = tuple[int, str]
# What a receiver answers: its ident and the dispatch's sequence number.
Response = tuple[int, str, int]
# A response as compared: ("value", response) or ("raised", type name, args).
Outcome = tuple[object, ...]
# A row of a signal's live connections: (lookup key, sender label, weak, receiver).
Row = tuple[tuple[str, object], str, bool, Ident]

DJANGO = "django"
PARASIGNAL = "parasignal"
ANY = "none"  # the label of the sender None
TRUTHY_UIDS = ("a", "b", 1)
FALSY_UIDS = (None, "", 0)
NEVER_USED_UID = "never connected"
MAX_RECEIVER_OBJECTS = 6
MAX_DROPPABLE_SENDERS = 3
WAIT = 10.0  # seconds: how long background receivers may take to finish
# Django's method for each of parasignal's.
COUNTERPART = {
    "send": "send",
    "send_parallel": "send",
    "send_robust": "send_robust",
    "send_parallel_robust": "send_robust",
}

raising = st.integers(0, 3).map(lambda n: n == 0)  # one receiver in four raises


class ReceiverError(Exception):
    """What a failing receiver raises: its ident and the dispatch's sequence number."""


class CallBook:
    """One side's record of receiver calls and reported failures, by label only.

    Receivers append from whichever thread runs them (``list.append`` is
    atomic); the book holds no receiver, so it keeps none alive.
    """

    def __init__(self) -> None:
        self.calls: list[tuple[int, Ident]] = []
        self.failures: list[tuple[int, Ident, str, tuple[Any, ...]]] = []
        self._running = 0
        # Guards _running; receivers take it briefly on entry and exit.
        self._idle = threading.Condition()

    def enter(self) -> None:
        with self._idle:
            self._running += 1

    def leave(self) -> None:
        with self._idle:
            self._running -= 1
            if not self._running:
                self._idle.notify_all()

    def wait_idle(self) -> bool:
        """Wait until no receiver is running (those of a send_parallel that raised)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._running == 0, WAIT)

    def calls_of(self, seq: int) -> list[Ident]:
        return [ident for s, ident in list(self.calls) if s == seq]

    def failures_of(self, seq: int) -> list[tuple[Ident, str, tuple[Any, ...]]]:
        return [(ident, kind, args) for s, ident, kind, args in list(self.failures) if s == seq]

    def record_failure(self, receiver: Callable[..., Any], err: BaseException) -> None:
        """``_log_robust_failure`` for both signals: keeps labels, not the receiver or error."""
        _, ident = ident_of(receiver)
        seq = err.args[1] if isinstance(err, ReceiverError) else -1
        self.failures.append((seq, ident, type(err).__name__, err.args))


def _respond(book: CallBook, ident: Ident, raises: bool, seq: int) -> Response:
    book.enter()
    try:
        book.calls.append((seq, ident))
        if raises:
            raise ReceiverError(ident, seq)
        return (ident[0], ident[1], seq)
    finally:
        book.leave()


def make_function(side: str, book: CallBook, ident: Ident, raises: bool) -> Callable[..., Any]:
    # Refers to nothing that refers back to it: reference counting frees it.
    def function_receiver(*, seq: int, **kwargs: Any) -> Response:
        return _respond(book, ident, raises, seq)

    function_receiver.__dict__.update(ident=ident, side=side)
    return function_receiver


class CallableReceiver:
    def __init__(self, side: str, book: CallBook, ident: Ident, raises: bool) -> None:
        self.side = side
        self.book = book
        self.ident = ident
        self.raises = raises

    def __call__(self, *, seq: int, **kwargs: Any) -> Response:
        return _respond(self.book, self.ident, self.raises, seq)


class Holder:
    """An object whose bound methods ``m0`` and ``m1`` are two distinct receivers."""

    def __init__(self, side: str, book: CallBook, label: int, raises: dict[str, bool]) -> None:
        self.side = side
        self.book = book
        self.label = label
        self.raises = raises

    def m0(self, *, seq: int, **kwargs: Any) -> Response:
        return _respond(self.book, (self.label, "m0"), self.raises["m0"], seq)

    def m1(self, *, seq: int, **kwargs: Any) -> Response:
        return _respond(self.book, (self.label, "m1"), self.raises["m1"], seq)


class SenderObject:
    """A sender that can be weakly referenced and is freed by reference counting."""


class ModelSender:
    """A class as sender, as Django's model signals use (never dropped: classes are cyclic)."""


class Payload:
    """A named argument whose life is watched."""

    __slots__ = ("__weakref__",)


# Never connected for: has_listeners() from it makes a signal clean up.
_UNRELATED_SENDER = SenderObject()


def ident_of(receiver: object) -> tuple[str, Ident]:
    """Which side's twin, and which modelled receiver, *receiver* is."""
    if isinstance(receiver, types.MethodType):
        owner = vars(receiver.__self__)
        return owner["side"], (owner["label"], receiver.__func__.__name__)
    attributes = vars(receiver)
    ident: Ident = attributes["ident"]
    return attributes["side"], ident


def identity_key(receiver: object) -> object:
    """The lookup key both libraries give a receiver connected without a dispatch_uid."""
    if isinstance(receiver, types.MethodType):
        return (id(receiver.__self__), id(receiver.__func__))
    return id(receiver)


def _probe(**kwargs: Any) -> None:
    """A receiver for finding out what the installed Django does."""


def _django_watches_senders() -> bool:
    # Django 6 stores a weak reference to the sender in each connection
    # (four fields, as parasignal does); Django 5 stores three.
    probe, sender = dispatch.Signal(), SenderObject()
    probe.connect(_probe, sender=sender, weak=False)
    return len(probe.receivers[0]) == 4


DJANGO_WATCHES_SENDERS = _django_watches_senders()


class RecordingSignal(Signal):
    """A parasignal Signal that reports failures into a :class:`CallBook`."""

    def __init__(self, book: CallBook, use_caching: bool, max_workers: int | None) -> None:
        super().__init__(use_caching, max_workers=max_workers)
        self.book = book

    def _log_robust_failure(self, receiver: Callable[..., Any], err: BaseException) -> None:
        self.book.record_failure(receiver, err)


@dataclass(frozen=True)
class Raised:
    """A dispatch that raised: the exception's type and arguments."""

    kind: str
    args: tuple[Any, ...]


def _outcome(response: object) -> Outcome:
    if isinstance(response, BaseException):
        response.__traceback__ = None  # its frames would keep receivers alive
        return ("raised", type(response).__name__, response.args)
    return ("value", response)


def call(
    signal: Any, method: str, side: str, sender: object, seq: int
) -> tuple[list[tuple[Ident, Outcome]] | Raised, bool]:
    """Dispatch; return the answer by label (or what it raised) and whether the payload lived.

    Holds nothing of the dispatch on return: the exception's traceback is
    cleared (it would hold the receivers' frames), the answer is reduced to
    labels and the payload is watched through a weak reference only.
    """
    payload = Payload()
    payload_ref = weakref.ref(payload)
    try:
        result = getattr(signal, method)(sender, seq=seq, payload=payload)
    except ReceiverError as exc:
        exc.__traceback__ = None
        answer: list[tuple[Ident, Outcome]] | Raised = Raised(type(exc).__name__, exc.args)
    else:
        answer = []
        for receiver, response in result:
            got_side, ident = ident_of(receiver)
            assert got_side == side, f"{side}'s {method} answered with a {got_side} receiver"
            answer.append((ident, _outcome(response)))
        del result
    del payload
    return answer, payload_ref() is not None


def registry(signal: Any, side: str, sender_labels: dict[int, str]) -> list[Row]:
    """A signal's live connections, in order, by label (dead ones awaiting cleanup left out)."""
    rows: list[Row] = []
    for entry in list(signal.receivers):
        (receiver_key, sender_key), reference = entry[0], entry[1]
        weak = isinstance(reference, weakref.ReferenceType)
        receiver = reference() if weak else reference
        if receiver is None:
            continue
        if len(entry) == 4 and entry[2] is not None and entry[2]() is None:
            continue  # its sender died
        got_side, ident = ident_of(receiver)
        assert got_side == side, f"{side}'s signal holds a {got_side} receiver"
        is_identity = receiver_key == identity_key(receiver)
        key: tuple[str, object] = ("id", ident) if is_identity else ("uid", receiver_key)
        del receiver
        rows.append((key, sender_labels.get(sender_key, f"dead sender {sender_key}"), weak, ident))
    return rows


class DjangoDifferential(RuleBasedStateMachine):
    use_caching: ClassVar[bool] = False

    def __init__(self) -> None:
        super().__init__()
        self.books = {DJANGO: CallBook(), PARASIGNAL: CallBook()}
        self.django: Any = dispatch.Signal(use_caching=self.use_caching)
        self.django._log_robust_failure = self.books[DJANGO].record_failure
        self.para: RecordingSignal | None = None
        self.next_label = 0
        self.seq = 0
        # Receiver objects the test holds, by label: (Django's twin, parasignal's twin).
        self.held: dict[int, tuple[Any, Any]] = {}
        self.refs: dict[int, tuple[weakref.ref[Any], weakref.ref[Any]]] = {}
        self.provides: dict[int, tuple[Ident, ...]] = {}
        self.raises: dict[Ident, bool] = {}
        # Labels whose parasignal twin a send_parallel that raised may still
        # hold on a worker thread (running, or just finished, in the background).
        self.lingering: set[int] = set()
        # Senders by label, shared by both signals; the droppable ones are weakly watched.
        self.senders: dict[str, object] = {
            ANY: None,
            "int": 7,
            "str": "a sender",
            "plain": object(),
            "object": SenderObject(),
            "model": ModelSender,
        }
        self.sender_refs: dict[str, weakref.ref[Any]] = {}
        # Connections asked for (ident, sender, uid), for duplicates and disconnects.
        self.history: list[tuple[Ident, str, object]] = []
        # Dispatches answered: seq -> how many parasignal calls it made, which
        # must not change afterwards; or, for a send_parallel that raised, the
        # receivers that may still be called in the background.
        self.answered: dict[int, int] = {}
        self.background: dict[int, set[Ident]] = {}
        # Reference counting alone must free receivers and payloads.
        gc.disable()

    def teardown(self) -> None:
        try:
            assert self.books[PARASIGNAL].wait_idle(), "background receivers never finished"
            if self.para is not None:
                self.para.shutdown(wait=True)
        finally:
            gc.enable()

    # -- helpers ----------------------------------------------------------------

    @property
    def signal(self) -> RecordingSignal:
        assert self.para is not None
        return self.para

    def _label(self) -> int:
        self.next_label += 1
        return self.next_label

    def _held_idents(self) -> list[Ident]:
        return [ident for label in sorted(self.held) for ident in self.provides[label]]

    def _receivers(self, ident: Ident) -> tuple[Any, Any]:
        """The Django and parasignal twins of the receiver *ident*."""
        pair = self.held[ident[0]]
        if ident[1]:
            return getattr(pair[0], ident[1]), getattr(pair[1], ident[1])
        return pair

    def _dispatchable(self, label: str) -> bool:
        # Django's cache is a WeakKeyDictionary: with use_caching, a sender
        # that cannot be weakly referenced makes Django raise TypeError (a
        # documented difference: parasignal then works uncached).
        if not self.use_caching:
            return True
        try:
            weakref.ref(self.senders[label])
        except TypeError:
            return False
        return True

    def _draw_sender(self, data: st.DataObject, *, dispatching: bool = False) -> str:
        labels = sorted(s for s in self.senders if not dispatching or self._dispatchable(s))
        return data.draw(st.sampled_from(labels), label="sender")

    def _register(self, label: int, pair: tuple[Any, Any], idents: tuple[Ident, ...]) -> None:
        self.held[label] = pair
        self.refs[label] = (weakref.ref(pair[0]), weakref.ref(pair[1]))
        self.provides[label] = idents

    def _sender_labels(self) -> dict[int, str]:
        return {id(sender): label for label, sender in self.senders.items()}

    def _connect(self, ident: Ident, sender: str, weak: bool, uid: object) -> None:
        django_receiver, para_receiver = self._receivers(ident)
        target = self.senders[sender]
        self.django.connect(django_receiver, sender=target, weak=weak, dispatch_uid=uid)
        self.signal.connect(para_receiver, sender=target, weak=weak, dispatch_uid=uid)
        self.history.append((ident, sender, uid))

    def _settle(self) -> None:
        """Let both signals clean up what died (and what only the dead held)."""
        for _ in range(2):
            self.django.has_listeners(_UNRELATED_SENDER)
            self.signal.has_listeners(_UNRELATED_SENDER)

    # -- rules ------------------------------------------------------------------

    @initialize(max_workers=st.sampled_from([None, 2]))
    def create_signal(self, max_workers: int | None) -> None:
        # None: the shared default pool; 2: a pool of the signal's own.
        self.para = RecordingSignal(self.books[PARASIGNAL], self.use_caching, max_workers)

    @precondition(lambda self: len(self.held) < MAX_RECEIVER_OBJECTS)
    @rule(raises=raising, function=st.booleans())
    def create_function_or_callable(self, raises: bool, function: bool) -> None:
        label = self._label()
        ident = (label, "")
        self.raises[ident] = raises
        factory = make_function if function else CallableReceiver
        pair = (
            factory(DJANGO, self.books[DJANGO], ident, raises),
            factory(PARASIGNAL, self.books[PARASIGNAL], ident, raises),
        )
        self._register(label, pair, (ident,))

    @precondition(lambda self: len(self.held) < MAX_RECEIVER_OBJECTS)
    @rule(raises0=raising, raises1=raising)
    def create_holder(self, raises0: bool, raises1: bool) -> None:
        label = self._label()
        self.raises[label, "m0"] = raises0
        self.raises[label, "m1"] = raises1
        pair = (
            Holder(DJANGO, self.books[DJANGO], label, {"m0": raises0, "m1": raises1}),
            Holder(PARASIGNAL, self.books[PARASIGNAL], label, {"m0": raises0, "m1": raises1}),
        )
        self._register(label, pair, ((label, "m0"), (label, "m1")))

    @precondition(lambda self: len(self.sender_refs) < MAX_DROPPABLE_SENDERS)
    @rule()
    def create_sender(self) -> None:
        label = f"s{self._label()}"
        sender = SenderObject()
        self.senders[label] = sender
        self.sender_refs[label] = weakref.ref(sender)

    @precondition(lambda self: bool(self.held))
    @rule(data=st.data(), weak=st.booleans(), uid=st.sampled_from(FALSY_UIDS + TRUTHY_UIDS))
    def connect(self, data: st.DataObject, weak: bool, uid: object) -> None:
        ident = data.draw(st.sampled_from(self._held_idents()), label="receiver")
        self._connect(ident, self._draw_sender(data), weak, uid)

    @precondition(lambda self: any(ident[0] in self.held for ident, _, _ in self.history))
    @rule(data=st.data(), weak=st.booleans(), same_uid=st.booleans())
    def connect_duplicate(self, data: st.DataObject, weak: bool, same_uid: bool) -> None:
        earlier = [(i, s, u) for i, s, u in self.history if i[0] in self.held and s in self.senders]
        if not earlier:
            return
        ident, sender, uid = data.draw(st.sampled_from(earlier), label="duplicate of")
        if uid and same_uid:  # any receiver with the same dispatch_uid is a duplicate
            ident = data.draw(st.sampled_from(self._held_idents()), label="receiver")
        elif not uid:
            uid = data.draw(st.sampled_from(FALSY_UIDS), label="uid")
        self._connect(ident, sender, weak, uid)

    @rule(data=st.data(), how=st.sampled_from(["existing", "receiver", "uid", "never"]))
    def disconnect(self, data: st.DataObject, how: str) -> None:
        # existing: a connection made before (its receiver, or its uid, with
        # its sender); receiver, uid: a held receiver or a uid, with any
        # sender; never: a uid nothing was ever connected with.
        known = [(i, s, u) for i, s, u in self.history if s in self.senders]
        ident: Ident | None = None
        uid: object = None
        if how == "existing" and known:
            ident, sender, uid = data.draw(st.sampled_from(known), label="connection")
            if uid or ident[0] not in self.held:
                ident = None
                uid = uid or data.draw(st.sampled_from(TRUTHY_UIDS), label="uid")
        elif how == "receiver" and self.held:
            ident = data.draw(st.sampled_from(self._held_idents()), label="receiver")
            sender = self._draw_sender(data)
        else:
            sender = self._draw_sender(data)
            uid = NEVER_USED_UID if how == "never" else data.draw(st.sampled_from(TRUTHY_UIDS))
        target = self.senders[sender]
        if ident is None:
            django_result = self.django.disconnect(sender=target, dispatch_uid=uid)
            para_result = self.signal.disconnect(sender=target, dispatch_uid=uid)
        else:
            falsy = data.draw(st.sampled_from(FALSY_UIDS), label="falsy uid")
            django_receiver, para_receiver = self._receivers(ident)
            django_result = self.django.disconnect(django_receiver, target, falsy)
            para_result = self.signal.disconnect(para_receiver, target, falsy)
            del django_receiver, para_receiver
        assert para_result is django_result, (
            f"disconnect({ident or uid!r}) answered {para_result}; Django answered {django_result}"
        )

    @precondition(lambda self: bool(self.held))
    @rule(data=st.data())
    def drop_receiver_object(self, data: st.DataObject) -> None:
        # No gc.collect(): the invariants check that reference counting alone
        # freed both twins, unless a strong connection keeps them.
        label = data.draw(st.sampled_from(sorted(self.held)), label="drop object")
        del self.held[label]

    @precondition(lambda self: bool(self.sender_refs))
    @rule(data=st.data())
    def drop_sender(self, data: st.DataObject) -> None:
        label = data.draw(st.sampled_from(sorted(self.sender_refs)), label="drop sender")
        if not DJANGO_WATCHES_SENDERS:
            # What Django 6 does once the sender dies (see the module docstring).
            sender_key = id(self.senders[label])
            with self.django.lock:
                self.django.receivers = [
                    entry for entry in self.django.receivers if entry[0][1] != sender_key
                ]
                self.django.sender_receivers_cache.clear()
        ref = self.sender_refs.pop(label)
        del self.senders[label]
        assert ref() is None, "a signal keeps a sender alive"
        self._settle()

    @rule(data=st.data())
    def has_listeners(self, data: st.DataObject) -> None:
        sender = self.senders[self._draw_sender(data, dispatching=True)]
        assert self.signal.has_listeners(sender) is self.django.has_listeners(sender)

    @rule(
        data=st.data(),
        method=st.sampled_from(["send", "send_robust", "send_parallel", "send_parallel_robust"]),
    )
    def dispatch(self, data: st.DataObject, method: str) -> None:
        self.seq += 1
        seq = self.seq
        label = self._draw_sender(data, dispatching=True)
        sender = self.senders[label]
        django_book, para_book = self.books[DJANGO], self.books[PARASIGNAL]
        expected, django_payload_lived = call(self.django, COUNTERPART[method], DJANGO, sender, seq)
        got, payload_lived = call(self.signal, method, PARASIGNAL, sender, seq)
        where = f"{method} #{seq} from {label}"
        assert not django_payload_lived, "Django's send kept its payload: the test holds it"
        assert got == expected, f"{where}: parasignal answered {got}, Django {expected}"
        django_calls = django_book.calls_of(seq)
        django_failures = django_book.failures_of(seq)
        if method == "send_parallel" and isinstance(got, Raised):
            # Receivers after the failing one may have started, and may
            # still be running: they are the only ones that may be called
            # beyond Django's, and only they may report failures.
            rows = registry(self.django, DJANGO, self._sender_labels())
            everyone = [ident for _, s, _, ident in rows if s in (ANY, label)]
            failed = everyone.index(got.args[0])
            later = everyone[failed + 1 :]
            self.background[seq] = set(later)
            self.lingering |= {ident[0] for ident in everyone}
            assert para_book.wait_idle(), f"{where}: background receivers never finished"
            # A receiver connected twice (by identity and by uid) is called twice.
            counted = Counter(para_book.calls_of(seq))
            least, most = Counter(django_calls), Counter(django_calls) + Counter(later)
            assert least <= counted <= most, (
                f"{where}: parasignal called {sorted(counted.elements())}; Django "
                f"{django_calls}, of {everyone}"
            )
            self._check_background(seq)
            return
        assert not payload_lived, f"{where}: the payload outlived the dispatch"
        calls = para_book.calls_of(seq)
        failures = para_book.failures_of(seq)
        if "parallel" in method:  # concurrent: compare what was called, not when
            calls.sort()
            django_calls.sort()
            failures.sort()
            django_failures.sort()
        assert calls == django_calls, f"{where}: parasignal called {calls}; Django {django_calls}"
        assert failures == django_failures, (
            f"{where}: parasignal reported {failures}; Django {django_failures}"
        )
        self.answered[seq] = len(calls)

    def _check_background(self, seq: int) -> None:
        calls = self.books[PARASIGNAL].calls_of(seq)
        assert set(calls) <= self.background[seq] | set(self.books[DJANGO].calls_of(seq)), (
            f"send_parallel #{seq} called {calls} in the background"
        )
        for ident, kind, args in self.books[PARASIGNAL].failures_of(seq):
            assert ident in self.background[seq], f"send_parallel #{seq} reported {ident}"
            assert self.raises[ident], f"send_parallel #{seq} reported {ident}, which never fails"
            assert (kind, args) == (ReceiverError.__name__, (ident, seq))

    # -- invariants -------------------------------------------------------------

    @invariant()
    def connections_agree(self) -> None:
        labels = self._sender_labels()
        django_rows = registry(self.django, DJANGO, labels)
        para_rows = registry(self.signal, PARASIGNAL, labels)
        assert para_rows == django_rows, (
            f"parasignal's connections {para_rows} differ from Django's {django_rows}"
        )

    @invariant()
    def receiver_objects_live_alike(self) -> None:
        for label, (django_ref, para_ref) in list(self.refs.items()):
            django_alive = django_ref() is not None
            para_alive = para_ref() is not None
            if para_alive and not django_alive and label in self.lingering:
                # A worker thread of a send_parallel that raised may be about
                # to let go of it: wait for that, not forever.
                para_alive = not _wait_dead(para_ref)
            assert para_alive is django_alive, (
                f"receiver object {label}: alive {para_alive} in parasignal, "
                f"{django_alive} in Django"
            )
            if not django_alive:
                del self.refs[label]
                self.lingering.discard(label)

    @invariant()
    def no_call_after_an_answer(self) -> None:
        counts = Counter(seq for seq, _ in list(self.books[PARASIGNAL].calls))
        late = {seq: counts[seq] for seq, count in self.answered.items() if counts[seq] != count}
        assert not late, f"receivers were called after their dispatch answered: {late}"
        for seq in self.background:
            self._check_background(seq)


def _wait_dead(ref: weakref.ref[Any]) -> bool:
    """Wait up to WAIT seconds for *ref*'s object to die; True once it has."""
    obj = ref()
    if obj is None:
        return True
    died = threading.Event()
    watcher = weakref.ref(obj, lambda _: died.set())
    del obj
    dead = died.wait(WAIT)
    del watcher
    return dead


class CachingDjangoDifferential(DjangoDifferential):
    use_caching = True


_settings = settings(
    max_examples=600,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

TestDjangoDifferential = DjangoDifferential.TestCase
TestDjangoDifferential.settings = _settings
TestCachingDjangoDifferential = CachingDjangoDifferential.TestCase
TestCachingDjangoDifferential.settings = _settings
