"""``parasignal stress`` and ``parasignal.stress()``: catching races, clear usage errors."""

from __future__ import annotations

import asyncio
import itertools
import json
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from parasignal import Signal, StressReport, _stress, stress
from parasignal._cli import main

pytestmark = pytest.mark.timeout(120)

# A receiver with a check-then-act race on a shared dict: between the
# membership test and the deletion (during the call to audit) another thread
# may delete the key.
RACY_MODULE = """
import threading
import time
from parasignal import Signal

cache = {}
order_placed = Signal(name="order_placed")

def audit(value):
    time.sleep(0)  # IO: lets another thread run, as a real audit write would
    return repr(value)

def racy(sender, **kwargs):
    key = "order"
    if key in cache:
        audit(cache[key])  # work between the check and the act
        del cache[key]
    else:
        cache[key] = object()

order_placed.connect(racy)

guard = threading.Lock()
locked_cache = {}
locked_signal = Signal(name="locked")

def locked(sender, **kwargs):
    with guard:
        if "order" in locked_cache:
            audit(locked_cache["order"])
            del locked_cache["order"]
        else:
            locked_cache["order"] = object()

locked_signal.connect(locked)
not_a_signal = [1, 2, 3]
SHOP = "the shop"

# A lost update: no receiver ever raises; only an invariant can tell.
counts = {"orders": 0}
calls = {"n": 0}
calls_lock = threading.Lock()
order_counted = Signal(name="order_counted")
order_counted_locked = Signal(name="order_counted_locked")

def count(sender, **kwargs):
    with calls_lock:
        calls["n"] += 1
    seen = counts["orders"]
    time.sleep(0)  # work between the read and the write
    counts["orders"] = seen + 1

def count_locked(sender, **kwargs):
    with calls_lock:
        calls["n"] += 1
        seen = counts["orders"]
        time.sleep(0)
        counts["orders"] = seen + 1

order_counted.connect(count)
order_counted_locked.connect(count_locked)

def no_update_lost():
    with calls_lock:
        lost = calls["n"] - counts["orders"]
    assert lost == 0, f"{lost} of {calls['n']} updates lost"

def says_false():
    return False
"""

_names = itertools.count()


@pytest.fixture
def target_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh importable module (in the working directory) holding the signals above."""
    name = f"stress_target_{next(_names)}"
    (tmp_path / f"{name}.py").write_text(RACY_MODULE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def load(module: str, attribute: str) -> Any:
    __import__(module)
    return getattr(sys.modules[module], attribute)


# -- the Python API -----------------------------------------------------------------


def test_a_racy_receiver_is_caught_and_reported_with_its_exception_type(
    target_module: str,
) -> None:
    signal = load(target_module, "order_placed")
    report = stress(signal, threads=8, seconds=2.0, method="send")
    assert not report.clean
    assert report.exit_status == 1
    (group,) = [g for g in report.exceptions if g.type == "KeyError"]
    assert group.receiver == f"{target_module}.racy"
    assert group.count >= 1
    assert "del cache[key]" in group.first_traceback
    assert "KeyError" in report.format()


def test_the_locked_twin_passes_clean(target_module: str) -> None:
    signal = load(target_module, "locked_signal")
    report = stress(signal, threads=8, seconds=1.0, method="mix")
    assert report.clean, report.format()
    assert report.exit_status == 0
    assert report.sends > 0
    (stats,) = report.receivers
    assert stats.receiver == f"{target_module}.locked"
    assert stats.calls == report.receiver_calls > 0
    assert 0 <= stats.p50_ms <= stats.p99_ms <= stats.max_ms


@pytest.mark.parametrize(
    "method", ["send", "send_robust", "send_parallel", "send_parallel_robust", "mix"]
)
def test_churn_finds_no_invariant_violation_in_the_dispatcher(method: str) -> None:
    signal = Signal(name="churned", max_workers=4)
    signal.connect(lambda **kwargs: None, weak=False)
    report = stress(signal, threads=4, seconds=0.7, method=method, churn=True)
    signal.shutdown()
    assert report.violations == [], report.format()
    assert report.clean, report.format()
    assert report.probes > 0


def test_receivers_are_restored_after_the_run() -> None:
    signal = Signal()

    def receiver(**kwargs: Any) -> str:
        return "original"

    signal.connect(receiver)
    before = list(signal.receivers)
    stress(signal, threads=2, seconds=0.2, churn=True)
    assert signal.receivers == before
    assert signal.send(None) == [(receiver, "original")]


def test_the_switch_interval_is_restored() -> None:
    signal = Signal()
    signal.connect(lambda **kwargs: None, weak=False)
    before = sys.getswitchinterval()
    stress(signal, threads=2, seconds=0.1, switch_interval=1e-5)
    assert sys.getswitchinterval() == before


def test_named_arguments_and_sender_reach_the_receivers() -> None:
    seen: set[tuple[object, object]] = set()
    signal = Signal()

    def receiver(sender: object, **kwargs: Any) -> None:
        seen.add((sender, kwargs.get("order_id")))

    signal.connect(receiver)
    report = stress(signal, threads=2, seconds=0.2, kwargs={"order_id": 7}, sender="shop")
    assert report.clean, report.format()
    assert seen == {("shop", 7)}


def test_dispatch_errors_that_no_receiver_raised_are_reported() -> None:
    release = threading.Event()
    signal = Signal(name="slow", timeout=0.01)

    def stuck(**kwargs: Any) -> None:
        release.wait(5)

    signal.connect(stuck)
    try:
        report = stress(signal, threads=2, seconds=0.3, method="send_parallel")
    finally:
        release.set()
    kinds = {(g.receiver, g.type) for g in report.exceptions}
    assert ("<send_parallel>", "TimeoutError") in kinds
    assert not report.clean


def test_a_thread_that_hangs_is_reported_with_its_stack(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_stress, "_JOIN_GRACE_S", 0.2)
    release = threading.Event()
    signal = Signal(name="hangs")

    def hang_forever_once(**kwargs: Any) -> None:
        release.wait(30)

    signal.connect(hang_forever_once)
    try:
        report = stress(signal, threads=2, seconds=0.1, method="send")
    finally:
        release.set()
    assert {h.name for h in report.hung_threads} == {"stress-send-0", "stress-send-1"}
    assert all("hang_forever_once" in h.stack for h in report.hung_threads)
    assert report.exit_status == 1


def test_the_report_is_json_ready() -> None:
    signal = Signal()
    signal.connect(lambda **kwargs: 1, weak=False)
    report = stress(signal, threads=2, seconds=0.1)
    data = json.loads(json.dumps(report.to_dict()))
    assert data["clean"] is True
    assert data["sends"] == report.sends
    assert isinstance(report, StressReport)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"threads": 0}, "threads must be an int of at least 1, not 0"),
        ({"seconds": 0}, "seconds must be a positive finite number, not 0"),
        ({"method": "emit"}, "method must be one of send, .*not 'emit'"),
        ({"switch_interval": -1.0}, "switch_interval must be a positive number, not -1.0"),
    ],
)
def test_bad_arguments_are_refused_with_a_clear_message(
    kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        stress(Signal(), **kwargs)


def test_stress_needs_a_parasignal_signal() -> None:
    with pytest.raises(TypeError, match=r"needs a parasignal\.Signal, not 42"):
        stress(42)  # type: ignore[arg-type]


# -- the command line -------------------------------------------------------------


def test_the_command_exits_1_and_names_the_racy_receiver(
    target_module: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["stress", f"{target_module}:order_placed", "--seconds", "2", "--threads", "8"])
    out = capsys.readouterr().out
    assert status == 1
    assert "FAILED" in out
    assert f"KeyError in {target_module}.racy" in out


def test_the_command_exits_0_for_the_locked_twin_with_json(
    target_module: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(
        [
            "stress",
            f"{target_module}:locked_signal",
            "--seconds",
            "0.5",
            "--threads",
            "4",
            "--churn",
            "--json",
            "--sender",
            f"{target_module}:SHOP",
            "--kwargs",
            '{"order_id": 1}',
        ]
    )
    data = json.loads(capsys.readouterr().out)
    assert status == 0
    assert data["clean"] is True
    assert data["target"] == f"{target_module}:locked_signal"
    assert data["churn"] is True


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("no_such_module_xyz:signal", "cannot import module 'no_such_module_xyz'"),
        ("{module}:missing", "has no attribute 'missing'"),
        ("{module}:not_a_signal", "is a list, not a parasignal Signal"),
        ("{module}", "TARGET must look like package.module:attribute"),
    ],
)
def test_bad_targets_get_a_one_line_message_and_exit_2(
    target_module: str, capsys: pytest.CaptureFixture[str], target: str, message: str
) -> None:
    status = main(["stress", target.format(module=target_module), "--seconds", "0.1"])
    err = capsys.readouterr().err
    assert status == 2
    assert message in err
    assert err.count("\n") == 1
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "option", [["--threads", "0"], ["--seconds", "-1"], ["--kwargs", "[1]"], ["--kwargs", "{"]]
)
def test_bad_options_are_usage_errors(
    target_module: str, capsys: pytest.CaptureFixture[str], option: list[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["stress", f"{target_module}:locked_signal", *option])
    assert exit_info.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_python_dash_m_runs_the_same_command(target_module: str, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "parasignal", "stress", "no_such_module_xyz:s"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("parasignal stress: error: cannot import module")


def test_a_module_that_fails_to_import_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "broken_target_mod.py").write_text(
        textwrap.dedent(
            """
            raise RuntimeError("configuration missing")
            """
        )
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    status = main(["stress", "broken_target_mod:signal"])
    err = capsys.readouterr().err
    assert status == 2
    assert "raised RuntimeError: configuration missing" in err


# -- regressions ----------------------------------------------------------------------


def test_failures_of_async_receivers_are_caught_and_timed() -> None:
    signal = Signal(name="async_target")

    async def flaky(**kwargs: Any) -> None:
        await asyncio.sleep(0.001)
        raise KeyError

    signal.connect(flaky)
    report = stress(signal, threads=2, seconds=0.3, method="send_robust")
    (group,) = report.exceptions
    assert (group.receiver.endswith("flaky"), group.type) == (True, "KeyError")
    (stats,) = report.receivers
    assert stats.p50_ms >= 0.5  # the await is timed, not just creating the coroutine


def test_a_re_entrant_signal_passes_churn_without_false_violations() -> None:
    signal = Signal(name="reentrant")

    def resave(sender: object, **kwargs: Any) -> None:
        if not kwargs.get("nested"):
            signal.send(sender, nested=True)

    signal.connect(resave)
    report = stress(signal, threads=2, seconds=0.5, method="send", churn=True)
    assert report.violations == []
    assert report.clean, report.format()


def test_deadline_misses_are_reported_and_not_taken_for_invariant_violations() -> None:
    signal = Signal(name="deadline", timeout=0.005, max_workers=1)
    release = threading.Event()

    def slow(**kwargs: Any) -> None:
        release.wait(0.02)

    signal.connect(slow)
    try:
        report = stress(signal, threads=2, seconds=0.5, method="send_parallel_robust", churn=True)
    finally:
        release.set()
        signal.shutdown(wait=False)
    assert report.violations == []
    assert any(g.type == "TimeoutError" and g.receiver.endswith("slow") for g in report.exceptions)
    assert not report.clean


def test_kwargs_naming_sender_or_signal_is_a_usage_error(
    target_module: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["stress", f"{target_module}:locked_signal", "--kwargs", '{"sender": 1}'])
    assert status == 2
    assert "--kwargs cannot name 'sender'" in capsys.readouterr().err


def test_a_module_exiting_at_import_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "exiting_target_mod.py").write_text("import sys\nsys.exit(3)\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    status = main(["stress", "exiting_target_mod:signal"])
    assert status == 2
    assert "raised SystemExit: 3" in capsys.readouterr().err


# -- your own invariant: check= --------------------------------------------------------


def test_a_lost_update_that_raises_nothing_is_caught_by_a_check(target_module: str) -> None:
    signal = load(target_module, "order_counted")
    check = load(target_module, "no_update_lost")
    report = stress(signal, threads=8, seconds=1.5, method="send", check=check)
    assert report.exceptions == []  # nothing raised: without the check, it would pass
    assert not report.clean
    (failure,) = report.check_failures
    assert failure.startswith(f"{target_module}.no_update_lost failed after the run: ")
    assert "updates lost" in failure
    assert "your check failed (1)" in report.format()


def test_the_locked_counter_passes_the_same_check_with_periodic_calls(
    target_module: str,
) -> None:
    signal = load(target_module, "order_counted_locked")
    check = load(target_module, "no_update_lost")
    calls: list[float] = []

    def counted_check() -> None:
        calls.append(0.0)
        # Mid-run, a call counted but not yet written is in flight: the
        # invariant holds only after the run.
        if len(calls) > 1 and not report_done:
            return
        check()

    report_done = False
    report = stress(signal, threads=4, seconds=1.0, check=counted_check, check_every=0.2)
    report_done = True
    assert report.clean, report.format()
    assert len(calls) >= 3  # periodic calls, then the final one


def test_a_check_returning_false_or_raising_fails_the_report(target_module: str) -> None:
    signal = load(target_module, "locked_signal")
    report = stress(signal, threads=2, seconds=0.2, check=load(target_module, "says_false"))
    assert report.check_failures == [f"{target_module}.says_false returned False after the run"]

    def broken() -> None:
        msg = "no such table"
        raise LookupError(msg)

    report = stress(signal, threads=2, seconds=0.2, check=broken)
    (failure,) = report.check_failures
    assert failure.endswith("broken raised LookupError after the run: no such table")


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"check": 3}, TypeError, "check must be a callable taking no arguments, not 3."),
        ({"check_every": 1.0}, ValueError, "check_every=1.0 needs a check to call."),
        ({"check": print, "check_every": 0}, ValueError, "check_every must be a positive"),
    ],
)
def test_check_options_are_checked_up_front(
    options: dict[str, Any], error: type[Exception], message: str
) -> None:
    signal = Signal()
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")):
        stress(signal, seconds=0.1, **options)


def test_the_command_takes_a_check_and_exits_1_for_the_lost_update(
    target_module: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(
        [
            "stress",
            f"{target_module}:order_counted",
            "--seconds",
            "1.5",
            "--check",
            f"{target_module}:no_update_lost",
        ]
    )
    out = capsys.readouterr().out
    assert status == 1
    assert "your check failed (1):" in out
    assert "updates lost" in out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--check-every", "1"], "--check-every needs --check."),
        (["--check", "{module}:SHOP"], "is a str, not a function."),
        (["--check", "{module}:nothing_here"], "has no attribute 'nothing_here'"),
    ],
)
def test_bad_check_options_get_a_one_line_message_and_exit_2(
    target_module: str, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    args = [arg.format(module=target_module) for arg in extra]
    status = main(["stress", f"{target_module}:locked_signal", "--seconds", "0.1", *args])
    err = capsys.readouterr().err
    assert status == 2
    assert message in err
    assert err.count("\n") == 1
