"""What every benchmark case shares: receivers to connect, timers, and the interleaving.

Every timing is the median of several samples, and the samples of the
implementations compared are taken in alternation (round-robin, with the order
rotated each round), so that a burst of noise on a shared machine hits all
alike. The garbage collector is disabled inside timed regions, as ``timeit``
does.
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import time
import timeit
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from results import Timing

Receiver = Callable[..., Any]
SignalFactory = Callable[[], Any]
T = TypeVar("T")


# -- receivers -----------------------------------------------------------------


def make_positional_noops(n: int) -> list[Receiver]:
    """*n* distinct no-op receivers taking any arguments (blinker, psygnal, pyee)."""

    def factory() -> Receiver:
        def receiver(*args: Any, **kwargs: Any) -> None:
            return None

        return receiver

    return [factory() for _ in range(n)]


def make_noops(n: int) -> list[Receiver]:
    """*n* distinct no-op receiver functions."""

    def factory() -> Receiver:
        def receiver(**kwargs: Any) -> None:
            return None

        return receiver

    return [factory() for _ in range(n)]


def make_sleepers(n: int, seconds: float) -> list[Receiver]:
    """*n* distinct receivers that each sleep *seconds*."""

    def factory() -> Receiver:
        def receiver(**kwargs: Any) -> None:
            time.sleep(seconds)

        return receiver

    return [factory() for _ in range(n)]


def make_async_sleepers(n: int, seconds: float) -> list[Receiver]:
    """*n* distinct coroutine-function receivers that each ``asyncio.sleep(seconds)``."""

    def factory() -> Receiver:
        async def receiver(**kwargs: Any) -> None:
            await asyncio.sleep(seconds)

        return receiver

    return [factory() for _ in range(n)]


def connected(factory: SignalFactory, receivers: Sequence[Receiver]) -> Any:
    """A fresh signal from *factory* with *receivers* weakly connected."""
    signal = factory()
    for receiver in receivers:
        signal.connect(receiver)
    return signal


# -- timing --------------------------------------------------------------------


@contextmanager
def gc_paused() -> Iterator[None]:
    """Disable the garbage collector for a timed region (as timeit does)."""
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def median(samples: Sequence[float]) -> float:
    return statistics.median(samples)


def rotated(items: Sequence[T], shift: int) -> list[T]:
    """*items* rotated left by *shift*: a different case goes first each round."""
    if not items:
        return []
    shift %= len(items)
    return [*items[shift:], *items[:shift]]


def time_once(call: Callable[[], object]) -> float:
    """Seconds one call takes (gc paused)."""
    with gc_paused():
        started = time.perf_counter()
        call()
        return time.perf_counter() - started


class MicroTimer:
    """Per-call time of a statement, in samples of a calibrated number of loops."""

    def __init__(self, stmt: str, namespace: dict[str, Any], sample_seconds: float) -> None:
        self._timer = timeit.Timer(stmt, globals=namespace)
        self.loops = self._calibrate(sample_seconds)
        self.samples: list[float] = []

    def _calibrate(self, sample_seconds: float) -> int:
        """Loops per sample, from the fastest of a few trial runs.

        Taking the fastest trial keeps one hiccup of a noisy machine from
        shrinking every later sample to a handful of loops.
        """
        loops = 1
        while loops < 1 << 24 and self._timer.timeit(loops) < sample_seconds / 8:
            loops *= 2
        fastest = min(self._timer.timeit(loops) for _ in range(3)) / loops
        return max(1, round(sample_seconds / max(fastest, 1e-9)))

    def sample(self) -> None:
        """Take one sample: seconds per call (timeit disables gc while timing)."""
        self.samples.append(self._timer.timeit(self.loops) / self.loops)

    def timing(self) -> Timing:
        """The samples taken so far, in µs per call."""
        return Timing(self.loops, tuple(s * 1e6 for s in self.samples))


def run_interleaved(groups: Sequence[Sequence[MicroTimer]], rounds: int) -> None:
    """Sample every timer once per round.

    The timers of one group (parasignal and Django on the same case) are
    sampled back to back, in reversed order every other round, so that each
    pair of samples saw the same machine; the groups take turns going first.
    """
    for round_index in range(rounds):
        for group in rotated(groups, round_index):
            for timer in group if round_index % 2 == 0 else reversed(group):
                timer.sample()
