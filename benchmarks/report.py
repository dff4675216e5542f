"""The Markdown report of a run's typed Results, one ``render_*`` function per section.

Every figure shown is a median of the samples in Results (or a minimum, where
a column says so); a case that was not measured (its library absent) shows
"absent".
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Final

from _common import median
from config import (
    ASEND_RECEIVERS,
    EXTRAPOLATE_TO,
    FANOUT_COUNTS,
    FANOUT_SLEEP,
    PEER_CONNECT_BUDGET_S,
    PEER_CONNECT_PROBE,
    PEER_MODULES,
    SATURATION_WORKERS,
    SEND_COUNTS,
    Config,
)
from results import (
    RECEIVER_KINDS,
    SEND_ARGS,
    AsendResult,
    ConnectKey,
    ConnectResult,
    FanoutResult,
    Machine,
    MemoryResult,
    OverheadResult,
    Results,
    Samples,
    SaturationResult,
    ScaleMeasured,
    ScaleResult,
    SendResult,
    Timing,
)

ABSENT: Final = "absent"

# The fan-out dispatchers of section 4 (and of the chart), by FanoutKey.dispatcher.
FANOUT_DISPATCHERS: Final = (
    ("parasignal/default", "parasignal `send_parallel`, default pool (64 threads)"),
    ("threadpool", "`ThreadPoolExecutor(64)`: submit one task per receiver, wait all"),
    ("pyee_executor", "pyee `ExecutorEventEmitter(ThreadPoolExecutor(64))`, waited for"),
    ("django/send", "Django `send` (sequential)"),
    ("django/asend", "Django `asyncio.run(asend(None))`"),
)
FANOUT_ROWS: Final = (
    *((key, label, n) for key, label in FANOUT_DISPATCHERS for n in FANOUT_COUNTS),
    ("parasignal/max_workers=32", "parasignal `send_parallel`, `max_workers=32`", 128),
)


# -- formatting ------------------------------------------------------------------


def fmt(value: float | None, unit: str = "") -> str:
    """A figure with three significant digits or so, or "absent"."""
    if value is None:
        return ABSENT
    if abs(value) >= 100:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    elif abs(value) >= 1:
        text = f"{value:.2f}"
    else:
        text = f"{value:.3f}"
    return f"{text}{unit}"


def ratio(numerator: float | None, denominator: float | None) -> str:
    """numerator/denominator as "1.23x", or "absent" when either side is missing."""
    if numerator is None or denominator is None or denominator == 0:
        return ABSENT
    return ratio_text(numerator / denominator)


def ratio_text(value: float | None) -> str:
    if value is None:
        return ABSENT
    if value >= 100:
        return f"{value:,.0f}x"
    if value >= 10:
        return f"{value:.1f}x"
    return f"{value:.2f}x" if value >= 0.1 else f"{value:.2g}x"


def paired_ratio(ours: Timing | None, theirs: Timing | None) -> float | None:
    """Median over rounds of ours/theirs, each pair sampled back to back."""
    if ours is None or theirs is None:
        return None
    pairs = zip(ours.samples_us, theirs.samples_us, strict=True)
    return median([a / b for a, b in pairs if b > 0])


def med(samples: Sequence[float] | None) -> float | None:
    """Median of *samples*, or None when the case was not measured."""
    if not samples:
        return None
    return median(samples)


def med_us(timing: Timing | None) -> float | None:
    """Median µs of *timing*, or None when the case was not measured."""
    return None if timing is None else med(timing.samples_us)


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


# -- sections --------------------------------------------------------------------


def render_machine(m: Machine, run_seconds: float) -> list[str]:
    gil = {None: "", True: " (GIL enabled)", False: " (free-threaded, GIL disabled)"}[m.gil]
    load = "n/a" if m.load_average is None else " ".join(f"{x:.2f}" for x in m.load_average)
    rows = [
        ["Platform", f"{m.platform} ({m.machine})"],
        ["CPU count", f"{m.cpu_count} (usable: {m.usable_cpus})"],
        ["Python", f"{m.python}{gil}"],
        ["parasignal", m.parasignal],
        ["Django", m.django or ABSENT],
        *([peer, m.peers.get(peer) or ABSENT] for peer in PEER_MODULES),
        ["matplotlib (chart)", m.matplotlib or ABSENT],
        ["Mode", f"{m.mode} (run took {run_seconds:.0f} s)"],
        ["Load average at start", load],
    ]
    return ["## Machine", "", *table(["", ""], rows)]


def render_send(send: SendResult, rounds: int) -> list[str]:
    rows = []
    for count in SEND_COUNTS:
        row = [str(count)]
        for args in SEND_ARGS:
            ours, theirs = send.get("parasignal", count, args), send.get("django", count, args)
            row += [fmt(med_us(ours)), fmt(med_us(theirs)), ratio_text(paired_ratio(ours, theirs))]
        rows.append(row)
    header = [
        "receivers",
        "parasignal `send(None)` µs",
        "Django µs",
        "parasignal/Django",
        "parasignal `send(None, payload=1)` µs",
        "Django µs",
        "parasignal/Django",
    ]
    return [
        "## 1. `send()` on no-op receivers",
        "",
        (
            f"µs per call, median of {rounds} interleaved samples; lower is better. "
            "Ratios are medians of per-round ratios of samples taken back to back."
        ),
        "",
        *table(header, rows),
    ]


def render_peers_send(send: SendResult) -> list[str]:
    impls = [("parasignal", "parasignal"), ("django", "Django")]
    impls += [(peer, peer) for peer in PEER_MODULES]
    rows = []
    for count in SEND_COUNTS:
        row = [str(count)]
        for key, _ in impls:
            value = med_us(send.get(key, count))
            ours = med_us(send.get("parasignal", count))
            cell = fmt(value)
            if value is not None and ours and key != "parasignal":
                cell += f" ({value / ours:.2g}x)"
            row.append(cell)
        rows.append(row)
    return [
        "## 1b. Dispatch with no payload, every peer",
        "",
        (
            "µs per call (in brackets: multiple of parasignal's time), same samples as section 1: "
            "parasignal and Django `send(None)`, blinker `Signal.send(None)`, psygnal "
            "`SignalInstance(()).emit()`, pyee `EventEmitter.emit('order_placed')`, all with "
            "no-op receivers, sampled back to back in each round. Each library does different "
            "work per call (weak references, sender filtering, signature checks), so this is "
            "the cost of each one's own contract."
        ),
        "",
        *table(["receivers", *(label + " µs" for _, label in impls)], rows),
    ]


def render_connect(connect: ConnectResult, config: Config) -> list[str]:
    sizes = sorted({*config.django_connect_ns, config.connect_n})
    rows = []
    for n in sizes:
        ours = median(connect.samples_s[ConnectKey("parasignal", n)])
        theirs = med(connect.get("django", n))
        label = f"{n:,}"
        if theirs is None and n == EXTRAPOLATE_TO:
            theirs = connect.django_extrapolated_s
            if theirs is not None:
                label = f"{n:,} (Django **extrapolated**)"
        rows.append(
            [
                label,
                fmt(ours, " s"),
                fmt(ours * 1e6 / n, " µs"),
                fmt(theirs, " s"),
                fmt(None if theirs is None else theirs * 1e6 / n, " µs"),
                ratio(theirs, ours),
            ]
        )
    lines = [
        "## 2. `connect()` of distinct weak receivers to a fresh signal",
        "",
        f"Median of {config.connect_rounds} samples for parasignal"
        + (
            f", {config.django_connect_rounds} for Django."
            if connect.django_fit is not None
            else "."
        ),
        "",
        *table(
            [
                "receivers",
                "parasignal total",
                "per connect",
                "Django total",
                "per connect",
                "Django/parasignal",
            ],
            rows,
        ),
    ]
    fit = connect.django_fit
    if fit is not None:
        lines += [
            "",
            (
                f"Django's {EXTRAPOLATE_TO:,} figure is **extrapolated**, not measured: "
                "a least-squares fit t = a·n + b·n² through the measured sizes "
                f"(a = {fit.a_s_per_n * 1e6:.3g} µs, b = {fit.b_s_per_n2 * 1e9:.3g} ns), "
                "since its connect() scans every receiver already connected."
            ),
        ]
    return lines


def memory_row(label: str, ours_samples: Samples, theirs_samples: Samples | None) -> list[str]:
    ours = median(ours_samples)
    theirs = None if theirs_samples is None else median(theirs_samples)
    return [label, fmt(ours, " B"), fmt(theirs, " B"), ratio(ours, theirs)]


def render_memory(memory: MemoryResult) -> list[str]:
    ours = memory.samples_bytes["parasignal"]
    theirs = memory.samples_bytes.get("django")
    rows = [
        memory_row("after connect", ours.connect, None if theirs is None else theirs.connect),
        memory_row(
            "after connect + one `send(None)`",
            ours.connect_send,
            None if theirs is None else theirs.connect_send,
        ),
    ]
    return [
        "## 3. Memory per weakly connected receiver",
        "",
        (
            f"tracemalloc growth over connecting N = {memory.n:,} pre-created functions "
            "(the functions themselves excluded), divided by N."
        ),
        "",
        *table(["", "parasignal", "Django", "parasignal/Django"], rows),
    ]


def fanout_median(fanout: FanoutResult, dispatcher: str, receivers: int) -> float | None:
    """Median ms per dispatch, or None when the case was not measured."""
    entry = fanout.get(dispatcher, receivers)
    return None if entry is None else med(entry.samples_ms)


def render_fanout(fanout: FanoutResult) -> list[str]:
    rows = []
    for key, label, count in FANOUT_ROWS:
        entry = fanout.get(key, count)
        if entry is None:
            rows.append([label, str(count), "0", ABSENT, ABSENT, ABSENT, ABSENT])
            continue
        samples = entry.samples_ms
        rows.append(
            [
                label,
                str(count),
                str(len(samples)),
                fmt(median(samples)),
                fmt(min(samples)),
                fmt(entry.ideal_ms),
                ratio(median(samples), entry.ideal_ms),
            ]
        )
    lines = [
        f"## 4. Parallel fan-out: receivers each sleeping {FANOUT_SLEEP * 1e3:.0f} ms",
        "",
        "Wall time per dispatch, ms.",
        "",
        *table(
            ["dispatch", "receivers", "samples", "median", "min", "ideal", "median/ideal"],
            rows,
        ),
    ]
    ours = fanout_median(fanout, "parasignal/default", 32)
    theirs = fanout_median(fanout, "django/send", 32)
    if ours is not None and theirs is not None:
        lines += [
            "",
            f"`send_parallel` on 32 receivers is {theirs / ours:.1f}x faster than Django's `send`.",
        ]
    summary = [
        [label, *(fmt(fanout_median(fanout, key, n)) for n in FANOUT_COUNTS)]
        for key, label in FANOUT_DISPATCHERS
    ]
    lines += [
        "",
        "Side by side (median ms per dispatch):",
        "",
        *table(["dispatch", *(f"{n} x 10 ms" for n in FANOUT_COUNTS)], summary),
    ]
    return lines


OVERHEAD_CASES: Final = (
    ("parasignal/send_parallel/1", "parasignal `send_parallel`, 1 no-op receiver"),
    ("parasignal/send_parallel/100", "parasignal `send_parallel`, 100 no-op receivers"),
    ("parasignal/send/100", "parasignal `send` (sequential), 100 no-op receivers"),
    ("django/send/100", "Django `send`, 100 no-op receivers"),
    ("threadpool/submit_result", "`ThreadPoolExecutor(1).submit(f).result()`"),
    ("threadpool/fanout/1", "`ThreadPoolExecutor(64)` fan-out, 1 no-op task"),
    ("threadpool/fanout/100", "`ThreadPoolExecutor(64)` fan-out, 100 no-op tasks"),
    ("pyee_executor/fanout/1", "pyee `ExecutorEventEmitter`, 1 no-op listener"),
    ("pyee_executor/fanout/100", "pyee `ExecutorEventEmitter`, 100 no-op listeners"),
    ("thread/round_trip", "bare thread round trip (SimpleQueue.get → Lock.release)"),
)


def render_overhead(overhead: OverheadResult, rounds: int) -> list[str]:
    timings = overhead.timings
    bare = med_us(timings.get("thread/round_trip"))
    rows = []
    for key, label in OVERHEAD_CASES:
        entry = timings.get(key)
        value = med_us(entry)
        fastest = min(entry.samples_us) if entry is not None else None
        rows.append([label, fmt(value), fmt(fastest), ratio(value, bare)])
    paired = paired_ratio(
        timings.get("parasignal/send_parallel/100"), timings.get("django/send/100")
    )
    per_receiver = []
    for label, one, hundred in (
        (
            "parasignal `send_parallel`",
            "parasignal/send_parallel/1",
            "parasignal/send_parallel/100",
        ),
        ("`ThreadPoolExecutor(64)`, one task each", "threadpool/fanout/1", "threadpool/fanout/100"),
        ("pyee `ExecutorEventEmitter`", "pyee_executor/fanout/1", "pyee_executor/fanout/100"),
    ):
        a, b = med_us(timings.get(one)), med_us(timings.get(hundred))
        per_receiver.append(
            [label, fmt(a), fmt(b), fmt(None if a is None or b is None else (b - a) / 99)]
        )
    for label, key in (
        ("parasignal `send` (sequential, for scale)", "parasignal/send/100"),
        ("Django `send` (sequential, for scale)", "django/send/100"),
    ):
        b = med_us(timings.get(key))
        per_receiver.append([label, "", fmt(b), fmt(None if b is None else b / 100)])
    return [
        "## 5. Overhead of `send_parallel` on no-op receivers",
        "",
        f"µs per call, median of {rounds} interleaved samples.",
        "",
        *table(["call", "median µs", "min µs", "median ÷ bare thread round trip"], rows),
        "",
        (
            f"`send_parallel` / Django `send`, 100 no-op receivers: {ratio_text(paired)} "
            "(median of per-round ratios)."
        ),
        "",
        "Fan-out overhead per receiver: (time with 100 no-op receivers - time with 1) / 99.",
        "",
        *table(
            ["dispatch", "1 receiver µs", "100 receivers µs", "per extra receiver µs"], per_receiver
        ),
    ]


def render_saturation(saturation: SaturationResult) -> list[str]:
    rows = [
        [
            f"{run.callers}",
            f"{run.pending:,}",
            f"{run.worker_threads}",
            f"{run.bytes_during / 1024:,.0f} KiB",
            fmt(run.bytes_during / run.pending, " B"),
            f"{run.bytes_peak / 1024:,.0f} KiB",
        ]
        for run in saturation.runs
    ]
    return [
        "## 6. Saturation: 10,000 receivers waiting for 4 workers",
        "",
        (
            f"`Signal(max_workers={SATURATION_WORKERS})`, receivers blocked until released; "
            "tracemalloc growth while they wait (receivers themselves excluded). A dispatch "
            "queues at most one helper per worker, never one task per receiver."
        ),
        "",
        *table(
            [
                "concurrent callers",
                "pending receivers",
                "worker threads",
                "memory while pending",
                "per pending receiver",
                "peak",
            ],
            rows,
        ),
    ]


def render_scale(scale: ScaleResult) -> list[str]:
    rows = []
    for key, entry in scale.entries.items():
        label = {"parasignal": "parasignal", "django": "Django"}.get(key, key)
        if isinstance(entry, ScaleMeasured):
            total = median(entry.connect_s)
            rows.append(
                [
                    label,
                    fmt(total, " s"),
                    fmt(total * 1e6 / EXTRAPOLATE_TO, " µs"),
                    fmt(entry.bytes_per_receiver, " B"),
                ]
            )
        else:
            shape = "quadratic" if entry.quadratic else "linear"
            rows.append(
                [
                    f"{label} (**extrapolated**, {shape})",
                    f"~{fmt(entry.extrapolated_s, ' s')}",
                    f"~{fmt(entry.extrapolated_s * 1e6 / EXTRAPOLATE_TO, ' µs')}",
                    "not measured",
                ]
            )
    return [
        f"## 7. {EXTRAPOLATE_TO:,} receivers: connect time and memory, every peer",
        "",
        (
            f"Each implementation connects {EXTRAPOLATE_TO:,} distinct pre-created no-op "
            "functions to a fresh signal, as it holds them (parasignal, Django and blinker "
            "weakly, psygnal and pyee strongly); memory is tracemalloc growth after connecting "
            "and one dispatch, divided by N. An implementation whose connect time at "
            f"{PEER_CONNECT_PROBE:,} receivers grows faster than linearly, or projects past "
            f"{PEER_CONNECT_BUDGET_S:.0f} s, is extrapolated from {PEER_CONNECT_PROBE:,} "
            "instead of measured."
        ),
        "",
        *table(["implementation", "connect total", "per connect", "memory per receiver"], rows),
    ]


def render_asend(asend: AsendResult) -> list[str]:
    ideal = FANOUT_SLEEP * 1000
    rows = []
    for kind in RECEIVER_KINDS:
        parallel = med(asend.get("parasignal-asend_parallel", kind))
        ours = med(asend.get("parasignal", kind))
        theirs = med(asend.get("django", kind))
        rows.append(
            [
                f"{ASEND_RECEIVERS} {kind} receivers x {ideal:.0f} ms",
                fmt(parallel, " ms"),
                ratio(parallel, ideal),
                fmt(ours, " ms"),
                fmt(theirs, " ms"),
            ]
        )
    baseline = med(asend.get("parasignal-send_parallel", "sync"))
    return [
        "## 8. `asend()` and `asend_parallel()`: sync and async receivers",
        "",
        (
            "Wall time of `asyncio.run(signal.asend_parallel(None))` and "
            "`asyncio.run(signal.asend(None))`, median. `asend` (parasignal's and Django's) "
            "runs sync receivers one after another in one thread; `asend_parallel` runs them "
            "concurrently on the pool. All await async receivers concurrently. In the same "
            f"rounds, `send_parallel` on the same {ASEND_RECEIVERS} sync receivers took "
            f"{fmt(baseline, ' ms')} ({ratio(baseline, ideal)} of the ideal)."
        ),
        "",
        *table(
            [
                "receivers",
                "parasignal `asend_parallel`",
                "x ideal",
                "parasignal `asend`",
                "Django `asend`",
            ],
            rows,
        ),
    ]


def render_notes(results: Results) -> list[str]:
    m = results.machine
    absent = [
        name
        for name in ("django", *PEER_MODULES)
        if not (m.django if name == "django" else m.peers.get(name))
    ]
    notes = [
        f'- {name} is not installed: its columns say "absent" '
        "(`pip install -e '.[bench]'` brings every peer)."
        for name in absent
    ]
    if m.matplotlib is None:
        notes.append("- matplotlib is not installed: no chart was drawn.")
    elif results.chart is not None:
        notes.append(f"- Chart: `{_shown(results.chart)}`.")
    return ["## Notes", "", *notes] if notes else []


def render(results: Results) -> str:
    """The whole report, as printed on stdout."""
    config = results.config
    sections = [
        ["# parasignal vs django.dispatch, blinker, psygnal and pyee"],
        render_machine(results.machine, results.run_seconds),
        render_send(results.send, config.send_rounds),
        render_peers_send(results.send),
        render_connect(results.connect, config),
        render_memory(results.memory),
        render_fanout(results.fanout),
        render_overhead(results.overhead, config.overhead_rounds),
        render_saturation(results.saturation),
        render_scale(results.scale),
        render_asend(results.asend),
        render_notes(results),
    ]
    return "\n\n".join("\n".join(lines) for lines in sections if lines) + "\n"


def _shown(path: Path) -> str:
    """*path* relative to the current directory when it is below it (no home paths in reports)."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
