"""Letting receivers' contextvars changes flow back to the caller, as Django 6.1 does.

A receiver runs in a copy of the caller's context. Django copies such a
context's changes back when the receivers are done (ticket #36714); when
several receivers ran in copies of their own, only the variables each one
changed may be copied back, or a later receiver that changed nothing would
undo an earlier one's change.
"""

from __future__ import annotations

import contextvars
from typing import Final

__all__ = ["copy_back", "copy_back_all"]

_MISSING: Final = object()


def copy_back(changed: contextvars.Context, base: contextvars.Context) -> None:
    """Set in the current context every variable *changed* holds differently from *base*.

    *changed* must have started as a copy of *base*.
    """
    for var, value in changed.items():
        if base.get(var, _MISSING) is not value:
            var.set(value)


def copy_back_all(changed: contextvars.Context) -> None:
    """Set in the current context every variable whose value differs in *changed*.

    For one context shared by all receivers, compared with the caller's
    current values (what Django's ``_restore_context`` does).
    """
    for var, value in changed.items():
        if var.get(_MISSING) is not value:
            var.set(value)
