"""``parasignal stress``: evidence that a signal and its receivers are thread-safe.

:func:`stress` hammers a :class:`~parasignal.Signal` from many threads at once,
with a tiny :func:`sys.setswitchinterval` so that the interpreter switches
threads as often as it can, and reports what happened: every exception each
receiver raised (grouped, with the first traceback), per-receiver latency,
throughput, violated dispatcher invariants and threads that hung.

For the duration of a run, each receiver connected to the signal is replaced
(through the public ``receivers`` list, under the signal's lock) by a wrapper
that times and records its calls; the originals are put back afterwards. With
``churn``, extra threads connect and disconnect *probe* receivers all along,
and the dispatcher's own guarantees are checked: a probe is called exactly
once by every dispatch that started after it was connected and finished
before its disconnection began, and never by a dispatch that started after
it was disconnected.
"""

from __future__ import annotations

import argparse
import contextlib
import contextvars
import importlib
import itertools
import json
import math
import random
import sys
import threading
import time
import traceback
import weakref
from bisect import bisect_right
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import CancelledError
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final, TextIO

import structlog

from ._inspect import describe_receiver
from .dispatcher import Signal

__all__ = ["METHODS", "StressReport", "add_parser", "stress"]

METHODS: Final = ("send", "send_robust", "send_parallel", "send_parallel_robust")
_MIX: Final = "mix"
_LATENCY_SAMPLES: Final = 200_000  # per receiver; beyond it, reservoir sampling
_JOIN_GRACE_S: Final = 5.0  # how long a thread may overrun the run before it counts as hung
_PROBE_WAIT_S: Final = 0.05  # how long a probe stays connected at most
_VIOLATIONS_SHOWN: Final = 50  # in the text report; --json has them all

# Which stress dispatch (by number) the current thread or context is running.
_current_send: contextvars.ContextVar[int] = contextvars.ContextVar(
    "parasignal_stress_send", default=-1
)


_MISSING: Final = object()


class UsageError(Exception):
    """A bad TARGET, sender or option: reported in one line, exit status 2."""


# -- the report -------------------------------------------------------------------------


@dataclass
class ReceiverStats:
    """Calls and latency of one receiver during the run."""

    receiver: str
    calls: int
    p50_ms: float
    p99_ms: float
    max_ms: float


@dataclass
class ExceptionGroupStats:
    """All exceptions of one type raised by one receiver (or by the dispatch itself)."""

    receiver: str
    type: str
    count: int
    first_traceback: str


@dataclass
class HungThread:
    """A stress thread still running well after the run ended."""

    name: str
    stack: str


@dataclass
class StressReport:
    """What a stress run saw. ``clean`` is the verdict; ``exit_status`` the CLI's."""

    target: str
    method: str
    threads: int
    seconds: float
    churn: bool
    switch_interval: float
    duration_s: float
    sends: int
    receiver_calls: int
    calls_per_second: float
    sends_per_second: float
    receivers: list[ReceiverStats] = field(default_factory=list)
    exceptions: list[ExceptionGroupStats] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    hung_threads: list[HungThread] = field(default_factory=list)
    probes: int = 0
    check_failures: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        """True when no receiver raised, no invariant broke, no check failed and no thread hung."""
        return not (self.exceptions or self.violations or self.hung_threads or self.check_failures)

    @property
    def exit_status(self) -> int:
        """0 when clean, else 1 (the command's exit status)."""
        return 0 if self.clean else 1

    def to_dict(self) -> dict[str, Any]:
        """Return the report as JSON-ready data (what ``--json`` prints)."""
        data = asdict(self)
        data["clean"] = self.clean
        return data

    def format(self) -> str:
        """Return the report as text, for a terminal or a failing test's message."""
        lines = [
            f"parasignal stress {self.target}: {'clean' if self.clean else 'FAILED'}",
            (
                f"  {self.threads} threads x {self.duration_s:.1f} s, method {self.method}, "
                f"switch interval {self.switch_interval:g} s"
                + (f", churn ({self.probes:,} probes)" if self.churn else "")
            ),
            (
                f"  {self.sends:,} sends ({self.sends_per_second:,.0f}/s), "
                f"{self.receiver_calls:,} receiver calls ({self.calls_per_second:,.0f}/s)"
            ),
            "",
            "  receiver latency:",
        ]
        width = max([len(r.receiver) for r in self.receivers] + [8])
        lines.append(
            f"    {'receiver':<{width}}  {'calls':>9}  {'p50 ms':>8}  {'p99 ms':>8}  {'max ms':>8}"
        )
        lines.extend(
            f"    {r.receiver:<{width}}  {r.calls:>9,}  {r.p50_ms:>8.3f}  "
            f"{r.p99_ms:>8.3f}  {r.max_ms:>8.3f}"
            for r in self.receivers
        )
        if self.exceptions:
            lines += ["", "  exceptions:"]
            for group in self.exceptions:
                lines.append(f"    {group.count:,} x {group.type} in {group.receiver}; first:")
                lines.extend(
                    "      " + line for line in group.first_traceback.rstrip().splitlines()
                )
        if self.violations:
            lines += ["", f"  invariant violations ({len(self.violations)}):"]
            shown = _VIOLATIONS_SHOWN
            lines.extend(f"    {v}" for v in self.violations[:shown])
            if len(self.violations) > shown:
                lines.append(f"    ... and {len(self.violations) - shown} more")
        if self.check_failures:
            lines += ["", f"  your check failed ({len(self.check_failures)}):"]
            lines.extend(f"    {failure}" for failure in self.check_failures[:_VIOLATIONS_SHOWN])
            more = len(self.check_failures) - _VIOLATIONS_SHOWN
            if more > 0:
                lines.append(f"    ... and {more} more")
        if self.hung_threads:
            lines += ["", "  hung threads:"]
            for hung in self.hung_threads:
                lines.append(f"    {hung.name}:")
                lines.extend("      " + line for line in hung.stack.rstrip().splitlines())
        return "\n".join(lines) + "\n"


# -- recording ----------------------------------------------------------------------


class _Recorder:
    """Exceptions from every source, grouped by (receiver, type), first traceback kept."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # guards _groups
        self._groups: dict[tuple[str, str], list[Any]] = {}

    def record(self, where: str, exc: BaseException) -> None:
        key = (where, f"{type(exc).__module__}.{type(exc).__qualname__}".removeprefix("builtins."))
        with self._lock:
            group = self._groups.get(key)
            if group is not None:
                group[0] += 1
                return
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        with self._lock:
            group = self._groups.setdefault(key, [0, text])
            group[0] += 1

    def groups(self) -> list[ExceptionGroupStats]:
        with self._lock:
            return [
                ExceptionGroupStats(where, kind, count, text)
                for (where, kind), (count, text) in sorted(self._groups.items())
            ]


class _Timed:
    """Stands in for one receiver during the run: calls it, timing and recording."""

    def __init__(self, receiver: Callable[..., Any], recorder: _Recorder) -> None:
        self.receiver = receiver
        # Events and inspect.signature() see the receiver, not this wrapper.
        self.__wrapped__ = receiver
        self.name = describe_receiver(receiver)
        self._recorder = recorder
        self.latencies: list[float] = []
        self.calls = itertools.count()
        self._random = random.Random(hash(self.name))  # noqa: S311 - sampling, not security

    def __call__(self, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return self.receiver(**kwargs)
        except BaseException as exc:
            self._failed(exc)
            raise
        finally:
            self._sample((time.perf_counter() - started) * 1000.0)

    def _failed(self, exc: BaseException) -> None:
        # Mark it, so the thread that sees it propagate does not count it twice.
        with contextlib.suppress(AttributeError, TypeError):
            exc._parasignal_stress_seen = True  # type: ignore[attr-defined]
        self._recorder.record(self.name, exc)

    def _sample(self, ms: float) -> None:
        # list.append and next() are atomic under the GIL; the reservoir
        # index may race, which only perturbs which samples are kept.
        seen = next(self.calls)
        if seen < _LATENCY_SAMPLES:
            self.latencies.append(ms)
        else:
            slot = self._random.randrange(seen + 1)
            if slot < _LATENCY_SAMPLES:
                self.latencies[slot] = ms

    def stats(self) -> ReceiverStats:
        calls = _peek(self.calls)
        samples = sorted(self.latencies)
        if not samples:
            return ReceiverStats(self.name, calls, 0.0, 0.0, 0.0)
        return ReceiverStats(
            self.name,
            calls,
            _percentile(samples, 0.50),
            _percentile(samples, 0.99),
            samples[-1],
        )


def _peek(counter: itertools.count[int]) -> int:
    """Return the next number *counter* would give: how many it has given so far."""
    # itertools.count has no public peek, but next() on it is atomic under
    # the GIL, which makes it the cheapest shared counter; its repr is "count(N)".
    return int(repr(counter)[6:-1])


class _TimedAsync(_Timed):
    """A _Timed for a coroutine-function receiver: times and records the await."""

    async def __call__(self, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return await self.receiver(**kwargs)
        except BaseException as exc:
            self._failed(exc)
            raise
        finally:
            self._sample((time.perf_counter() - started) * 1000.0)


def _percentile(ordered: Sequence[float], fraction: float) -> float:
    return ordered[min(len(ordered) - 1, math.ceil(fraction * len(ordered)) - 1)]


class _Probe:
    """A receiver connected and disconnected during the run, to check the dispatcher."""

    __slots__ = (
        "__weakref__",  # connected weakly, like most receivers
        "calls",
        "connected_at",
        "disconnect_started",
        "disconnected_at",
        "name",
    )

    def __init__(self, name: str) -> None:
        self.name = name
        self.calls: list[int] = []  # stress dispatch numbers; list.append is atomic
        self.connected_at = math.inf
        self.disconnect_started = math.inf
        self.disconnected_at = math.inf

    def __call__(self, **_kwargs: Any) -> None:
        self.calls.append(_current_send.get())


@dataclass
class _SendLog:
    """When each stress dispatch started and ended, on the logical clock."""

    starts: list[int] = field(default_factory=list)
    ends: list[int] = field(default_factory=list)
    failed: list[bool] = field(default_factory=list)


# -- the run ------------------------------------------------------------------------


def stress(
    signal: Signal,
    *,
    threads: int = 8,
    seconds: float = 10.0,
    method: str = _MIX,
    kwargs: Mapping[str, Any] | None = None,
    sender: object = None,
    switch_interval: float = 1e-6,
    churn: bool = False,
    target: str | None = None,
    progress: TextIO | None = None,
    check: Callable[[], object] | None = None,
    check_every: float | None = None,
) -> StressReport:
    """Dispatch *signal* from *threads* threads for *seconds*; return what happened.

    *method* is one of ``send``, ``send_robust``, ``send_parallel``,
    ``send_parallel_robust``, or ``mix`` (each dispatch picks one at random).
    Receivers get ``sender`` and the named arguments in *kwargs*. The switch
    interval is set to *switch_interval* for the run and restored afterwards.
    With *churn*, probe receivers are connected and disconnected concurrently
    and the dispatcher's invariants checked (see the module docstring). With
    *progress* (a text stream), a status line is rewritten there twice a
    second.

    *check* is your own invariant: a callable taking no arguments, called
    once after the run (the receivers are back in place by then) and, with
    *check_every* seconds, also periodically while it runs, from a thread of
    its own (so it sees the receivers' shared state mid-flight: make it
    tolerate that). An ``AssertionError`` it raises, or a ``False`` it
    returns, fails the report with its message (``check_failures``); any
    other exception too, with its type. A lost update, which raises nothing
    in any receiver, is caught this way (see the README).

    The signal's receivers are wrapped during the run and restored after it,
    even if it fails. Threads start together on a barrier; a thread still
    running 5 seconds after the end is reported as hung (with its stack) and
    left behind as a daemon thread. Raises :class:`TypeError` or
    :class:`ValueError` for bad arguments. Not meant to run twice at once on
    one signal.
    """
    _check_arguments(signal, threads, seconds, method, switch_interval)
    _check_check(check, check_every)
    run = _Run(signal, method, dict(kwargs or {}), sender, threads, churn=churn)
    duration = run.run(seconds, switch_interval, progress, check=check, check_every=check_every)
    total_calls = sum(s.calls for s in run.stats)
    return StressReport(
        target=target or signal._display_name(),
        method=method,
        threads=threads,
        seconds=seconds,
        churn=churn,
        switch_interval=switch_interval,
        duration_s=duration,
        sends=len(run.log.starts),
        receiver_calls=total_calls,
        calls_per_second=total_calls / duration if duration > 0 else 0.0,
        sends_per_second=len(run.log.starts) / duration if duration > 0 else 0.0,
        receivers=run.stats,
        exceptions=run.recorder.groups(),
        violations=run.violations,
        hung_threads=run.hung,
        probes=len(run.probes),
        check_failures=run.check_failures,
    )


class _Run:
    """The threads and shared state of one stress run."""

    def __init__(
        self,
        signal: Signal,
        method: str,
        named: dict[str, Any],
        sender: object,
        threads: int,
        *,
        churn: bool,
    ) -> None:
        self.signal = signal
        self.method = method
        self.named = named
        self.sender = sender
        self.threads = threads
        self.churners = max(2, threads // 2) if churn else 0
        self.recorder = _Recorder()
        self.clock = itertools.count(1)  # the logical clock ordering every event
        self.sends = itertools.count()  # numbers dispatches
        self.completed = itertools.count()  # counts finished dispatches
        self.log = _SendLog()
        self.log_lock = threading.Lock()  # guards log
        self.stop = threading.Event()
        self.barrier = threading.Barrier(threads + self.churners + 1)
        self.probes: list[_Probe] = []
        self.violations: list[str] = []
        self.check_failures: list[str] = []  # appended to by the periodic checker, then this
        self.stats: list[ReceiverStats] = []
        self.hung: list[HungThread] = []

    def run(
        self,
        seconds: float,
        switch_interval: float,
        progress: TextIO | None,
        *,
        check: Callable[[], object] | None = None,
        check_every: float | None = None,
    ) -> float:
        """Run every thread for *seconds*; return the measured duration."""
        wrappers, originals = _wrap(self.signal, self.recorder)
        checker = None
        if check is not None and check_every is not None:
            checker = threading.Thread(
                target=self.check_loop, args=(check, check_every), name="stress-check", daemon=True
            )
        workers = [
            threading.Thread(target=self.dispatch_loop, args=(i,), name=f"stress-send-{i}")
            for i in range(self.threads)
        ] + [
            threading.Thread(target=self.churn_loop, args=(i,), name=f"stress-churn-{i}")
            for i in range(self.churners)
        ]
        previous_interval = sys.getswitchinterval()
        started = time.monotonic()
        try:
            sys.setswitchinterval(switch_interval)
            for worker in workers:
                worker.daemon = True  # a hung one must not block interpreter exit
                worker.start()
            self.barrier.wait()
            started = time.monotonic()
            if checker is not None:
                checker.start()
            _wait_out(self.stop, started + seconds, self.sends, self.recorder, progress)
            self.stop.set()
            self.hung = _join(workers, _JOIN_GRACE_S)
        finally:
            self.stop.set()
            self.barrier.abort()
            sys.setswitchinterval(previous_interval)
            _unwrap(self.signal, originals)
        duration = time.monotonic() - started
        if checker is not None:
            checker.join(_JOIN_GRACE_S)
        if check is not None:
            failure = _run_check(check, "after the run")
            if failure is not None:
                self.check_failures.append(failure)
        self.stats = [w.stats() for w in wrappers]
        if self.churners:
            self.violations.extend(_check_probes(self.probes, self.log))
            receivers = self.signal.receivers
            self.violations.extend(
                f"{p.name}: still connected after the run"
                for p in self.probes
                if any(_deref(entry[1]) is p for entry in receivers)
            )
        return duration

    def check_loop(self, check: Callable[[], object], every: float) -> None:
        """Call the user's check every *every* seconds until the run stops."""
        while not self.stop.wait(every):
            failure = _run_check(check, "during the run")
            if failure is not None:
                self.check_failures.append(failure)  # list.append is atomic under the GIL

    def dispatch_loop(self, seed: int) -> None:
        """Dispatch until stopped, recording when each dispatch ran and how it ended."""
        pick = random.Random(seed)  # noqa: S311 - choosing methods, not secrets
        try:
            self.barrier.wait()
        except threading.BrokenBarrierError:
            return
        while not self.stop.is_set():
            name = pick.choice(METHODS) if self.method == _MIX else self.method
            number = next(self.sends)
            token = _current_send.set(number)
            started = next(self.clock)
            failed = False
            try:
                result = getattr(self.signal, name)(self.sender, **self.named)
            except BaseException as exc:  # noqa: BLE001 - everything is reported
                failed = True
                if not getattr(exc, "_parasignal_stress_seen", False):
                    self.recorder.record(f"<{name}>", exc)
            else:
                # Robust methods answer a deadline or a cancellation with
                # TimeoutError / CancelledError responses: failures too.
                failed = _check_result(result, name, self.violations, self.recorder)
            finally:
                _current_send.reset(token)
            self._log(number, started, next(self.clock), failed=failed)
            next(self.completed)

    def _log(self, number: int, started: int, ended: int, *, failed: bool) -> None:
        log = self.log
        with self.log_lock:
            # Dispatches finish out of order: make room, marking the gaps as
            # failed so that the probe checks skip them until filled in.
            while len(log.starts) <= number:
                log.starts.append(0)
                log.ends.append(0)
                log.failed.append(True)
            log.starts[number], log.ends[number], log.failed[number] = started, ended, failed

    def churn_loop(self, index: int) -> None:
        """Connect and disconnect probes until stopped, noting when on the clock."""
        try:
            self.barrier.wait()
        except threading.BrokenBarrierError:
            return
        try:
            self._churn(index)
        except Exception as exc:  # noqa: BLE001 - a failing connect is a finding, not a crash
            self.recorder.record("<connect/disconnect>", exc)

    def _churn(self, index: int) -> None:
        for serial in itertools.count():
            if self.stop.is_set():
                return
            probe = _Probe(f"probe-{index}-{serial}")
            self.probes.append(probe)
            self.signal.connect(probe)
            probe.connected_at = next(self.clock)
            # Stay connected while a few dispatches complete, or briefly.
            seen = _peek(self.completed)
            deadline = time.monotonic() + _PROBE_WAIT_S
            while _peek(self.completed) < seen + 3 and time.monotonic() < deadline:
                if self.stop.wait(0.0005):
                    break
            probe.disconnect_started = next(self.clock)
            if not self.signal.disconnect(probe):
                self.violations.append(
                    f"{probe.name}: disconnect() returned False while it was connected"
                )
            probe.disconnected_at = next(self.clock)


def _check_arguments(
    signal: object, threads: int, seconds: float, method: str, switch_interval: float
) -> None:
    if not isinstance(signal, Signal):
        raise TypeError(f"stress() needs a parasignal.Signal, not {signal!r}.")
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be an int of at least 1, not {threads!r}.")
    if not isinstance(seconds, (int, float)) or not seconds > 0 or math.isinf(seconds):
        raise ValueError(f"seconds must be a positive finite number, not {seconds!r}.")
    if method not in (*METHODS, _MIX):
        choices = ", ".join((*METHODS, _MIX))
        raise ValueError(f"method must be one of {choices}, not {method!r}.")
    if not isinstance(switch_interval, (int, float)) or not switch_interval > 0:
        raise ValueError(f"switch_interval must be a positive number, not {switch_interval!r}.")


def _check_check(check: object, check_every: object) -> None:
    if check is not None and not callable(check):
        raise TypeError(f"check must be a callable taking no arguments, not {check!r}.")
    if check_every is None:
        return
    if check is None:
        raise ValueError(f"check_every={check_every!r} needs a check to call.")
    if (
        isinstance(check_every, bool)
        or not isinstance(check_every, (int, float))
        or not check_every > 0
        or math.isinf(check_every)
    ):
        raise ValueError(
            f"check_every must be a positive finite number of seconds, not {check_every!r}."
        )


def _run_check(check: Callable[[], object], when: str) -> str | None:
    """Call the user's check; return what failed, or None."""
    name = describe_receiver(check)
    try:
        result = check()
    except AssertionError as exc:
        return f"{name} failed {when}: {exc or 'AssertionError'}"
    except Exception as exc:  # noqa: BLE001 - any failure of the user's check is reported
        return f"{name} raised {type(exc).__name__} {when}: {exc}"
    if result is False:
        return f"{name} returned False {when}"
    return None


def _wrap(signal: Signal, recorder: _Recorder) -> tuple[list[_Timed], list[Any]]:
    """Put a _Timed in place of every live receiver; return them and the original list."""
    wrappers: list[_Timed] = []
    with signal.lock:
        originals = signal.receivers
        wrapped = []
        for key, ref, sender_ref, is_async in originals:
            receiver = _deref(ref)
            if receiver is None:
                continue
            timed = (_TimedAsync if is_async else _Timed)(receiver, recorder)
            wrappers.append(timed)
            wrapped.append((key, timed, sender_ref, is_async))
        signal.receivers = wrapped
        signal.sender_receivers_cache.clear()
    return wrappers, originals


def _unwrap(signal: Signal, originals: list[Any]) -> None:
    """Put the original receivers back, keeping what the run's receivers connected."""
    with signal.lock:
        restored = list(originals)
        known = {entry[0] for entry in originals}
        restored.extend(
            entry
            for entry in signal.receivers
            if entry[0] not in known
            and not isinstance(entry[1], _Timed)
            and not isinstance(_deref(entry[1]), _Probe)
        )
        signal.receivers = restored
        signal.sender_receivers_cache.clear()


def _deref(ref: Any) -> Any:
    return ref() if isinstance(ref, weakref.ReferenceType) else ref


def _check_result(result: Any, method: str, violations: list[str], recorder: _Recorder) -> bool:
    """Check one answer; return True if it reports receivers that did not finish."""
    receivers = [r for r, _ in result]
    if len({id(r) for r in receivers}) != len(receivers):
        names = ", ".join(describe_receiver(r) for r in receivers)
        violations.append(f"{method}() returned a receiver twice: {names}")
    unfinished = False
    for receiver, response in result:
        if isinstance(response, (TimeoutError, CancelledError)) and not getattr(
            response, "_parasignal_stress_seen", False
        ):
            if not isinstance(receiver, _Probe):  # the tool's own: not the user's failure
                recorder.record(describe_receiver(receiver), response)
            unfinished = True
    return unfinished


def _check_probes(probes: Sequence[_Probe], log: _SendLog) -> list[str]:
    """Check each probe against the dispatches that ran while it was (dis)connected."""
    found: list[str] = []
    order = sorted(range(len(log.starts)), key=log.starts.__getitem__)
    starts = [log.starts[i] for i in order]
    for probe in probes:
        # A receiver that sends again from inside (re-entrancy) makes one
        # stress dispatch call a probe more than once: that is allowed.
        counts = set(probe.calls)
        found.extend(
            f"{probe.name}: called by dispatch #{number}, which started after disconnect() returned"
            for number in sorted(counts)
            if 0 <= number < len(log.starts) and log.starts[number] > probe.disconnected_at
        )
        # Every dispatch entirely inside the connected window must call it,
        # unless an earlier receiver raised and ended that dispatch.
        first = bisect_right(starts, probe.connected_at)
        for position in range(first, len(starts)):
            if starts[position] >= probe.disconnect_started:
                break
            number = order[position]
            inside = log.ends[number] < probe.disconnect_started and not log.failed[number]
            if inside and number not in counts:
                found.append(
                    f"{probe.name}: not called by dispatch #{number}, "
                    "which ran entirely while it was connected"
                )
    return found


def _wait_out(
    stop: threading.Event,
    deadline: float,
    sends: itertools.count[int],
    recorder: _Recorder,
    progress: TextIO | None,
) -> None:
    started = time.monotonic()
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        stop.wait(min(0.5, left))
        if progress is not None:
            elapsed = max(time.monotonic() - started, 1e-9)
            done = _peek(sends)
            errors = sum(g.count for g in recorder.groups())
            progress.write(
                f"\r  {done / elapsed:,.0f} sends/s, {errors:,} errors, "
                f"{max(0.0, deadline - time.monotonic()):.0f} s left   "
            )
            progress.flush()
    if progress is not None:
        progress.write("\r" + " " * 60 + "\r")
        progress.flush()


def _join(workers: Sequence[threading.Thread], grace: float) -> list[HungThread]:
    deadline = time.monotonic() + grace
    for worker in workers:
        worker.join(max(0.0, deadline - time.monotonic()))
    frames = sys._current_frames()
    hung = []
    for worker in workers:
        if worker.is_alive() and worker.ident is not None:
            frame = frames.get(worker.ident)
            stack = "".join(traceback.format_stack(frame)) if frame is not None else ""
            hung.append(HungThread(worker.name, stack))
    return hung


# -- the command line -------------------------------------------------------------------


def _load(spec: str, what: str) -> object:
    """Import ``package.module:attribute`` (the attribute may be dotted)."""
    module_name, colon, attribute = spec.partition(":")
    if not colon or not module_name or not attribute:
        raise UsageError(f"{what} must look like package.module:attribute, not {spec!r}.")
    cwd = str(Path.cwd())
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UsageError(f"cannot import module {module_name!r} for {what}: {exc}") from exc
    except (Exception, SystemExit) as exc:  # a module that fails to import: a usage error
        kind = type(exc).__name__
        raise UsageError(f"importing {module_name!r} for {what} raised {kind}: {exc}") from exc
    value: object = module
    for part in attribute.split("."):
        value = getattr(value, part, _MISSING)
        if value is _MISSING:
            raise UsageError(f"{module_name!r} has no attribute {attribute!r} ({what}).")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1, not {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, not {text!r}") from None
    if not value > 0 or math.isinf(value):
        raise argparse.ArgumentTypeError(f"expected a positive finite number, not {text}")
    return value


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON ({exc.msg}): {text!r}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, not {text!r}")
    return value


def add_parser(commands: Any) -> None:
    """Add the ``stress`` subcommand to the ``parasignal`` command line."""
    parser = commands.add_parser(
        "stress",
        help="hammer a signal from many threads and report what broke",
        description=(
            "Dispatch a Signal from many threads at once, with a tiny switch interval, and "
            "report every exception its receivers raised, their latency, and any broken "
            "dispatcher invariant or hung thread. Exit status: 0 clean, 1 something failed, "
            "2 usage error."
        ),
    )
    parser.add_argument("target", metavar="TARGET", help="the Signal, as package.module:attribute")
    parser.add_argument("--threads", type=_positive_int, default=8, help="dispatching threads")
    parser.add_argument("--seconds", type=_positive_float, default=10.0, help="run time")
    parser.add_argument("--method", choices=(*METHODS, _MIX), default=_MIX)
    parser.add_argument(
        "--kwargs", type=_json_object, default={}, metavar="JSON", help="named arguments"
    )
    parser.add_argument("--sender", metavar="module:attribute", help="the sender (default None)")
    parser.add_argument("--switch-interval", type=_positive_float, default=1e-6, metavar="SECONDS")
    parser.add_argument(
        "--churn", action="store_true", help="also connect and disconnect probe receivers"
    )
    parser.add_argument(
        "--check",
        metavar="module:function",
        help="your invariant: called after the run; an AssertionError or False fails it",
    )
    parser.add_argument(
        "--check-every",
        type=_positive_float,
        metavar="SECONDS",
        help="also call --check this often during the run",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(run=_run)


def _load_signal(spec: str) -> Signal:
    signal = _load(spec, "TARGET")
    if not isinstance(signal, Signal):
        kind = type(signal).__name__
        raise UsageError(f"TARGET {spec!r} is a {kind}, not a parasignal Signal.")
    return signal


def _load_check(spec: str | None, every: float | None) -> Callable[[], object] | None:
    if spec is None:
        if every is not None:
            raise UsageError("--check-every needs --check.")
        return None
    check = _load(spec, "--check")
    if not callable(check):
        raise UsageError(f"--check {spec!r} is a {type(check).__name__}, not a function.")
    return check


def _check_kwargs(kwargs: Mapping[str, Any]) -> None:
    reserved = sorted({"signal", "sender"} & set(kwargs))
    if reserved:
        names = " and ".join(repr(k) for k in reserved)
        msg = f"--kwargs cannot name {names}: every receiver gets those already."
        raise UsageError(msg)


def _run(args: argparse.Namespace) -> int:
    try:
        signal = _load_signal(args.target)
        sender = None if args.sender is None else _load(args.sender, "--sender")
        _check_kwargs(args.kwargs)
        check = _load_check(args.check, args.check_every)
    except UsageError as exc:
        print(f"parasignal stress: error: {exc}", file=sys.stderr)  # noqa: T201
        return 2
    # The report groups every receiver failure; parasignal's own
    # signal.receiver_failed events (one per failure, with a traceback) would
    # bury it, so this command, an application in its own right, drops them
    # while it runs.
    saved = structlog.get_config()
    structlog.configure(processors=[_drop_event])
    try:
        report = _stress_from_args(signal, sender, check, args)
    finally:
        structlog.configure(**saved)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))  # noqa: T201
    else:
        print(report.format(), end="")  # noqa: T201
    return report.exit_status


def _drop_event(_logger: object, _method: str, _event: Any) -> Any:
    raise structlog.DropEvent


def _stress_from_args(
    signal: Signal, sender: object, check: Any, args: argparse.Namespace
) -> StressReport:
    return stress(
        signal,
        threads=args.threads,
        seconds=args.seconds,
        method=args.method,
        kwargs=args.kwargs,
        sender=sender,
        switch_interval=args.switch_interval,
        churn=args.churn,
        target=args.target,
        progress=sys.stderr if sys.stderr.isatty() else None,
        check=check,
        check_every=args.check_every,
    )
