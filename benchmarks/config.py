"""How much work a benchmark run does: its Config (default or quick), and the fixed sizes.

The Config holds what ``--quick`` changes (sample counts and sizes); the
constants below are the same in every mode, and are shared by the cases that
measure them and the report that describes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class Config:
    """How much work one run does."""

    name: str
    send_rounds: int  # samples per send() case (section 1)
    sample_seconds: float  # target duration of one micro-benchmark sample
    connect_n: int  # receivers connected to parasignal (section 2)
    connect_rounds: int
    django_connect_ns: tuple[int, ...]  # sizes Django's connect is measured at
    django_connect_rounds: int
    memory_n: int  # receivers connected for the memory figures (section 3)
    memory_rounds: int
    fanout_rounds: int  # samples per send_parallel case (section 4)
    slow_rounds: int  # samples of Django's sequential send/asend (section 4)
    overhead_rounds: int  # samples per overhead case (section 5)
    peer_connect_rounds: int  # samples of each peer's 100k connect (section 7)


DEFAULT: Final = Config(
    name="default",
    send_rounds=25,
    sample_seconds=0.01,
    connect_n=100_000,
    connect_rounds=5,
    django_connect_ns=(5_000, 10_000, 20_000),
    django_connect_rounds=3,
    memory_n=20_000,
    memory_rounds=2,
    fanout_rounds=21,
    slow_rounds=2,
    overhead_rounds=25,
    peer_connect_rounds=3,
)

QUICK: Final = Config(
    name="quick",
    send_rounds=7,
    sample_seconds=0.005,
    connect_n=100_000,
    connect_rounds=3,
    django_connect_ns=(2_500, 5_000, 10_000),
    django_connect_rounds=1,
    memory_n=5_000,
    memory_rounds=1,
    fanout_rounds=9,
    slow_rounds=1,
    overhead_rounds=7,
    peer_connect_rounds=1,
)

# The optional peers, in the order their columns appear.
PEER_MODULES: Final = ("blinker", "psygnal", "pyee")

SEND_COUNTS: Final = (0, 1, 10, 100)  # receivers per send() case (section 1)
EXTRAPOLATE_TO: Final = 100_000  # receivers of the largest connect figures (sections 2, 7)
FANOUT_SLEEP: Final = 0.010  # seconds each fan-out receiver sleeps (sections 4, 8)
FANOUT_COUNTS: Final = (8, 32, 128)  # receivers per fan-out case (section 4)
SATURATION_PENDING: Final = 10_000  # receivers waiting for the workers (section 6)
SATURATION_WORKERS: Final = 4
PEER_CONNECT_PROBE: Final = 10_000  # receivers of the probe that decides (section 7)
PEER_CONNECT_BUDGET_S: Final = 15.0  # a peer whose 100k connect would take longer is extrapolated
ASEND_RECEIVERS: Final = 32  # receivers of the asend cases (section 8)
