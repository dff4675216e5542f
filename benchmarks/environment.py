"""What the run can measure and where: Django, the optional peers, matplotlib, the machine.

Every peer is optional (the ``bench`` extra): each loader returns None, or
leaves the peer out, when its library is not installed.
"""

from __future__ import annotations

import importlib
import os
import platform
import sys
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any, NamedTuple

import parasignal
from config import PEER_MODULES, Config
from results import Machine

if TYPE_CHECKING:
    from _common import Receiver, SignalFactory


def load_django() -> tuple[str | None, SignalFactory | None]:
    """Django's version and Signal class, or (None, None) when not installed."""
    try:
        django = importlib.import_module("django")
        dispatch = importlib.import_module("django.dispatch")
    except ImportError:
        return None, None
    signal_class: SignalFactory = dispatch.Signal
    return str(django.get_version()), signal_class


class Peer(NamedTuple):
    """How to drive one peer library with a common vocabulary."""

    key: str
    label: str
    version: str
    new: Callable[[], Any]  # a fresh signal / emitter
    connect: Callable[[Any, Receiver], object]  # connect one receiver, held as the peer does
    send_stmt: str  # timeit statement dispatching once with no payload, using ``send``
    send_attr: str  # the attribute of the signal bound as ``send``


def load_peers() -> tuple[dict[str, Peer], dict[str, str]]:
    """The installed peers (blinker, psygnal, pyee), and the versions of all peers found.

    Returns ``(peers, versions)``; an absent peer is missing from both.
    """
    peers: dict[str, Peer] = {}
    versions: dict[str, str] = {}
    for name in PEER_MODULES:
        try:
            module: Any = importlib.import_module(name)
        except ImportError:
            continue
        versions[name] = package_version(name)
        if name == "blinker":
            peers[name] = Peer(
                name,
                "blinker `Signal.send(None)`",
                versions[name],
                module.Signal,
                lambda signal, r: signal.connect(r),
                "send(None)",
                "send",
            )
        elif name == "psygnal":
            peers[name] = Peer(
                name,
                "psygnal `SignalInstance.emit()`",
                versions[name],
                partial(module.SignalInstance, ()),
                lambda signal, r: signal.connect(r),
                "send()",
                "emit",
            )
        else:
            peers[name] = Peer(
                name,
                "pyee `EventEmitter.emit(event)`",
                versions[name],
                module.EventEmitter,
                lambda emitter, r: emitter.add_listener("order_placed", r),
                "send('order_placed')",
                "emit",
            )
    return peers, versions


def home_impls(django_signal: SignalFactory | None) -> dict[str, Peer]:
    """parasignal and Django in the peers' vocabulary."""

    def connect(signal: Any, receiver: Receiver) -> object:
        return signal.connect(receiver)

    impls = {
        "parasignal": Peer(
            "parasignal",
            "parasignal",
            parasignal.__version__,
            parasignal.Signal,
            connect,
            "send(None)",
            "send",
        )
    }
    if django_signal is not None:
        impls["django"] = Peer("django", "Django", "", django_signal, connect, "send(None)", "send")
    return impls


def load_pyee_executor_emitter() -> Any:
    """pyee's ExecutorEventEmitter class, or None when pyee is absent."""
    try:
        return importlib.import_module("pyee.executor").ExecutorEventEmitter
    except ImportError:
        return None


def package_version(name: str) -> str:
    try:
        return importlib.import_module("importlib.metadata").version(name)  # type: ignore[no-any-return]
    except Exception:  # noqa: BLE001 - a version is only informative
        return "unknown"


def load_matplotlib() -> Any:
    """matplotlib.pyplot with the Agg backend, or None when matplotlib is absent."""
    try:
        matplotlib: Any = importlib.import_module("matplotlib")
    except ImportError:
        return None
    matplotlib.use("Agg")
    return importlib.import_module("matplotlib.pyplot")


def machine_info(
    config: Config, django_version: str | None, peer_versions: dict[str, str]
) -> Machine:
    gil_check = getattr(sys, "_is_gil_enabled", None)
    affinity = getattr(os, "sched_getaffinity", None)
    return Machine(
        platform=platform.platform(),
        machine=platform.machine(),
        cpu_count=os.cpu_count(),
        usable_cpus=len(affinity(0)) if affinity is not None else None,
        python=f"{platform.python_implementation()} {platform.python_version()}",
        gil=None if gil_check is None else bool(gil_check()),
        parasignal=parasignal.__version__,
        django=django_version,
        peers=peer_versions,
        matplotlib=peer_versions.get("matplotlib"),
        mode=config.name,
        load_average=os.getloadavg() if hasattr(os, "getloadavg") else None,
    )
