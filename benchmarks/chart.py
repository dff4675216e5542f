"""The PNG chart of a run: sequential dispatch cost, and IO fan-out wall time.

Drawn with matplotlib when it is installed; skipped (``draw_chart`` returns
False) when it is not.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING

from config import FANOUT_COUNTS, PEER_MODULES, SEND_COUNTS
from environment import load_matplotlib
from report import FANOUT_DISPATCHERS, fanout_median, med_us

if TYPE_CHECKING:
    from results import Results


def draw_chart(results: Results, path: Path) -> bool:
    """Draw send() cost and IO fan-out side by side as a PNG; False without matplotlib."""
    plt = load_matplotlib()
    if plt is None:
        return False
    send, fanout = results.send, results.fanout
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))
    counts = [c for c in SEND_COUNTS if c > 0]
    for key, label in (
        ("parasignal", "parasignal"),
        ("django", "Django"),
        *((p, p) for p in PEER_MODULES),
    ):
        values = [med_us(send.get(key, c)) for c in counts]
        if all(v is not None for v in values):
            left.plot(counts, values, marker="o", label=label)
    left.set(
        xscale="log",
        yscale="log",
        xlabel="no-op receivers",
        ylabel="µs per dispatch",
        title="Sequential dispatch, no payload (lower is better)",
    )
    left.grid(visible=True, which="both", alpha=0.3)
    left.legend()
    labels = [label.split(",")[0].replace("`", "") for _, label in FANOUT_DISPATCHERS]
    width = 0.8 / len(FANOUT_DISPATCHERS)
    for i, ((key, _), label) in enumerate(zip(FANOUT_DISPATCHERS, labels, strict=True)):
        bars = [fanout_median(fanout, key, n) for n in FANOUT_COUNTS]
        if any(v is None for v in bars):
            continue
        xs = [j + (i - (len(FANOUT_DISPATCHERS) - 1) / 2) * width for j in range(len(bars))]
        right.bar(xs, bars, width=width, label=label)
    right.set_xticks(range(len(FANOUT_COUNTS)), [f"{n} x 10 ms" for n in FANOUT_COUNTS])
    right.set(
        yscale="log",
        ylabel="ms per dispatch (wall)",
        title="IO fan-out: receivers each sleeping 10 ms (lower is better)",
    )
    ticker = importlib.import_module("matplotlib.ticker")
    right.yaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
    right.yaxis.set_minor_formatter(ticker.NullFormatter())
    right.grid(visible=True, axis="y", which="both", alpha=0.3)
    right.legend(fontsize="small")
    m = results.machine
    fig.suptitle(
        f"parasignal {m.parasignal} vs peers: {m.python}, {m.usable_cpus} CPUs, {m.mode} run",
        fontsize="medium",
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
