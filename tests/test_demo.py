"""``parasignal demo``: in-process, as a subprocess, and its usage errors."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import structlog

from parasignal import _cli, _demo

RECEIVERS = (
    "post_webhook",
    "purge_cache",
    "write_audit_log",
    "reserve_inventory",
    "refresh_recommendations",
)
SMALL = ["demo", "--delay-ms", "10", "--timeout", "0.2", "--receivers", "2"]


def listening_sockets() -> set[str]:
    """Inodes of this process's open sockets (Linux), or an empty set elsewhere."""
    fd_dir = Path("/proc/self/fd")
    if not fd_dir.is_dir():
        return set()
    found = set()
    for fd in fd_dir.iterdir():
        try:
            target = str(fd.readlink())
        except OSError:
            continue
        if target.startswith("socket:"):
            found.add(target)
    return found


def server_port(output: str) -> int:
    match = re.search(r"HTTP server: http://127\.0\.0\.1:(\d+)", output)
    assert match, output
    return int(match.group(1))


def assert_report(output: str, receivers: tuple[str, ...]) -> None:
    sections = re.split(r"^\[\d/4\] ", output, flags=re.MULTILINE)[1:]
    modes = [section.split(":", 1)[0] for section in sections]
    assert modes == ["send", "send_robust", "send_parallel", "send_parallel_robust"]
    tables = dict(zip(modes, sections, strict=True))
    for mode, section in tables.items():
        for name in receivers:
            assert re.search(rf"^  {name} +\S", section, flags=re.MULTILINE), (mode, name)
        assert re.search(r"wall time: [\d,]+ ms", section), mode
    # send raises at the failing receiver, as Django does: later ones never run.
    assert re.search(
        r"^  reserve_inventory +HTTPError: HTTP Error 503", tables["send"], re.MULTILINE
    )
    assert re.search(r"^  refresh_recommendations +not called", tables["send"], re.MULTILINE)
    assert "raised HTTPError: HTTP Error 503" in tables["send"]
    assert "raised HTTPError: HTTP Error 503" in tables["send_parallel"]
    assert re.search(
        r"^  refresh_recommendations +200 refreshed", tables["send_robust"], re.MULTILINE
    )
    assert re.search(
        r"^  refresh_recommendations +TimeoutError", tables["send_parallel_robust"], re.MULTILINE
    )
    # The structured events, with the request id bound in the caller's context.
    for mode in ("send_robust", "send_parallel_robust"):
        assert re.search(
            rf"event=signal\.receiver_failed level=error request_id=req-7f3a "
            rf"signal=order_placed receiver=parasignal\._demo\.reserve_inventory method={mode} ",
            tables[mode],
        ), mode
    assert re.search(
        r"event=signal\.receiver_timeout level=warning request_id=req-7f3a signal=order_placed "
        r"receiver=parasignal\._demo\.refresh_recommendations method=send_parallel_robust ",
        tables["send_parallel_robust"],
    )
    assert "thread_name=parasignal-order_placed" in tables["send_parallel_robust"]
    assert re.search(r"structured events: none", tables["send"])
    assert re.search(
        r"^Speed-up: send_parallel_robust answered [\d.]+x sooner than send_robust",
        output,
        re.MULTILINE,
    )
    assert "unexpected:" not in output


def test_demo_in_process(capsys: pytest.CaptureFixture[str]) -> None:
    threads_before = set(threading.enumerate())
    sockets_before = listening_sockets()
    config_before = structlog.get_config()
    configured_before = structlog.is_configured()
    started = time.perf_counter()
    status = _cli.main(SMALL)
    elapsed = time.perf_counter() - started
    out, err = capsys.readouterr()
    assert status == 0, out
    assert elapsed < 10, elapsed
    assert_report(out, (*RECEIVERS, "notify_partner_1", "notify_partner_2"))
    assert "notify_partner_3" not in out
    assert "[1/4] send ..." in err
    assert "[4/4] send_parallel_robust: " in err
    # Nothing left behind: threads, sockets, structlog's configuration.
    assert set(threading.enumerate()) <= threads_before
    assert listening_sockets() <= sockets_before
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", server_port(out)), timeout=2).close()
    assert structlog.is_configured() == configured_before
    assert structlog.get_config() == config_before
    assert structlog.contextvars.get_contextvars() == {}


def test_demo_subprocess_with_defaults() -> None:
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "parasignal", "demo"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    elapsed = time.perf_counter() - started
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert elapsed < 15, elapsed  # the contract: about 15 s with defaults
    assert_report(proc.stdout, (*RECEIVERS, "notify_partner_1", "notify_partner_3"))
    assert "Traceback" not in proc.stderr
    assert proc.stderr.splitlines()[-1] == "done"
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", server_port(proc.stdout)), timeout=2).close()


def test_demo_subprocess_small_receiver_count() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "parasignal", *SMALL[:-1], "0"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert_report(proc.stdout, RECEIVERS)
    assert "notify_partner" not in proc.stdout


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--receivers", "-1", "argument --receivers: must be an integer from 0 to 50, not '-1'"),
        ("--receivers", "many", "argument --receivers: must be an integer from 0 to 50"),
        ("--delay-ms", "5000", "argument --delay-ms: must be an integer from 0 to 2000"),
        ("--timeout", "nan", "argument --timeout: must be a number of seconds from 0.05 to 5"),
        ("--timeout", "0", "argument --timeout: must be a number of seconds from 0.05 to 5"),
    ],
)
def test_bad_option_value_is_a_usage_error(
    option: str, value: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc_info:
        _cli.main(["demo", option, value])
    assert exc_info.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1, err
    assert errors[0].startswith(f"parasignal demo: error: {message}"), err
    assert "Traceback" not in err


def test_bad_option_value_exits_2_from_the_command_line() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "parasignal", "demo", "--receivers", "-1"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.splitlines()[-1] == (
        "parasignal demo: error: argument --receivers: must be an integer from 0 to 50, not '-1'"
    )


def test_options_have_documented_defaults() -> None:
    options = _demo.DemoOptions()
    assert (options.extra_receivers, options.delay_ms, options.timeout_s) == (3, 100, 0.5)
    assert options.slow_s == pytest.approx(1.5)


def test_a_delay_the_deadline_cannot_cover_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Regression: --delay-ms 400 with the 0.5 s deadline made send_parallel
    # raise TimeoutError, and the demo then failed its own check (exit 1).
    status = _cli.main(["demo", "--delay-ms", "400", "--receivers", "0"])
    out, err = capsys.readouterr()
    assert status == 2
    assert out == ""
    assert err.strip() == (
        "parasignal demo: error: --delay-ms 400 needs --timeout above 0.8 s (endpoints answer "
        "within twice the delay, and only the slow one may outlive the deadline)."
    )
