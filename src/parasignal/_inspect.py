"""Facts about receivers, senders and signals: keyword acceptance, names, safe reprs.

Nothing here keeps a reference to the object it inspects, so checking a
weakly connected receiver never keeps it alive (Django caches signatures in an
``lru_cache`` keyed by the function, which does).
"""

from __future__ import annotations

import functools
import inspect
import sys
import types
from types import FrameType
from typing import Any

__all__ = [
    "accepts_kwargs",
    "definition_site",
    "describe_receiver",
    "describe_sender",
    "find_module_name",
    "is_coroutine_function",
]

_CO_VARKEYWORDS = inspect.CO_VARKEYWORDS
_CO_COROUTINE = inspect.CO_COROUTINE
# What inspect.markcoroutinefunction() (Python 3.12+) marks a function with.
_COROUTINE_MARK = getattr(inspect, "_is_coroutine_mark", None)
_SENDER_REPR_LIMIT = 200


def _plain_function(obj: object) -> types.FunctionType | None:
    """Return the function whose code object alone decides its signature.

    That holds for a Python function or a bound method of one, as long as
    nothing (``functools.wraps``' ``__wrapped__``, an explicit
    ``__signature__``) tells :func:`inspect.signature` to look elsewhere.
    """
    func = obj.__func__ if type(obj) is types.MethodType else obj
    if type(func) is not types.FunctionType:
        return None
    if getattr(func, "__wrapped__", None) is not None:
        return None
    if getattr(func, "__signature__", None) is not None:
        return None
    return func


def accepts_kwargs(receiver: object) -> bool:
    """Tell whether *receiver* can be called with arbitrary keyword arguments.

    Plain functions and methods are answered from their code flags in
    constant time (connecting many receivers must stay cheap); anything else
    goes through :func:`inspect.signature`, as Django's check does. A callable
    whose signature cannot be read (some builtins) is given the benefit of
    the doubt, since nothing proves it would fail.
    """
    func = _plain_function(receiver)
    if func is not None:
        return bool(func.__code__.co_flags & _CO_VARKEYWORDS)
    try:
        parameters = inspect.signature(receiver).parameters.values()  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return True
    return any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)


def is_coroutine_function(receiver: object) -> bool:
    """Answer ``inspect.iscoroutinefunction(receiver)``, as Django's ``connect`` asks it.

    A plain function, or a method bound to one, is answered from its code
    flags and ``markcoroutinefunction``'s mark, in constant time: that is
    what :func:`inspect.iscoroutinefunction` concludes for them, at about a
    third of its cost (it was half of what ``connect`` cost). Anything else
    is asked of :func:`inspect.iscoroutinefunction` itself.
    """
    func = receiver.__func__ if type(receiver) is types.MethodType else receiver
    if type(func) is not types.FunctionType:
        return inspect.iscoroutinefunction(receiver)
    if func.__code__.co_flags & _CO_COROUTINE:
        return True
    return _COROUTINE_MARK is not None and (
        getattr(func, "_is_coroutine_marker", None) is _COROUTINE_MARK
    )


def describe_receiver(receiver: object) -> str:
    """Return a stable qualified name for *receiver*, for logs and messages.

    Works for functions, bound methods, lambdas, ``functools.partial``
    objects, classes and callable instances; never raises.
    """
    try:
        return _describe(receiver)
    except Exception:  # noqa: BLE001 - a name is best effort, never a new failure
        return f"<{type(receiver).__qualname__} object>"


def _describe(receiver: Any) -> str:
    # Plain functions, most receivers, are named by their qualified name at
    # once: none of the cases below applies to them.
    if type(receiver) is not types.FunctionType:
        wrapped = getattr(receiver, "__wrapped__", None)
        if wrapped is not None and not isinstance(receiver, types.MethodType):
            # A callable object standing in for another (as the stress tool's
            # timing wrapper does) is named after what it wraps.
            return _describe(wrapped)
        if isinstance(receiver, functools.partial):
            return f"functools.partial({_describe(receiver.func)})"
        if isinstance(receiver, (types.MethodType, types.BuiltinMethodType)):
            owner = getattr(receiver, "__self__", None)
            func = getattr(receiver, "__func__", receiver)
            if owner is not None and not isinstance(owner, types.ModuleType):
                owner_type = owner if isinstance(owner, type) else type(owner)
                name = getattr(func, "__name__", "?")
                return f"{owner_type.__module__}.{owner_type.__qualname__}.{name}"
    qualname = getattr(receiver, "__qualname__", None)
    if isinstance(qualname, str):
        module = getattr(receiver, "__module__", None)
        return f"{module}.{qualname}" if module else qualname
    # A callable instance: name it by its class.
    cls = type(receiver)
    return f"{cls.__module__}.{cls.__qualname__}"


def describe_sender(sender: object) -> str:
    """Return ``repr(sender)`` cut to 200 characters; never raises."""
    try:
        text = repr(sender)
    except Exception:  # noqa: BLE001 - a broken __repr__ must not hide the real failure
        return f"<{type(sender).__qualname__} object (repr failed)>"
    if len(text) > _SENDER_REPR_LIMIT:
        return text[: _SENDER_REPR_LIMIT - 3] + "..."
    return text


def definition_site(obj: object) -> tuple[str, int]:
    """Where *obj* is being constructed: module and line of the first frame outside its __init__s.

    Called from *obj*'s own ``__init__``; a subclass's ``__init__`` calling
    ``super().__init__`` is looked through.
    """
    frame: FrameType | None = sys._getframe(2)
    while frame is not None and frame.f_code.co_name == "__init__":
        if frame.f_locals.get("self") is not obj:
            break
        frame = frame.f_back
    if frame is None:
        return ("<unknown>", 0)
    return (str(frame.f_globals.get("__name__", "<unknown>")), frame.f_lineno)


def find_module_name(obj: object, module_name: str) -> str | None:
    """Return ``"module.attribute"`` for the first attribute of the module bound to *obj*.

    The first is the definition: module dicts keep insertion order. None if
    the module is not imported or binds no attribute to *obj* (yet: it may
    still be importing).
    """
    module = sys.modules.get(module_name)
    for attribute, value in list(vars(module).items()) if module is not None else ():
        if value is obj:
            return f"{module_name}.{attribute}"
    return None
