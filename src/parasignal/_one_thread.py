"""Calling sync code from async code on one thread, as Django's ``asend`` does.

Django 6.1's ``asend`` and ``asend_robust`` call all the sync receivers in
one ``asgiref.sync.sync_to_async(thread_sensitive=True)`` call: one after
another, on the thread Django's thread-sensitive calls use (under ASGI, the
request's own; inside ``async_to_sync``, the thread that called it), in one
copy of the caller's context whose changes are copied back afterwards.

:func:`call` does exactly that when asgiref is importable (every Django
install has it), so the ORM in those receivers uses the same thread, and so
the same database connection, as the rest of the request. Without asgiref,
it runs the callable on one thread of the running loop's default executor,
never on the loop's own thread, with the same context rules.

asgiref is looked up lazily, on the first call, and the answer is cached:
importing parasignal never imports asgiref (nor Django).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from ._contexts import copy_back_all

__all__ = ["asgiref_sync_to_async", "call"]

_T = TypeVar("_T")


@functools.cache
def asgiref_sync_to_async() -> Callable[..., Any] | None:
    """Return ``asgiref.sync.sync_to_async``, or None when asgiref is not importable.

    Looked up once, on first use, then cached (``cache_clear()`` forgets it).
    """
    try:
        from asgiref.sync import sync_to_async  # noqa: PLC0415 - optional, and lazy by design
    except ImportError:
        return None
    return sync_to_async


class _Box(Generic[_T]):
    """A callable, then its result or exception, for code that may hold on to it."""

    __slots__ = ("_error", "_func", "_result")

    def __init__(self, func: Callable[[], _T]) -> None:
        self._func: Callable[[], _T] | None = func
        self._result: _T | None = None
        self._error: BaseException | None = None

    def run(self) -> None:
        func = self._func
        if func is None:  # pragma: no cover - run() is called exactly once
            return
        try:
            self._result = func()
        except BaseException as exc:  # noqa: BLE001 - re-raised to the caller by outcome()
            self._error = exc

    def outcome(self) -> _T:
        """Return the result, or raise the exception, that run() recorded."""
        error = self._error
        if error is not None:
            try:
                raise error
            finally:
                del error  # no cycle through this frame
        return self._result  # type: ignore[return-value]

    def clear(self) -> None:
        self._func = self._result = self._error = None


async def call(func: Callable[[], _T]) -> _T:
    """Await *func()* run on one thread that is not the event loop's.

    *func* runs in a copy of the awaiting task's context; the variables it
    changed are set in the awaiting task's context afterwards, whether it
    returns or raises. With asgiref, this is
    ``sync_to_async(func, thread_sensitive=True)()``, with all its rules (a
    cancelled await does not stop *func*, which finishes on its thread).
    Without it, *func* runs on the loop's default executor, and a cancelled
    await likewise leaves it to finish there.
    """
    sync_to_async = asgiref_sync_to_async()
    if sync_to_async is not None:
        # asgiref's wrapper holds what it calls and what it returns, and on
        # some versions a reference cycle keeps the wrapper's frame alive
        # until the garbage collector runs (asgiref 3.12 on Python 3.10: a
        # caught AttributeError's traceback in asgiref.local). So all that
        # goes through it is a box, emptied before this returns: the
        # callable in, its result or exception out. Then asgiref holds
        # nothing of the caller's (receivers, arguments, responses).
        box = _Box(func)
        try:
            await sync_to_async(box.run, thread_sensitive=True)()
            return box.outcome()
        finally:
            box.clear()
    context = contextvars.copy_context()
    loop = asyncio.get_running_loop()
    try:
        return await loop.run_in_executor(None, context.run, func)
    finally:
        # What asgiref's _restore_context does: the caller sees the changes.
        copy_back_all(context)
