"""Django's database connections on parasignal's worker threads.

Django gives every thread its own database connections and, for a request,
closes the unusable or expired ones when it starts and when it ends
(``close_old_connections``, connected to ``request_started`` and
``request_finished``). Nothing does that for threads Django does not know,
such as parasignal's workers. So, once Django is installed and its settings
are configured, on a parasignal pool's worker thread:

* before and after each receiver, ``django.db.close_old_connections()``
  runs, exactly as around a request (between two receivers, once: the
  first's "after" is the second's "before"). The "after" runs before the
  receiver's outcome is stored, so a caller that has its answer finds
  every receiver's cleanup done: with ``CONN_MAX_AGE = 0`` (Django's
  default) the receiver's connection is closed as soon as it returns;
  otherwise it is kept until it expires or fails, as a request thread's is;
* when the worker goes idle (it finished a task and none is queued for it)
  and when it exits, ``django.db.connections.close_all()`` closes every
  connection the thread still has, whatever ``CONN_MAX_AGE`` says, so an idle
  pool holds no connection at all.

Receivers a worker runs for a nested dispatch (``send_parallel`` from inside
a receiver) are left alone: the outer receiver on that thread may be inside
a transaction. The calling thread's connections are never touched (inline
mode, ``parasignal.testing.inline()``, runs receivers there), nor are those of
a user's own ``executor=`` threads, which belong to the user.

Nothing here imports Django unless the application already has
(``django.conf`` in :data:`sys.modules` with ``settings.configured``); the
check runs once per helper run, and once it succeeds it is cached.
Cleanup failures are logged as ``signal.db_cleanup_failed`` and never
raised into the dispatch.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Any, Final

from . import _events, _pool

__all__ = ["ReceiverGuard", "worker_guard"]


class ReceiverGuard:
    """What a worker does around each receiver it calls: Django's request cleanup."""

    __slots__ = ("_close_old",)

    def __init__(self, close_old: Callable[[], Any]) -> None:
        self._close_old = close_old

    def before(self) -> None:
        """Close this thread's unusable or expired connections. Never raises."""
        _guarded(self._close_old, "before_receiver")

    def after(self) -> None:
        """Close them again once the receiver has returned or raised. Never raises."""
        _guarded(self._close_old, "after_receiver")


# Set once, by the first helper run that finds Django configured; never unset
# (Django cannot be unconfigured). Written under _lock, read without it.
_lock: Final = threading.Lock()
_guard: ReceiverGuard | None = None


def worker_guard() -> ReceiverGuard | None:
    """Return the guard for a helper run on this thread, or None to call receivers bare.

    Called by the fan-out engine once per helper run at nesting depth one.
    None unless Django is configured and this is a parasignal pool's worker.
    Cheap when Django is absent: one dictionary lookup.
    """
    guard = _guard
    if guard is None:
        guard = _activate()
        if guard is None:
            return None
    if not _pool.on_worker_thread():
        return None
    return guard


def _activate() -> ReceiverGuard | None:
    """If Django is imported and configured, set up the cleanup; return the guard."""
    global _guard  # noqa: PLW0603 - the one cached answer, process-wide by design
    conf = sys.modules.get("django.conf")
    if conf is None:
        return None
    try:
        configured = bool(conf.settings.configured)
    except Exception:  # noqa: BLE001 - a half-imported Django is not configured
        return None
    if not configured:
        return None
    # Django is imported already: this only finishes importing django.db.
    from django import db  # noqa: PLC0415 - lazily, only when the application uses Django

    with _lock:
        if _guard is None:
            close_all = db.connections.close_all
            _pool.add_release_hook(lambda: _guarded(close_all, "worker_released"))
            _guard = ReceiverGuard(db.close_old_connections)
        return _guard


def _guarded(cleanup: Callable[[], Any], when: str) -> None:
    try:
        cleanup()
    except Exception as exc:  # noqa: BLE001 - never raised into a dispatch; logged instead
        _events.emit_db_cleanup_failed(when=when, thread=threading.current_thread().name, exc=exc)
