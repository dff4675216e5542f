"""The README's logging recipes, run as written: every event reaches its destination.

Each recipe is taken verbatim from README.md ("Structured events") and run in a
fresh interpreter, followed by a robust dispatch whose receiver fails on a
worker thread; the event must arrive whole, and nothing may be reported as a
logging error.
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from parasignal import Signal

README = Path(__file__).resolve().parent.parent / "README.md"

DISPATCH = textwrap.dedent(
    """
    from parasignal import Signal

    order_placed = Signal(name="order_placed", max_workers=2, caller_runs=False)

    def reserve_inventory(sender, **kwargs):
        raise RuntimeError("inventory service down")

    order_placed.connect(reserve_inventory)
    [(_, error)] = order_placed.send_parallel_robust(sender="shop", secret="hunter2")
    assert isinstance(error, RuntimeError)
    order_placed.shutdown()
    """
)


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)


def recipe(marker: str) -> str:
    found = [
        block for block in python_blocks() if "structlog.configure(" in block and marker in block
    ]
    assert len(found) == 1, f"expected one README recipe containing {marker!r}, found {len(found)}"
    return found[0]


def run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_json_lines_recipe_writes_each_failure_as_one_json_object() -> None:
    done = run(recipe("JSONRenderer") + DISPATCH)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    [line] = [line for line in done.stdout.splitlines() if line.strip()]
    event = json.loads(line)
    assert event["event"] == "signal.receiver_failed"
    assert event["signal"] == "order_placed"
    assert event["receiver"] == "__main__.reserve_inventory"
    assert event["thread_name"].startswith("parasignal-order_placed")
    assert "hunter2" not in line  # no payload, and no frame locals


def test_the_stdlib_logging_recipe_delivers_every_failure_to_logging() -> None:
    # The recipe sends records to the root logger's stderr handler; logging's
    # own errors ("--- Logging error ---") would go to stderr as well.
    done = run(recipe("render_to_log_kwargs") + DISPATCH)
    assert done.returncode == 0, done.stderr
    assert "Logging error" not in done.stderr
    assert "Attempt to overwrite" not in done.stderr
    assert "ERROR:parasignal:signal.receiver_failed" in done.stderr
    assert "RuntimeError: inventory service down" in done.stderr
    assert "hunter2" not in done.stderr


def test_no_event_key_collides_with_a_log_record_attribute() -> None:
    signal = Signal(name="keys", max_workers=1, timeout=0.01)
    release = __import__("threading").Event()

    def failing(**kwargs: object) -> None:
        raise ValueError("failed")

    def hanging(**kwargs: object) -> None:
        release.wait(10)

    signal.connect(failing)
    signal.connect(hanging)
    try:
        with capture_logs() as events:
            signal.send_parallel_robust(None)
    finally:
        release.set()
        signal.shutdown()
    assert {event["event"] for event in events} == {
        "signal.receiver_failed",
        "signal.receiver_timeout",
        "signal.dispatch_timeout",
    }
    record_attributes = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
    for event in events:
        # exc_info is the one key structlog hands to logging as itself.
        clashing = (set(event) - {"exc_info", "log_level", "event"}) & record_attributes
        assert clashing == set(), f"{event['event']} has keys LogRecord owns: {clashing}"


@pytest.mark.parametrize("method", ["send_robust", "send_parallel_robust"])
def test_a_huge_exception_message_is_cut_in_the_event_but_whole_in_the_response(
    method: str,
) -> None:
    signal = Signal(name="huge", max_workers=1)
    message = "x" * 5_000_000

    def failing(**kwargs: object) -> None:
        raise ValueError(message)

    signal.connect(failing)
    with capture_logs() as events:
        [(_, error)] = getattr(signal, method)(None)
    signal.shutdown()
    assert str(error) == message
    [event] = events
    logged = event["exc_info"]
    assert type(logged) is ValueError
    assert len(str(logged)) < 2100
    assert str(logged).endswith("(5000000 characters in all)")
    assert logged.__traceback__ is error.__traceback__


def test_an_exception_that_will_not_copy_is_logged_through_a_stand_in() -> None:
    from parasignal._events import TruncatedReceiverError, bounded_exception  # noqa: PLC0415

    class StubbornError(Exception):
        def __init__(self, code: int, text: str) -> None:
            super().__init__(code, text)
            self.text = text

        def __str__(self) -> str:
            return self.text

    original = StubbornError(7, "y" * 10_000)
    logged = bounded_exception(original)
    assert isinstance(logged, TruncatedReceiverError)
    assert str(logged).startswith(f"{StubbornError.__module__}.{StubbornError.__qualname__}: yyy")
    assert len(str(logged)) < 2200
    assert bounded_exception(ValueError("short")).args == ("short",)
