"""The typed results of a benchmark run: one record per section, and the whole run.

The cases (``cases_sequential``, ``cases_parallel``) produce these records,
the report and the chart read them, and ``Results.to_json`` gives the raw
figures written by ``--json``: every sample, keyed as ``impl/receivers/...``.
Sample tuples are in the order taken; mappings keep the order cases were set up.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final, Literal, NamedTuple

from config import EXTRAPOLATE_TO, Config

Samples = tuple[float, ...]
SendArgs = Literal["none", "payload"]  # send(None), or send(None, payload=1)
SEND_ARGS: Final[tuple[SendArgs, ...]] = ("none", "payload")
ReceiverKind = Literal["sync", "async"]
RECEIVER_KINDS: Final[tuple[ReceiverKind, ...]] = ("sync", "async")


@dataclass(frozen=True)
class Timing:
    """One statement timed by a MicroTimer: loops per sample, and µs per call of each sample."""

    loops: int
    samples_us: Samples


@dataclass(frozen=True)
class Machine:
    """Where the run took place, and which versions it measured (None: not installed)."""

    platform: str
    machine: str
    cpu_count: int | None
    usable_cpus: int | None
    python: str
    gil: bool | None  # None before Python 3.13 (no sys._is_gil_enabled)
    parasignal: str
    django: str | None
    peers: Mapping[str, str]  # versions of the installed peers (and of matplotlib)
    matplotlib: str | None
    mode: str  # the Config's name
    load_average: tuple[float, float, float] | None  # at the start of the run


# -- 1. send() -----------------------------------------------------------------


class SendKey(NamedTuple):
    impl: str  # "parasignal", "django", or a peer's module name
    receivers: int
    args: SendArgs


@dataclass(frozen=True)
class SendResult:
    """µs per dispatch; each group of a receiver count and arguments sampled together."""

    timings: Mapping[SendKey, Timing]

    def get(self, impl: str, receivers: int, args: SendArgs = "none") -> Timing | None:
        return self.timings.get(SendKey(impl, receivers, args))

    def to_json(self) -> dict[str, Any]:
        return {f"{k.impl}/{k.receivers}/{k.args}": asdict(t) for k, t in self.timings.items()}


# -- 2. connect() --------------------------------------------------------------


class ConnectKey(NamedTuple):
    impl: str  # "parasignal" or "django"
    receivers: int


@dataclass(frozen=True)
class QuadraticFit:
    """``t = a*n + b*n**2``, in seconds."""

    a_s_per_n: float
    b_s_per_n2: float


@dataclass(frozen=True)
class ConnectResult:
    """Seconds to connect N receivers to a fresh signal, and Django's extrapolation."""

    samples_s: Mapping[ConnectKey, Samples]
    django_fit: QuadraticFit | None  # None without Django
    django_extrapolated_s: float | None  # the fit at EXTRAPOLATE_TO receivers

    def get(self, impl: str, receivers: int) -> Samples | None:
        return self.samples_s.get(ConnectKey(impl, receivers))

    def to_json(self) -> dict[str, Any]:
        result: dict[str, Any] = {
            "samples_s": {f"{k.impl}/{k.receivers}": v for k, v in self.samples_s.items()}
        }
        if self.django_fit is not None:
            result["django_fit"] = asdict(self.django_fit)
            result[f"django/{EXTRAPOLATE_TO}/extrapolated_s"] = self.django_extrapolated_s
        return result


# -- 3. memory -----------------------------------------------------------------


@dataclass(frozen=True)
class MemorySamples:
    """tracemalloc bytes per receiver, after connecting and after one send(None) too."""

    connect: Samples
    connect_send: Samples


@dataclass(frozen=True)
class MemoryResult:
    n: int  # receivers connected
    samples_bytes: Mapping[str, MemorySamples]  # by implementation


# -- 4. parallel fan-out -------------------------------------------------------


class FanoutKey(NamedTuple):
    dispatcher: str  # e.g. "parasignal/default", "threadpool", "django/send"
    receivers: int


@dataclass(frozen=True)
class WallTimes:
    ideal_ms: float  # if every receiver had a thread of its own when possible
    samples_ms: Samples


@dataclass(frozen=True)
class FanoutResult:
    """Wall time per dispatch on receivers that sleep."""

    cases: Mapping[FanoutKey, WallTimes]

    def get(self, dispatcher: str, receivers: int) -> WallTimes | None:
        return self.cases.get(FanoutKey(dispatcher, receivers))

    def to_json(self) -> dict[str, Any]:
        return {f"{k.dispatcher}/{k.receivers}": asdict(v) for k, v in self.cases.items()}


# -- 5. overhead ---------------------------------------------------------------


@dataclass(frozen=True)
class OverheadResult:
    """µs per call on no-op receivers, by case name (e.g. ``parasignal/send_parallel/100``)."""

    timings: Mapping[str, Timing]


# -- 6. saturation -------------------------------------------------------------


@dataclass(frozen=True)
class Saturation:
    """Memory while SATURATION_PENDING receivers, split among *callers*, wait for workers."""

    callers: int
    pending: int
    bytes_during: int
    bytes_peak: int
    worker_threads: int


@dataclass(frozen=True)
class SaturationResult:
    runs: tuple[Saturation, ...]

    def to_json(self) -> dict[str, Any]:
        return {str(run.callers): asdict(run) for run in self.runs}


# -- 7. scale ------------------------------------------------------------------


@dataclass(frozen=True)
class ScaleProbe:
    """Connect time at PEER_CONNECT_PROBE receivers and half as many, which decides the rest."""

    probe_s: float
    half_probe_s: float
    growth: float  # probe_s / half_probe_s


@dataclass(frozen=True)
class ScaleMeasured(ScaleProbe):
    connect_s: Samples  # connecting EXTRAPOLATE_TO receivers
    bytes_per_receiver: float


@dataclass(frozen=True)
class ScaleExtrapolated(ScaleProbe):
    extrapolated_s: float  # connect time at EXTRAPOLATE_TO, from the probe
    quadratic: bool  # extrapolated as quadratic (else linear)


@dataclass(frozen=True)
class ScaleResult:
    entries: Mapping[str, ScaleMeasured | ScaleExtrapolated]  # by implementation


# -- 8. asend ------------------------------------------------------------------


class AsendKey(NamedTuple):
    """A dispatch: ``parasignal`` and ``django`` (their asend), or ``parasignal-asend_parallel``.

    Also ``parasignal-send_parallel``, the in-run baseline (sync receivers only).
    """

    dispatcher: str
    receivers: ReceiverKind


@dataclass(frozen=True)
class AsendResult:
    """Wall time of each dispatch in ms."""

    samples_ms: Mapping[AsendKey, Samples]

    def get(self, dispatcher: str, receivers: ReceiverKind) -> Samples | None:
        return self.samples_ms.get(AsendKey(dispatcher, receivers))

    def to_json(self) -> dict[str, Any]:
        return {
            f"{k.dispatcher}/{k.receivers}": {"samples_ms": v} for k, v in self.samples_ms.items()
        }


# -- the whole run -------------------------------------------------------------


@dataclass(frozen=True)
class Results:
    """Everything one run measured."""

    machine: Machine
    config: Config
    run_seconds: float
    send: SendResult
    connect: ConnectResult
    memory: MemoryResult
    fanout: FanoutResult
    overhead: OverheadResult
    saturation: SaturationResult
    asend: AsendResult
    scale: ScaleResult
    chart: Path | None = None  # where the chart was written, if it was

    def to_json(self) -> dict[str, Any]:
        """The raw figures, in the layout ``--json`` has always written."""
        result: dict[str, Any] = {
            "machine": {**asdict(self.machine), "run_seconds": self.run_seconds},
            "config": asdict(self.config),
            "send": self.send.to_json(),
            "connect": self.connect.to_json(),
            "memory": asdict(self.memory),
            "fanout": self.fanout.to_json(),
            "overhead": {name: asdict(t) for name, t in self.overhead.timings.items()},
            "saturation": self.saturation.to_json(),
            "asend": self.asend.to_json(),
            "scale": {name: asdict(entry) for name, entry in self.scale.entries.items()},
        }
        if self.chart is not None:
            result["chart"] = str(self.chart)
        return result
