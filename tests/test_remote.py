"""Receivers in other processes: a process pool and a real dask cluster as the executor.

Every behaviour is checked on a ``ProcessPoolExecutor(2)`` and on a 2-worker
``distributed.LocalCluster`` (``processes=True``), both started once for the
module. Receivers are module-level functions in ``remote_receivers``, which
the workers import. Receivers that must run for a while wait for a file the
test creates when it is done with them, so no worker stays busy into the next
test.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, MutableMapping
from concurrent.futures import BrokenExecutor, Executor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool, ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pytest

import parasignal
import remote_receivers as rr
from parasignal import Signal, _remote

distributed = pytest.importorskip("distributed")

WAIT = 30.0  # seconds any wait in a test may take before it fails


def forkserver() -> Any:
    # Not fork: the test process runs threads (parasignal's, dask's), and
    # forking a threaded process is unsafe (Python 3.12+ warns about it).
    return multiprocessing.get_context("forkserver")


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """A real dask cluster: a scheduler here and two worker processes of one thread each."""
    with distributed.LocalCluster(
        processes=True, n_workers=2, threads_per_worker=1, dashboard_address=":0"
    ) as local:
        yield local


@pytest.fixture(scope="module")
def client(cluster: Any) -> Iterator[Any]:
    with distributed.Client(cluster) as dask_client:
        yield dask_client


@pytest.fixture(scope="module")
def process_pool() -> Iterator[ProcessPoolExecutor]:
    pool = ProcessPoolExecutor(2, mp_context=forkserver())
    yield pool
    pool.shutdown(wait=True, cancel_futures=True)


@pytest.fixture(params=["process_pool", "dask"])
def executor(request: pytest.FixtureRequest) -> Executor:
    """Each test runs on both engines."""
    if request.param == "dask":
        dask_executor: Executor = request.getfixturevalue("client").get_executor()
        return dask_executor
    pool: Executor = request.getfixturevalue("process_pool")
    return pool


@pytest.fixture
def submitted(executor: Executor, monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Record every task submitted (to the pool, or to the Client behind dask's executor)."""
    calls: list[object] = []
    target = getattr(executor, "_client", executor)
    submit = target.submit

    def counting_submit(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        return submit(fn, *args, **kwargs)

    monkeypatch.setattr(target, "submit", counting_submit)
    return calls


@pytest.fixture
def release(tmp_path: Path) -> Iterator[str]:
    """A file name that releases rr.wait_for_release receivers once the test is done."""
    path = tmp_path / "release"
    yield str(path)
    path.touch()


def _queued_on_scheduler(dask_scheduler: Any, prefix: str) -> int:
    return sum(1 for key in dask_scheduler.tasks if str(key).startswith(prefix))


def _queued_on_worker(dask_worker: Any, prefix: str) -> int:
    waiting = {"ready", "constrained", "waiting", "fetch", "flight"}
    return sum(
        1
        for key, task in dask_worker.state.tasks.items()
        if str(key).startswith(prefix) and task.state in waiting
    )


def cancellation_delivered(executor: Executor, prefix: str) -> None:
    """Wait until a dask cluster has acted on a cancellation of the tasks named *prefix*.

    dask cancels by message (client to scheduler, scheduler to workers), so a
    task queued on a worker can still start in the few milliseconds before
    the message arrives: a test that frees the workers at once would see it
    run. A process pool cancels at once (its call queue aside): nothing to wait for.
    """
    client = getattr(executor, "_client", None)
    if client is None:
        return
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        on_scheduler = client.run_on_scheduler(_queued_on_scheduler, prefix=prefix)
        on_workers = sum(client.run(_queued_on_worker, prefix=prefix).values())
        if on_scheduler == on_workers == 0:
            return
        time.sleep(0.01)
    pytest.fail(f"dask never acted on the cancellation of the {prefix!r} tasks")


def signal_on(executor: Executor, *receivers: Callable[..., Any], **options: Any) -> Signal:
    signal = Signal(name="remote.signal", executor=executor, **options)
    for receiver in receivers:
        signal.connect(receiver, weak=False)
    return signal


def is_worker_address(text: str, executor: Executor, client: Any = None) -> bool:
    if isinstance(executor, ProcessPoolExecutor):
        match = re.fullmatch(r"pid (\d+)", text)
        return match is not None and int(match.group(1)) != os.getpid()
    return text in client.scheduler_info()["workers"]


def wait_for(predicate: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting for a worker"
        time.sleep(0.01)


# -- which executors ----------------------------------------------------------------------


def test_process_pools_and_dask_executors_are_out_of_process_and_thread_pools_are_not(
    client: Any,
) -> None:
    with ThreadPoolExecutor(1) as threads:
        assert not _remote.runs_elsewhere(threads)
    with ProcessPoolExecutor(1) as pool:  # no process starts before a task is submitted
        assert _remote.runs_elsewhere(pool)
    assert _remote.runs_elsewhere(client.get_executor())
    assert not _remote.runs_elsewhere(client)  # a Client is taken as its executor first


def test_the_dask_executors_own_options_apply_to_every_task(client: Any) -> None:
    [first, *_] = sorted(client.scheduler_info()["workers"])
    signal = Signal(executor=client.get_executor(workers=[first]))
    for n in range(4):
        signal.connect(rr.where_am_i, dispatch_uid=n, weak=False)
    assert {address for _, address in signal.send_parallel(None)} == {first}


def test_a_dask_client_given_as_the_executor_is_taken_as_its_executor(client: Any) -> None:
    signal = Signal(executor=client)
    assert isinstance(signal.executor, distributed.cfexecutor.ClientExecutor)
    signal.connect(rr.double)
    assert signal.send_parallel(None, x=4) == [(rr.double, 8)]


def test_importing_and_dispatching_on_threads_never_imports_dask() -> None:
    code = (
        "import sys, parasignal\n"
        "s = parasignal.Signal(); s.connect(lambda **kw: 1, weak=False)\n"
        "s.send_parallel(None)\n"
        "print(sorted(m for m in sys.modules\n"
        "             if m.split('.')[0] in ('distributed', 'dask', 'cloudpickle')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"


# -- the answer ---------------------------------------------------------------------------


def test_the_answer_is_sends_in_connection_order_with_the_callers_own_receivers(
    executor: Executor,
) -> None:
    signal = signal_on(executor, rr.double, rr.describe_call, rr.pid, rr.double)
    # The same function twice, under two dispatch_uids: two receivers, two tasks.
    signal.connect(rr.double, dispatch_uid="second double", weak=False)

    responses = signal.send_parallel("shop", x=21, extra="e")

    assert [receiver for receiver, _ in responses] == [
        rr.double,
        rr.describe_call,
        rr.pid,
        rr.double,
    ]
    assert all(receiver is rr.double for receiver in (responses[0][0], responses[3][0]))
    assert responses[0][1] == responses[3][1] == 42
    assert responses[1][1] == ("shop", ["extra", "signal", "x"])
    assert responses[2][1] != os.getpid()
    expected = [(r, v) for r, v in signal.send("shop", x=21, extra="e") if r is not rr.pid]
    assert [(r, v) for r, v in responses if r is not rr.pid] == expected


def test_send_parallel_robust_gives_the_same_answer_when_nothing_fails(
    executor: Executor,
) -> None:
    signal = signal_on(executor, rr.double, rr.describe_call)
    assert signal.send_parallel_robust(7, x=3) == [
        (rr.double, 6),
        (rr.describe_call, (7, ["signal", "x"])),
    ]


def test_a_module_level_signal_reaches_workers_as_their_own_copy_and_others_as_a_stand_in(
    executor: Executor,
) -> None:
    rr.module_signal.executor = executor
    rr.module_signal.connect(rr.signal_seen)
    try:
        [(_, (text, same))] = rr.module_signal.send_parallel(None)
    finally:
        rr.module_signal.disconnect(rr.signal_seen)
        rr.module_signal.executor = None
    assert same
    assert "remote_receivers.module_signal" in text

    local = signal_on(executor, rr.signal_seen)
    [(_, (text, same))] = local.send_parallel(None)
    assert not same
    assert text.startswith("<RemoteSignal remote.signal")


def test_no_receivers_leaves_the_executor_untouched(
    executor: Executor, submitted: list[object]
) -> None:
    signal = Signal(executor=executor)
    assert signal.send_parallel(None) == []
    assert signal.send_parallel_robust(None) == []
    signal.connect(rr.double, sender="someone else")
    assert signal.send_parallel("me") == []
    assert submitted == []


def test_asend_parallel_awaits_remote_receivers_without_blocking_the_loop(
    executor: Executor, release: str
) -> None:
    signal = signal_on(executor, rr.double, rr.wait_for_release)

    async def main() -> tuple[list[tuple[Callable[..., Any], Any]], int]:
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.005)

        ticker = asyncio.create_task(tick())
        dispatch = asyncio.create_task(signal.asend_parallel(None, x=2, release=release))
        await asyncio.sleep(0.3)  # the receiver waits; the loop must keep ticking
        seen = ticks
        Path(release).touch()  # noqa: ASYNC240 - one quick file creation ends the wait
        responses = await asyncio.wait_for(dispatch, WAIT)
        ticker.cancel()
        return responses, seen

    responses, ticks = asyncio.run(main())
    assert responses == [(rr.double, 4), (rr.wait_for_release, "released")]
    assert ticks >= 10


async def pid_here(**kwargs: Any) -> int:
    return os.getpid()


def test_async_receivers_run_here_after_the_remote_ones(executor: Executor) -> None:
    signal = signal_on(executor, pid_here, rr.pid)

    async def main() -> list[tuple[Callable[..., Any], Any]]:
        return await signal.asend_parallel(None)

    for responses in (signal.send_parallel(None), asyncio.run(main())):
        # Sync receivers first (in a worker), then the async ones (here), as on threads.
        assert [r for r, _ in responses] == [rr.pid, pid_here]
        assert responses[0][1] != os.getpid()
        assert responses[1][1] == os.getpid()


# -- failures -----------------------------------------------------------------------------


def test_send_parallel_raises_the_earliest_connected_failure_with_the_workers_traceback(
    executor: Executor, logs: list[MutableMapping[str, Any]], client: Any
) -> None:
    # fail_after fails last but is connected first: its failure is raised,
    # fail_key's (which came first) is logged.
    signal = signal_on(executor, rr.fail_after, rr.fail_key, rr.double)

    with pytest.raises(ValueError, match="failed late") as raised:
        signal.send_parallel(None, delay=0.3)

    cause = raised.value.__cause__
    assert isinstance(cause, _remote.RemoteTraceback)
    assert "remote_receivers.py" in str(cause)
    assert "fail_after" in str(cause)
    [event] = logs
    assert event["event"] == "signal.receiver_failed"
    assert event["receiver"] == "remote_receivers.fail_key"
    assert event["method"] == "send_parallel"
    assert isinstance(event["exc_info"], KeyError)
    assert is_worker_address(event["thread_name"], executor, client)


def test_receivers_after_a_failure_that_had_not_started_never_start(
    executor: Executor, tmp_path: Path, release: str
) -> None:
    # Two workers: one fails at once, the other is held by a waiting receiver;
    # the ten markers after them are queued when the failure is raised.
    marks = tmp_path / "marks"
    marks.mkdir()
    signal = signal_on(executor, rr.fail_value, rr.wait_for_release)
    for n in range(10):
        signal.connect(rr.mark, dispatch_uid=f"mark {n}", weak=False)

    started = time.monotonic()
    with pytest.raises(ValueError, match="value failed"):
        signal.send_parallel(None, release=release, marks=str(marks))
    assert time.monotonic() - started < WAIT / 2  # raised at once, not after the wait
    cancellation_delivered(executor, "remote_receivers.mark-")
    Path(release).touch()
    time.sleep(0.5)  # anything not cancelled would run now that the worker is free
    ran = len(list(marks.iterdir()))
    # The free worker runs a marker or two before the failure arrives, and a
    # process pool moves up to max_workers + 1 tasks into its call queue,
    # past cancelling; the rest never start.
    assert ran <= 5, f"{ran} of the 10 receivers after the failure ran"


def test_send_parallel_robust_answers_failures_in_place_and_logs_each_with_the_worker(
    executor: Executor, logs: list[MutableMapping[str, Any]], client: Any
) -> None:
    signal = signal_on(executor, rr.fail_value, rr.double, rr.fail_key)

    responses = signal.send_parallel_robust("shop", x=5)

    assert [r for r, _ in responses] == [rr.fail_value, rr.double, rr.fail_key]
    assert isinstance(responses[0][1], ValueError)
    assert responses[1][1] == 10
    assert isinstance(responses[2][1], KeyError)
    assert isinstance(responses[0][1].__cause__, _remote.RemoteTraceback)
    by_receiver = {event["receiver"]: event for event in logs}
    assert set(by_receiver) == {"remote_receivers.fail_value", "remote_receivers.fail_key"}
    for event, response in (
        (by_receiver["remote_receivers.fail_value"], responses[0][1]),
        (by_receiver["remote_receivers.fail_key"], responses[2][1]),
    ):
        assert event["event"] == "signal.receiver_failed"
        assert event["log_level"] == "error"
        assert event["signal"] == "remote.signal"
        assert event["sender"] == "'shop'"
        assert event["method"] == "send_parallel_robust"
        assert event["exc_info"] is response
        assert event["duration_ms"] >= 0.0
        assert is_worker_address(event["thread_name"], executor, client)


def test_an_exception_that_is_not_an_exception_is_raised_even_when_robust(
    executor: Executor,
) -> None:
    signal = signal_on(executor, rr.double, rr.system_exit)
    with pytest.raises(SystemExit) as raised:
        signal.send_parallel_robust(None, x=1)
    assert raised.value.args == (7,)


def test_a_failure_after_send_parallel_raised_is_still_logged(
    process_pool: ProcessPoolExecutor, logs: list[MutableMapping[str, Any]]
) -> None:
    # On a process pool a running task cannot be cancelled: it goes on, and
    # its failure is logged when it ends. (dask cancels running tasks too.)
    signal = signal_on(process_pool, rr.fail_value, rr.fail_after)

    with pytest.raises(ValueError, match="value failed"):
        signal.send_parallel(None, delay=0.5)

    wait_for(lambda: len(logs) == 1)
    [event] = logs
    assert event["receiver"] == "remote_receivers.fail_after"
    assert str(event["exc_info"]) == "failed late"
    assert event["thread_name"].startswith("pid ")


def test_a_response_or_exception_that_cannot_travel_back_is_that_receivers_failure(
    executor: Executor,
) -> None:
    signal = signal_on(executor, rr.unpicklable_response, rr.raise_unpicklable, rr.double)

    responses = signal.send_parallel_robust(None, x=1)

    response_error, exception_error = responses[0][1], responses[1][1]
    assert isinstance(response_error, TypeError)
    assert "remote_receivers.unpicklable_response returned a response" in str(response_error)
    assert isinstance(exception_error, RuntimeError)
    assert "raised LockedError: holding a lock" in str(exception_error)
    assert "remote.signal.send_parallel_robust()" in str(exception_error)
    assert responses[2][1] == 2


def test_cancelling_the_awaiting_task_cancels_the_tasks_not_started(
    executor: Executor, tmp_path: Path, release: str
) -> None:
    # Ten receivers that wait for the release, then mark: only those that had
    # started when the awaiting task was cancelled ever mark.
    marks = tmp_path / "marks"
    marks.mkdir()
    signal = Signal(name="remote.signal", executor=executor)
    for n in range(10):
        signal.connect(rr.mark_when_released, dispatch_uid=n, weak=False)

    async def main() -> None:
        dispatch = asyncio.create_task(
            signal.asend_parallel(None, release=release, marks=str(marks))
        )
        await asyncio.sleep(0.5)  # both workers are held
        dispatch.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(dispatch, WAIT)

    asyncio.run(main())
    cancellation_delivered(executor, "remote_receivers.mark_when_released-")
    Path(release).touch()
    time.sleep(0.5)  # anything not cancelled would run now that the workers are free
    # Two running, and on a process pool up to max_workers + 1 more in its
    # call queue, past cancelling; the others never start.
    assert len(list(marks.iterdir())) <= 5


# -- the deadline -------------------------------------------------------------------------


def test_the_timeout_raises_timeout_error_naming_the_unfinished_receivers(
    executor: Executor, release: str, logs: list[MutableMapping[str, Any]]
) -> None:
    signal = signal_on(executor, rr.double, rr.wait_for_release, timeout=0.5)

    started = time.monotonic()
    with pytest.raises(TimeoutError, match=r"remote_receivers\.wait_for_release") as raised:
        signal.send_parallel(None, release=release)

    assert time.monotonic() - started < 5.0
    assert "remote.signal.send_parallel()" in str(raised.value)
    assert "0.5 s deadline" in str(raised.value)
    assert "remote_receivers.double" not in str(raised.value)
    events = [event["event"] for event in logs]
    assert events == ["signal.dispatch_timeout", "signal.receiver_timeout"]
    assert logs[0]["receivers"] == ["remote_receivers.wait_for_release"]


def test_a_process_pool_tells_receivers_that_never_started_from_running_ones(
    process_pool: ProcessPoolExecutor, release: str, logs: list[MutableMapping[str, Any]]
) -> None:
    # Two tasks on the workers and up to three in the pool's call queue can
    # have started; the last two of seven cannot have.
    signal = signal_on(process_pool, rr.wait_for_release, timeout=0.5)
    for n in range(6):
        signal.connect(rr.wait_for_release, dispatch_uid=f"more {n}", weak=False)

    with pytest.raises(TimeoutError) as raised:
        signal.send_parallel(None, release=release)

    assert "did not finish within the 0.5 s deadline" in str(raised.value)
    assert "never started within the 0.5 s deadline" in str(raised.value)
    [dispatch_event] = [e for e in logs if e["event"] == "signal.dispatch_timeout"]
    assert dispatch_event["running"] + dispatch_event["not_started"] == 7
    assert dispatch_event["not_started"] >= 2


def test_the_timeout_gives_robust_receivers_a_timeout_error_each(
    executor: Executor, release: str
) -> None:
    signal = signal_on(executor, rr.double, rr.wait_for_release, timeout=0.5)

    responses = signal.send_parallel_robust(None, x=3, release=release)

    assert responses[0] == (rr.double, 6)
    assert responses[1][0] is rr.wait_for_release
    assert isinstance(responses[1][1], TimeoutError)
    assert "remote_receivers.wait_for_release" in str(responses[1][1])


def test_an_expired_deadline_submits_nothing(executor: Executor, submitted: list[object]) -> None:
    signal = signal_on(executor, rr.double)
    with parasignal.deadline(0), pytest.raises(TimeoutError, match="deadline had passed"):
        signal.send_parallel(None, x=1)
    assert submitted == []


def test_asend_parallel_honours_the_timeout(executor: Executor, release: str) -> None:
    signal = signal_on(executor, rr.double, rr.wait_for_release, timeout=0.5)

    async def main() -> list[tuple[Callable[..., Any], Any]]:
        return await signal.asend_parallel_robust(None, x=1, release=release)

    responses = asyncio.run(main())
    assert responses[0] == (rr.double, 2)
    assert isinstance(responses[1][1], TimeoutError)


# -- what cannot be pickled ----------------------------------------------------------------


def test_an_unpicklable_receiver_is_named_before_anything_is_submitted(
    executor: Executor, submitted: list[object]
) -> None:
    signal = signal_on(executor, rr.double, rr.Unpicklable())

    with pytest.raises(TypeError, match=r"remote\.signal\.send_parallel\(\)") as raised:
        signal.send_parallel(None)

    assert "receiver remote_receivers.Unpicklable" in str(raised.value)
    assert "cannot be pickled" in str(raised.value)
    assert submitted == []


def test_a_lambda_cannot_go_to_a_process_pool(process_pool: ProcessPoolExecutor) -> None:
    # Process pools pickle with pickle, which sends functions by name only
    # (dask's cloudpickle sends a lambda by value).
    signal = signal_on(process_pool, lambda **kwargs: 1)
    with pytest.raises(TypeError, match=r"receiver .*<lambda>.*cannot be pickled"):
        signal.send_parallel_robust(None)


def test_an_unpicklable_sender_is_named_before_anything_is_submitted(
    executor: Executor, submitted: list[object]
) -> None:
    signal = signal_on(executor, rr.double)
    with pytest.raises(TypeError, match=r"remote\.signal\.send_parallel_robust\(\)") as raised:
        signal.send_parallel_robust(threading.Lock())
    assert "its sender <unlocked _thread.lock object" in str(raised.value)
    assert submitted == []


def test_an_unpicklable_named_argument_is_named_by_keyword_never_by_value(
    executor: Executor, submitted: list[object]
) -> None:
    class Secret:
        def __init__(self) -> None:
            self.lock = threading.Lock()

        def __repr__(self) -> str:
            return "card-4111"

    signal = signal_on(executor, rr.double)
    with pytest.raises(TypeError, match=r"remote\.signal\.send_parallel\(\)") as raised:
        signal.send_parallel(None, x=1, card=Secret())
    assert "its named argument 'card' (a " in str(raised.value)
    assert "card-4111" not in str(raised.value)
    assert submitted == []


# -- a cluster that goes away ---------------------------------------------------------------


@pytest.mark.parametrize("robust", [False, True])
def test_a_process_pool_whose_worker_dies_fails_the_unfinished_receivers(
    robust: bool, release: str
) -> None:
    pool = ProcessPoolExecutor(2, mp_context=forkserver())
    try:
        signal = signal_on(pool, rr.double, rr.wait_for_release, rr.exit_process, rr.double)
        send = signal.send_parallel_robust if robust else signal.send_parallel
        if not robust:
            with pytest.raises(BrokenExecutor, match="was lost") as raised:
                send(None, x=1, release=release)
            assert "remote_receivers." in str(raised.value)
            assert isinstance(raised.value.__cause__, BrokenProcessPool)
            return
        responses = send(None, x=1, release=release)
        lost = [r for r, v in responses if isinstance(v, BrokenExecutor)]
        assert rr.exit_process in lost
        assert rr.wait_for_release in lost
        assert all(isinstance(v, BrokenExecutor) or v == 2 for _, v in responses), responses
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def test_a_dask_cluster_that_goes_away_mid_dispatch_gives_each_unfinished_receiver_an_error(
    release: str, logs: list[MutableMapping[str, Any]]
) -> None:
    local = distributed.LocalCluster(
        processes=True, n_workers=1, threads_per_worker=1, dashboard_address=":0"
    )
    dask_client = distributed.Client(local)
    try:
        signal = signal_on(dask_client, rr.double, rr.wait_for_release, rr.double)
        signal.connect(rr.wait_for_release, dispatch_uid="second wait", weak=False)
        closer = threading.Timer(0.5, local.close)
        closer.start()
        started = time.monotonic()
        responses = signal.send_parallel_robust(None, x=1, release=release)
        Path(release).touch()  # the worker can end its task, and close
        closer.join(WAIT)
    finally:
        dask_client.close()
        local.close()
    assert time.monotonic() - started < WAIT
    assert responses[0] == (rr.double, 2)
    unfinished = [v for _, v in responses[1:] if v != 2]
    assert unfinished
    for error in unfinished:
        assert isinstance(error, BrokenExecutor)
        assert "was lost" in str(error)
    assert {event["receiver"] for event in logs} >= {"remote_receivers.wait_for_release"}


def test_a_dask_client_closed_mid_dispatch_raises_a_clear_error(cluster: Any, release: str) -> None:
    dask_client = distributed.Client(cluster)
    signal = signal_on(dask_client, rr.wait_for_release)
    closer = threading.Timer(0.5, dask_client.close)
    closer.start()
    try:
        with pytest.raises(BrokenExecutor, match=r"remote_receivers\.wait_for_release was lost"):
            signal.send_parallel(None, release=release)
    finally:
        closer.join(WAIT)
        dask_client.close()


def test_an_executor_that_refuses_the_first_task_raises_runtime_error_naming_the_signal(
    client: Any,
) -> None:
    pool = ProcessPoolExecutor(1, mp_context=forkserver())
    pool.shutdown()
    dask_executor = client.get_executor()
    dask_executor.shutdown()
    for executor in (pool, dask_executor):
        signal = signal_on(executor, rr.double)
        with pytest.raises(
            RuntimeError, match=r"remote\.signal\.send_parallel\(\) could not start"
        ):
            signal.send_parallel(None)
