"""Who is connected to a signal: the entries, their index, the dispatch snapshot, the cache.

:class:`Receivers` keeps a signal's receiver bookkeeping in Django's own
format (the list of ``((receiver_key, sender_key), receiver_or_weakref,
sender_weakref_or_None, is_async)`` tuples that code in the wild reads),
with what makes it fast:

* an index from lookup key to entry, so ``connect`` finds duplicates in
  O(1) (Django scans the list);
* an immutable :class:`Snapshot` of the list, rebuilt only after a change,
  so a dispatch chooses its receivers without taking the lock;
* a dead flag raised by weakref callbacks, so cleanup happens later, under
  the lock, in whichever thread next looks.

Locking: :attr:`Receivers.lock` (the signal's public ``lock``) guards the
list, the index, the snapshot and the cache. No receiver is ever called
while it is held; weakref callbacks never take it.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
import types
import weakref
from collections.abc import Callable, Sequence
from typing import Any, Final

__all__ = [
    "NONE_ID",
    "NO_RECEIVERS",
    "NO_VIEW",
    "DjangoAttributes",
    "Getter",
    "Receivers",
    "View",
]

#: The sender key of receivers connected for every sender (``_make_id(None)``).
NONE_ID: Final = id(None)

#: Marker stored in ``sender_receivers_cache`` for a sender with no receivers.
NO_RECEIVERS: Final = object()

#: A zero-argument callable giving a receiver, or None once it died.
Getter = Callable[[], Any]

#: The receivers one dispatch calls: the sync ones, then the async ones, as
#: getters in connection order.
View = tuple[tuple[Getter, ...], tuple[Getter, ...]]
NO_VIEW: Final[View] = ((), ())


class _DeadFlag:
    """The weakref callback of every receiver and sender reference of one signal.

    It only raises a flag: it can run during garbage collection on any thread,
    including one that already holds the signal's lock, so it must not take
    the lock or touch the entries. Cleanup happens later, under the lock.
    Being a separate object (not a bound method) it costs no allocation per
    connect and makes no reference cycle with the signal.
    """

    __slots__ = ("raised",)

    def __init__(self) -> None:
        self.raised = False

    def __call__(self, _reference: object) -> None:
        self.raised = True


def _getter(reference: object) -> Getter:
    """Return a zero-argument callable giving the receiver, or None once it died."""
    if isinstance(reference, weakref.ReferenceType):
        return reference
    # A strong receiver: repeat(x).__next__ returns x forever, from C, so the
    # dispatch loop treats weak and strong receivers alike at no extra cost.
    return itertools.repeat(reference).__next__


class Snapshot:
    """An immutable view of the entries, made for dispatching without the lock.

    It is valid while the entries are still the same list with the same
    length; every change made through the API changes one or the other.
    """

    __slots__ = (
        "_entries",
        "any_sender",
        "length",
        "per_sender",
        "source",
        "specific",
        "strong_any_sender",
    )

    def __init__(self, entries: list[Any]) -> None:
        self.source = entries
        self.length = len(entries)
        flat = tuple((entry[0][1], _getter(entry[1]), bool(entry[3])) for entry in entries)
        self.specific = frozenset(k for k, _, _ in flat if k != NONE_ID)
        # The receivers themselves when the common case below holds and all
        # are held strongly: dispatch then needs no getter calls at all.
        self.strong_any_sender: tuple[Callable[..., Any], ...] | None = None
        if not self.specific and not any(is_async for _, _, is_async in flat):
            # The common case: every receiver is sync and listens to every
            # sender, so one tuple serves all sends.
            self.any_sender: View = (tuple(g for _, g, _ in flat), ())
            self._entries: tuple[tuple[object, Getter, bool], ...] = ()
            if not any(isinstance(entry[1], weakref.ReferenceType) for entry in entries):
                self.strong_any_sender = tuple(entry[1] for entry in entries)
        else:
            self._entries = flat
            self.any_sender = self._view(NONE_ID)
        # Built on demand, one per sender key that has receivers of its own.
        self.per_sender: dict[object, View] = {}

    def _view(self, skey: object) -> View:
        chosen = [(g, a) for k, g, a in self._entries if k in (NONE_ID, skey)]
        return (tuple(g for g, a in chosen if not a), tuple(g for g, a in chosen if a))

    def for_sender(self, sender: object, make_id: Callable[[object], object]) -> View:
        """Return the view for *sender*, whose key *make_id* computes."""
        if not self.specific:
            return self.any_sender
        skey = make_id(sender)
        if skey not in self.specific:
            return self.any_sender
        view = self.per_sender.get(skey)
        if view is None:
            view = self.per_sender[skey] = self._view(skey)
        return view


def _entry_alive(entry: Sequence[Any]) -> bool:
    ref, sender_ref = entry[1], entry[2]
    if isinstance(ref, weakref.ReferenceType) and ref() is None:
        return False
    return not (sender_ref is not None and sender_ref() is None)


# Every registry, so that a forked child can renew their locks.
_registries: weakref.WeakSet[Receivers] = weakref.WeakSet()


class Receivers:
    """One signal's receivers (see the module docstring).

    ``entries`` may be replaced from outside (``signal.receivers = []``) with
    or without the lock held; every reader then re-derives the index and the
    snapshot from the new list. Changing the list in place without changing
    its length is not noticed.
    """

    __slots__ = (
        "__weakref__",
        "_index",
        "_indexed",
        "_indexed_len",
        "_snapshot",
        "cache",
        "dead",
        "entries",
        "lock",
        "use_caching",
    )

    def __init__(self, use_caching: bool) -> None:
        self.entries: list[Any] = []
        # Guards entries, the _index* fields, _snapshot and cache. Held for
        # bookkeeping only: never while a receiver runs.
        self.lock = threading.Lock()
        self.use_caching = use_caching
        self.cache: Any = weakref.WeakKeyDictionary() if use_caching else {}
        # The weakref callback of every reference this registry holds.
        self.dead = _DeadFlag()
        # connect()'s O(1) duplicate check: lookup key -> entry, for the list
        # _indexed as it was when it had _indexed_len entries. A list assigned
        # from outside, or resized in place, is re-indexed on next use.
        self._index: dict[object, Any] = {}
        self._indexed: list[Any] | None = self.entries
        self._indexed_len = 0
        # What dispatch reads without the lock; None after any change, so that
        # no stale copy keeps a disconnected receiver alive.
        self._snapshot: Snapshot | None = None
        _registries.add(self)

    def replace(self, entries: list[Any]) -> None:
        """Make *entries* the list of receivers (``signal.receivers = ...``).

        Callers may or may not hold the lock (factory_boy's ``mute_signals``
        does), so this cannot take it. Dropping the derived state is safe
        either way: every reader re-derives it from the new list, and
        nothing keeps the old list's receivers alive.
        """
        self.entries = entries
        self._snapshot = None
        self._indexed = None
        self._index = {}

    # -- changes (each takes the lock) --------------------------------------------

    def add(self, lookup_key: object, entry: tuple[Any, ...]) -> bool:
        """Append *entry* unless an entry with *lookup_key* is connected already.

        Return whether it was appended.
        """
        with self.lock:
            self.clear_dead_locked()
            index = self._index_locked()
            added = lookup_key not in index
            if added:
                index[lookup_key] = entry
                self.entries.append(entry)
                self._indexed_len += 1
                self._snapshot = None
            self.cache.clear()
        return added

    def remove(self, lookup_key: object) -> bool:
        """Remove the entry with *lookup_key*; return whether there was one."""
        with self.lock:
            self.clear_dead_locked()
            index = self._index_locked()
            try:
                entry = index.pop(lookup_key, None)
            except TypeError:  # an unhashable dispatch_uid was never connected
                entry = None
            if entry is not None:
                self.entries.remove(entry)
                self._indexed_len -= 1
                self._snapshot = None
            self.cache.clear()
        return entry is not None

    def clear_dead_locked(self) -> None:
        """Drop the entries whose receiver or sender died. Caller holds the lock.

        Lowers the flag first: a reference dying while we filter raises it
        again for the next pass.
        """
        if not self.dead.raised:
            return
        self.dead.raised = False
        entries = self.entries
        live: list[Any] = []
        dead: list[Any] = []
        for entry in entries:
            (live if _entry_alive(entry) else dead).append(entry)
        if not dead:
            return
        in_sync = self._indexed is entries and self._indexed_len == len(entries)
        # As in Django, a new list: code holding the old one sees no change.
        self.entries = live
        self._snapshot = None
        if in_sync:
            index = self._index
            for entry in dead:
                key = entry[0]
                if index.get(key) is entry:
                    del index[key]
            self._indexed, self._indexed_len = live, len(live)
        else:
            self._indexed, self._index = None, {}
        self.cache.clear()

    def _index_locked(self) -> dict[object, Any]:
        # Caller holds the lock.
        entries = self.entries
        if self._indexed is not entries or self._indexed_len != len(entries):
            index: dict[object, Any] = {}
            for entry in entries:
                index.setdefault(entry[0], entry)
            self._index, self._indexed, self._indexed_len = index, entries, len(entries)
        return self._index

    def _snapshot_locked(self) -> Snapshot:
        # Caller holds the lock.
        self.clear_dead_locked()
        snapshot = self._snapshot
        entries = self.entries
        if snapshot is None or snapshot.source is not entries or snapshot.length != len(entries):
            snapshot = self._snapshot = Snapshot(entries)
        return snapshot

    # -- what a dispatch reads ----------------------------------------------------

    def view(self, sender: object, make_id: Callable[[object], object]) -> View:
        """Return the receivers for *sender*: (sync getters, async getters), in order.

        Lock-free when nothing changed since the last dispatch; otherwise
        cleans up dead references and rebuilds under the lock, like Django's
        ``_live_receivers``. With ``use_caching``, consults and fills the
        cache. *make_id* computes sender keys (``dispatcher._make_id``, looked
        up by the caller at each call so that tests may patch it).
        """
        if self.use_caching and not self.dead.raised:
            cached = _cache_get(self.cache, sender)
            if cached is NO_RECEIVERS:
                return NO_VIEW
            if cached is not None:
                return cached  # type: ignore[no-any-return]
            with self.lock:
                view = self._snapshot_locked().for_sender(sender, make_id)
                empty = not (view[0] or view[1])
                _cache_set(self.cache, sender, NO_RECEIVERS if empty else view)
            return view
        dead = self.dead.raised
        entries = self.entries
        snapshot = self._snapshot
        if (
            dead
            or snapshot is None
            or snapshot.source is not entries
            or snapshot.length != len(entries)
        ):
            with self.lock:
                snapshot = self._snapshot_locked()
        if not snapshot.specific:
            return snapshot.any_sender  # the common case, without a call
        return snapshot.for_sender(sender, make_id)

    def strong_receivers(self, sync: tuple[Getter, ...]) -> tuple[Callable[..., Any], ...] | None:
        """Return the receivers behind *sync* (a view's getters) if all are held strongly.

        None when they may not be (the caller then calls the getters).
        """
        snapshot = self._snapshot
        if snapshot is None or sync is not snapshot.any_sender[0]:
            return None
        return snapshot.strong_any_sender

    def weak_reference(self, target: Any) -> Any:
        """Return a weak reference to *target* whose death this registry notices.

        A bound method gets a :class:`weakref.WeakMethod` (as in Django: a
        bound method object dies at once, its instance and function do not).
        """
        if type(target) is types.MethodType:
            return _WeakMethod(target, self.dead)
        if hasattr(target, "__self__") and hasattr(target, "__func__"):
            return weakref.WeakMethod(target, self.dead)
        return weakref.ref(target, self.dead)


class _WeakMethod(weakref.WeakMethod[Any]):
    """A :class:`weakref.WeakMethod` made without its per-instance closure and self-reference.

    ``WeakMethod.__new__`` wraps the callback in a closure that calls it once,
    with the ``WeakMethod``; the dead flag only needs calling (twice is
    harmless), so both references take it directly. Otherwise the same
    object: ``weakref.WeakMethod`` to ``isinstance``, the bound method when
    called, None once its instance or function died. It made connecting a
    bound method about 20 % cheaper.
    """

    __slots__ = ()

    def __new__(  # noqa: PYI034 - typing.Self is 3.11+, and no typing_extensions
        cls, meth: types.MethodType, callback: Callable[[Any], object]
    ) -> _WeakMethod:
        self: Any = weakref.ref.__new__(cls, meth.__self__, callback)
        self._func_ref = weakref.ref(meth.__func__, callback)
        self._meth_type = type(meth)
        self._alive = True
        return self  # type: ignore[no-any-return]

    def __init__(self, meth: types.MethodType, callback: Callable[[Any], object]) -> None:
        # weakref.ref.__init__ checks its arguments: the instance it refers to.
        weakref.ref.__init__(self, meth.__self__, callback)  # type: ignore[call-arg]


def _cache_get(cache: Any, sender: object) -> Any:
    try:
        return cache.get(sender)
    except TypeError:  # senders that cannot be weakly referenced (or hashed) are not cached
        return None


def _cache_set(cache: Any, sender: object, value: object) -> None:
    with contextlib.suppress(TypeError):  # as in _cache_get
        cache[sender] = value


def _after_fork_in_child() -> None:
    # The parent's other threads do not exist in the child: a lock one of
    # them held at the fork would never be released.
    for registry in list(_registries):
        registry.lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class DjangoAttributes:
    """The part of :class:`~parasignal.Signal` that is Django's public bookkeeping.

    ``receivers``, ``lock``, ``use_caching`` and ``sender_receivers_cache``
    read and write the signal's :class:`Receivers`, so code written against
    Django's attributes (and factory_boy's ``mute_signals``) works unchanged.
    """

    _connections: Receivers

    @property
    def receivers(self) -> list[Any]:
        """The connected receivers, in connection order (Django's format).

        Assigning a new list replaces them (``signal.receivers = []`` mutes
        the signal), with or without :attr:`lock` held.
        """
        return self._connections.entries

    @receivers.setter
    def receivers(self, value: list[Any]) -> None:
        self._connections.replace(value)

    @property
    def lock(self) -> Any:
        """The :class:`threading.Lock` guarding the receiver bookkeeping."""
        return self._connections.lock

    @lock.setter
    def lock(self, value: Any) -> None:
        self._connections.lock = value

    @property
    def use_caching(self) -> bool:
        """Whether the receivers chosen for each sender are cached, as in Django."""
        return self._connections.use_caching

    @use_caching.setter
    def use_caching(self, value: bool) -> None:
        self._connections.use_caching = value

    @property
    def sender_receivers_cache(self) -> Any:
        """The per-sender cache (a ``WeakKeyDictionary`` with ``use_caching``)."""
        return self._connections.cache

    @sender_receivers_cache.setter
    def sender_receivers_cache(self, value: Any) -> None:
        self._connections.cache = value

    def _clear_dead_receivers(self) -> None:
        """Drop receivers and senders that died. Caller holds :attr:`lock`, as in Django."""
        self._connections.clear_dead_locked()
