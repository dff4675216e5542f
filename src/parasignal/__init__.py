"""parasignal: Django-compatible signals with parallel dispatch on threads.

``from parasignal import Signal, receiver`` replaces ``from django.dispatch
import Signal, receiver``; :meth:`Signal.send_parallel` and
:meth:`Signal.send_parallel_robust` run receivers concurrently on threads and
return the same ordered answer :meth:`Signal.send` would.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from .dispatcher import Signal, receiver

__all__ = ["Signal", "__version__", "receiver"]

try:
    __version__ = version("parasignal")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
