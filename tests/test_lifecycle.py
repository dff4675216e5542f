"""Pool life cycle: shutdown, cancellation, interpreter exit, fork, leaks, saturation."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from concurrent.futures import CancelledError, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest

import parasignal
from parasignal import Signal, _pool

pytestmark = pytest.mark.timeout(60)


def ok(**kwargs: Any) -> str:
    return "ok"


def wait_until(predicate: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.005)


def own_threads(signal: Signal) -> list[threading.Thread]:
    prefix = f"parasignal-{signal._display_name()}_"
    return [t for t in threading.enumerate() if t.name.startswith(prefix)]


def run_script(code: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


# -- Signal.shutdown ----------------------------------------------------------------


def test_after_shutdown_parallel_sends_raise_naming_the_signal() -> None:
    signal = Signal(name="orders", max_workers=2)
    signal.connect(ok)
    assert signal.send_parallel(sender=None) == [(ok, "ok")]
    signal.shutdown()
    for method in (signal.send_parallel, signal.send_parallel_robust):
        with pytest.raises(RuntimeError, match=r"orders\.send_parallel(_robust)?\(\).*shut down"):
            method(sender=None)


def test_after_shutdown_send_and_send_robust_keep_working() -> None:
    signal = Signal(max_workers=2)
    signal.connect(ok)
    signal.send_parallel(sender=None)
    signal.shutdown()
    assert signal.send(sender=None) == [(ok, "ok")]
    assert signal.send_robust(sender=None) == [(ok, "ok")]


def test_shutdown_is_idempotent_and_safe_before_any_pool_exists() -> None:
    signal = Signal(max_workers=2)
    signal.shutdown()
    signal.shutdown(wait=False)
    signal.shutdown(cancel_futures=True)
    assert signal._pools.own_pool is None
    with pytest.raises(RuntimeError, match="shut down"):
        signal.send_parallel(sender=None)


def test_shutdown_waits_for_the_signals_own_threads_to_exit() -> None:
    signal = Signal(max_workers=3, caller_runs=False)
    barrier = threading.Barrier(3, timeout=10)

    def together(**kwargs: Any) -> None:
        barrier.wait()

    keep = [lambda **kwargs: together() for _ in range(3)]
    for r in keep:
        signal.connect(r)
    signal.send_parallel(sender=None)
    assert len(own_threads(signal)) == 3
    signal.shutdown(wait=True)
    assert own_threads(signal) == []


def test_shutdown_leaves_a_users_executor_alone() -> None:
    with ThreadPoolExecutor(2, thread_name_prefix="mine") as executor:
        signal = Signal(executor=executor)
        signal.connect(ok)
        signal.send_parallel(sender=None)
        signal.shutdown()
        assert executor.submit(lambda: 42).result(timeout=10) == 42
        with pytest.raises(RuntimeError, match="shut down"):
            signal.send_parallel(sender=None)


def test_shutting_down_a_signal_on_the_shared_pool_leaves_the_pool_to_others() -> None:
    first, second = Signal(), Signal()
    first.connect(ok)
    second.connect(ok)
    first.send_parallel(sender=None)
    first.shutdown()
    assert second.send_parallel(sender=None) == [(ok, "ok")]


def test_a_receiver_may_shut_down_its_own_signal() -> None:
    signal = Signal(max_workers=1)

    def closer(**kwargs: Any) -> str:
        signal.shutdown(wait=True)
        return "closed"

    signal.connect(closer)
    assert signal.send_parallel(sender=None) == [(closer, "closed")]
    with pytest.raises(RuntimeError):
        signal.send_parallel(sender=None)


# -- cancel_futures -------------------------------------------------------------------


@dataclass
class Blocked:
    """A dispatch cancelled while its first receiver ran and the rest waited."""

    receivers: list[Callable[..., Any]]
    calls: list[str]
    outcome: list[Any]


def blocked_dispatch(method: str) -> Blocked:
    """Start a dispatch whose first receiver blocks, then shut down with cancel_futures."""
    signal = Signal(max_workers=1, caller_runs=False)
    started, release = threading.Event(), threading.Event()
    calls: list[str] = []

    def first(**kwargs: Any) -> str:
        started.set()
        assert release.wait(10)
        calls.append("first")
        return "first"

    def second(**kwargs: Any) -> str:
        calls.append("second")
        return "second"

    def third(**kwargs: Any) -> str:
        calls.append("third")
        return "third"

    receivers: list[Callable[..., Any]] = [first, second, third]
    for r in receivers:
        signal.connect(r)
    outcome: list[Any] = []

    def call() -> None:
        try:
            outcome.append(getattr(signal, method)(sender=None))
        except Exception as exc:  # the test inspects it
            outcome.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    assert started.wait(10)
    signal.shutdown(wait=False, cancel_futures=True)
    release.set()
    caller.join(10)
    assert not caller.is_alive()
    return Blocked(receivers, calls, outcome)


def test_cancel_futures_gives_unstarted_receivers_cancelled_errors_in_robust_mode() -> None:
    blocked = blocked_dispatch("send_parallel_robust")
    first, second, third = blocked.receivers
    (responses,) = blocked.outcome
    assert responses[0] == (first, "first")
    assert [r for r, _ in responses] == [first, second, third]
    for _, response in responses[1:]:
        assert isinstance(response, CancelledError)
        assert "cancel_futures=True" in str(response)
    assert blocked.calls == ["first"]


def test_cancel_futures_makes_a_pending_send_parallel_raise_naming_the_cancelled() -> None:
    blocked = blocked_dispatch("send_parallel")
    (error,) = blocked.outcome
    assert isinstance(error, CancelledError)
    assert "2 receiver(s) never started" in str(error)
    assert "second" in str(error)
    assert "third" in str(error)
    assert blocked.calls == ["first"]


def test_a_user_executor_shut_down_with_cancel_futures_cancels_our_queued_helpers() -> None:
    executor = ThreadPoolExecutor(1)
    release = threading.Event()
    executor.submit(release.wait, 10)  # occupy the only thread
    signal = Signal(executor=executor, caller_runs=False)
    signal.connect(ok)
    outcome: list[Any] = []
    caller = threading.Thread(target=lambda: outcome.append(signal.send_parallel_robust(None)))
    caller.start()
    wait_until(lambda: executor._work_queue.qsize() == 1)
    executor.shutdown(wait=False, cancel_futures=True)
    release.set()
    caller.join(10)
    ((receiver, response),) = outcome[0]
    assert receiver is ok
    assert isinstance(response, CancelledError)


# -- parasignal.shutdown ----------------------------------------------------------


def test_global_shutdown_stops_parallel_dispatch_on_the_shared_pool_only() -> None:
    shared, private = Signal(name="shared"), Signal(name="private", max_workers=1)
    shared.connect(ok)
    private.connect(ok)
    shared.send_parallel(sender=None)
    parasignal.shutdown()
    with pytest.raises(RuntimeError, match=r"shared\.send_parallel\(\).*parasignal\.shutdown"):
        shared.send_parallel(sender=None)
    assert shared.send(sender=None) == [(ok, "ok")]
    assert private.send_parallel(sender=None) == [(ok, "ok")]
    private.shutdown()


def test_global_shutdown_waits_for_the_shared_threads() -> None:
    signal = Signal(caller_runs=False)
    signal.connect(ok)
    signal.send_parallel(sender=None)
    assert any(t.name.startswith("parasignal_") for t in threading.enumerate())
    parasignal.shutdown(wait=True)
    assert not any(t.name.startswith("parasignal_") for t in threading.enumerate())


# -- leaks -----------------------------------------------------------------------------


def test_creating_using_and_shutting_down_many_signals_leaves_no_thread() -> None:
    baseline = threading.active_count()
    for _ in range(50):
        signal = Signal(max_workers=2)
        signal.connect(ok)
        signal.connect(lambda **kwargs: 1)
        signal.send_parallel_robust(sender=None)
        signal.shutdown()
    assert threading.active_count() == baseline


def test_a_garbage_collected_signal_releases_its_pool_threads() -> None:
    baseline = threading.active_count()
    for _ in range(20):
        signal = Signal(max_workers=2)
        signal.connect(ok)
        signal.send_parallel(sender=None)
        del signal
    gc.collect()
    wait_until(lambda: threading.active_count() == baseline)


# -- saturation ----------------------------------------------------------------------


def test_callers_outnumbering_workers_queue_and_all_complete() -> None:
    signal = Signal(name="busy", max_workers=2, caller_runs=False)
    seen: set[str] = set()
    lock = threading.Lock()

    def note(**kwargs: Any) -> int:
        with lock:
            seen.add(threading.current_thread().name)
        time.sleep(0.002)
        return int(kwargs["n"])

    signal.connect(note)
    signal.connect(lambda **kwargs: -kwargs["n"], weak=False)
    results: dict[int, list[Any]] = {}

    def caller(n: int) -> None:
        results[n] = [response for _, response in signal.send_parallel(sender=None, n=n)]

    callers = [threading.Thread(target=caller, args=(n,)) for n in range(40)]
    for t in callers:
        t.start()
    for t in callers:
        t.join(30)
    assert results == {n: [n, -n] for n in range(40)}
    assert len(seen) <= 2
    assert len(own_threads(signal)) <= 2
    signal.shutdown()


# -- interpreter exit ------------------------------------------------------------------


def test_a_receiver_that_never_returns_does_not_hang_interpreter_exit() -> None:
    result = run_script(
        """
        import threading, time
        from parasignal import Signal
        forever = threading.Event()
        s = Signal(timeout=0.05)
        def stuck(**kwargs):
            forever.wait()
        s.connect(stuck)
        s.send_parallel_robust(None)
        own = Signal(max_workers=1, timeout=0.05)
        own.connect(stuck)
        own.send_parallel_robust(None)
        print("main done", flush=True)
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("main done")
    assert "Traceback" not in result.stderr
    assert "Fatal" not in result.stderr


def test_interpreter_exit_takes_at_most_the_grace_period() -> None:
    started = time.monotonic()
    result = run_script(
        """
        import threading
        from parasignal import Signal
        s = Signal(timeout=0.05)
        s.connect(lambda **kwargs: threading.Event().wait(), weak=False)
        s.send_parallel_robust(None)
        """
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    # The grace period, plus a generous allowance for starting Python.
    assert elapsed < _pool.EXIT_GRACE_SECONDS + 8


def test_work_a_send_is_waiting_on_at_exit_completes_cleanly() -> None:
    result = run_script(
        """
        import threading, time
        from parasignal import Signal
        s = Signal()
        def slow(**kwargs):
            time.sleep(0.3)
            return kwargs["n"]
        s.connect(slow)
        def background():
            print("answer", s.send_parallel(None, n=7)[0][1], flush=True)
        threading.Thread(target=background).start()
        print("main returns", flush=True)
        """
    )
    assert result.returncode == 0
    assert result.stderr == ""
    assert result.stdout.split() == ["main", "returns", "answer", "7"]


def test_a_background_failure_still_running_at_exit_is_logged_within_the_grace() -> None:
    result = run_script(
        """
        import threading, time
        from parasignal import Signal
        s = Signal(name="exiting")
        later_started = threading.Event()
        def fail_now(**kwargs):
            later_started.wait(10)
            raise KeyError("now")
        def fail_later(**kwargs):
            later_started.set()
            time.sleep(0.3)
            raise ValueError("later")
        s.connect(fail_now)
        s.connect(fail_later)
        try:
            s.send_parallel(None)
        except KeyError:
            print("raised", flush=True)
        """
    )
    assert result.returncode == 0, result.stderr
    assert "raised" in result.stdout
    assert "signal.receiver_failed" in result.stdout
    assert "ValueError: later" in result.stdout


# -- fork --------------------------------------------------------------------------


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_child_forked_after_pools_were_used_can_dispatch_in_parallel() -> None:
    result = run_script(
        """
        import os, threading
        from parasignal import Signal
        shared = Signal(caller_runs=False)
        own = Signal(max_workers=2, caller_runs=False)
        def where(**kwargs):
            return (os.getpid(), threading.current_thread().name)
        shared.connect(where)
        own.connect(where)
        shared.send_parallel(None)
        own.send_parallel(None)
        # Another thread holds a signal's lock while we fork: the child
        # must not inherit it locked.
        held, release = threading.Event(), threading.Event()
        def hold():
            with own.lock:
                held.set()
                release.wait(10)
        holder = threading.Thread(target=hold)
        holder.start()
        held.wait(10)
        pid = os.fork()
        if pid == 0:
            try:
                for s in (shared, own):
                    ((_, (child_pid, thread)),) = s.send_parallel(None)
                    assert child_pid == os.getpid(), (child_pid, os.getpid())
                    assert thread.startswith("parasignal"), thread
                own.connect(lambda **kwargs: 1, weak=False)
                print("child ok", flush=True)
                os._exit(0)
            except BaseException as exc:
                print("child failed", repr(exc), flush=True)
                os._exit(1)
        release.set()
        holder.join()
        _, status = os.waitpid(pid, 0)
        print("parent saw", os.waitstatus_to_exitcode(status), flush=True)
        """
    )
    assert "child ok" in result.stdout, result.stdout + result.stderr
    assert "parent saw 0" in result.stdout
