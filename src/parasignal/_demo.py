"""``parasignal demo``: why parasignal exists, in one command.

The demo starts a small HTTP server on ``127.0.0.1`` (a random free port)
whose endpoints answer after realistic delays, or fail, and connects
receivers that make real HTTP calls to it with :mod:`urllib.request`: a
webhook, a cache purge, an audit write, a stock reservation that fails
(HTTP 503), a recommendations refresh that answers only after three times
the signal's deadline, and ``--receivers`` extra partner webhooks. It then
dispatches the same ``order_placed`` event with ``send``, ``send_robust``,
``send_parallel`` and ``send_parallel_robust`` and prints, on stdout, a
table per mode (receiver, result, duration), each mode's wall time, the
speed-up of parallel dispatch, and the structured ``signal.receiver_failed``
and ``signal.receiver_timeout`` events parasignal emitted.

Contract:

* Progress goes to stderr as one plain line per step (``[2/4] send_robust
  ...`` and ``[2/4] send_robust: 2.31 s``), whether or not stderr is a
  terminal, so that stdout holds only the report.
* Only the standard library and structlog are used. structlog is configured
  for the duration of the run only (events are captured and rendered as
  logfmt lines in the report) and its previous configuration is restored
  afterwards; so is anything bound with ``structlog.contextvars``.
* Everything the demo starts is stopped before it returns, even on error or
  ``KeyboardInterrupt``: the signal's own pool (after waiting for receivers
  still running in the background), the server's thread and its listening
  socket, and every request handler thread.
* With the defaults (5 + 3 receivers, 100 ms base delay, 0.5 s deadline) a
  run takes about 5 seconds; its length grows with ``--timeout`` (the slow
  receiver takes three times the deadline, and ``send_robust`` waits for it)
  and with ``--delay-ms``.
* Exit status 0 when every mode behaved as documented, 1 otherwise; usage
  errors exit with status 2 (argparse).
"""

from __future__ import annotations

import argparse
import contextvars
import http.server
import json
import math
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Final, TextIO

import structlog

from . import _events
from .dispatcher import Signal

__all__ = ["DemoOptions", "add_parser", "run", "run_demo"]

MODES: Final = ("send", "send_robust", "send_parallel", "send_parallel_robust")
MAX_EXTRA_RECEIVERS: Final = 50
MAX_DELAY_MS: Final = 2000
MIN_TIMEOUT_S: Final = 0.05
MAX_TIMEOUT_S: Final = 5.0
SLOW_FACTOR: Final = 3.0  # the slow endpoint answers after this many deadlines
ORDER_ID: Final = 42
REQUEST_ID: Final = "req-7f3a"  # bound with structlog.contextvars: see it in every event
SERVER_THREAD_NAME: Final = "parasignal-demo-server"


@dataclass(frozen=True)
class DemoOptions:
    """What one demo run does (the command line's options, validated)."""

    extra_receivers: int = 3
    delay_ms: int = 100
    timeout_s: float = 0.5

    @property
    def slow_s(self) -> float:
        """How long the slow endpoint takes to answer."""
        return SLOW_FACTOR * self.timeout_s


class Order:
    """The sender of the demo's ``order_placed`` signal (a model class, in Django)."""


# -- the HTTP server -------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    """How one path of the demo server answers: after *delay_s*, with *status*."""

    delay_s: float
    status: int
    body: str


class DemoServer(http.server.ThreadingHTTPServer):
    """A local HTTP server whose endpoints answer after configured delays.

    Handler threads are not daemons and are joined by :meth:`server_close`;
    :meth:`stop` wakes any handler still waiting, so closing never hangs.
    """

    daemon_threads = False
    block_on_close = True

    def __init__(self, endpoints: dict[str, Endpoint]) -> None:
        self.endpoints = endpoints
        self.stopping = threading.Event()
        super().__init__(("127.0.0.1", 0), _Handler)

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.server_address[1]}"

    def stop(self) -> None:
        """Wake waiting handlers, stop serving, join every thread, close the socket."""
        self.stopping.set()
        self.shutdown()
        self.server_close()


class _Handler(http.server.BaseHTTPRequestHandler):
    server: DemoServer
    protocol_version = "HTTP/1.0"

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        endpoint = self.server.endpoints.get(self.path)
        if endpoint is None:
            self._answer(404, "no such endpoint")
            return
        self.server.stopping.wait(endpoint.delay_s)
        self._answer(endpoint.status, endpoint.body)

    def _answer(self, status: int, body: str) -> None:
        payload = json.dumps({"status": body}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature
        """Keep the access log out of the demo's output."""


def build_endpoints(options: DemoOptions) -> dict[str, Endpoint]:
    """Return the server's endpoints: 0.5x to 2x the base delay, a 503, and a slow one."""
    base = options.delay_ms / 1000.0
    endpoints = {
        "/webhooks/order": Endpoint(1.5 * base, 202, "delivered"),
        "/cache/purge": Endpoint(0.5 * base, 200, "purged"),
        "/audit/events": Endpoint(1.0 * base, 201, "recorded"),
        "/inventory/reserve": Endpoint(0.8 * base, 503, "inventory service unavailable"),
        "/recommendations/refresh": Endpoint(options.slow_s, 200, "refreshed"),
    }
    for index in range(1, options.extra_receivers + 1):
        delay = (1.0 + 0.25 * (index % 5)) * base
        endpoints[f"/partners/{index}/webhook"] = Endpoint(delay, 202, "delivered")
    return endpoints


# -- the receivers ---------------------------------------------------------------


@dataclass
class Call:
    """One receiver call, as the receiver itself saw it."""

    started: float
    finished: float | None = None
    outcome: str | None = None  # what it returned, or the exception it raised


@dataclass
class Recorder:
    """The receiver calls of one dispatch, keyed by receiver name. Thread-safe."""

    calls: dict[str, Call] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self, name: str) -> Call:
        call = Call(time.perf_counter())
        with self.lock:
            self.calls[name] = call
        return call

    def finish(self, call: Call, outcome: str) -> None:
        with self.lock:
            call.outcome = outcome
            call.finished = time.perf_counter()

    def snapshot(self) -> dict[str, Call]:
        """Return a copy of the calls as they are now (later calls keep changing the original)."""
        with self.lock:
            return {name: Call(c.started, c.finished, c.outcome) for name, c in self.calls.items()}


@dataclass(frozen=True)
class Session:
    """What receivers need: where the server is, and where to record their calls."""

    base_url: str
    opener: urllib.request.OpenerDirector
    recorder: Recorder
    http_timeout_s: float


# Receivers find the session here. send_parallel runs each receiver in a copy
# of the caller's contextvars context, so worker threads see it too.
_session: contextvars.ContextVar[Session] = contextvars.ContextVar("parasignal_demo_session")


def _post(name: str, path: str, order_id: int) -> str:
    """POST the order to *path*, record the call under *name*; return "STATUS body"."""
    session = _session.get()
    call = session.recorder.start(name)
    request = urllib.request.Request(  # noqa: S310 - always http://127.0.0.1
        session.base_url + path,
        data=json.dumps({"order_id": order_id}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with session.opener.open(request, timeout=session.http_timeout_s) as response:
            answer = json.loads(response.read())
            result = f"{response.status} {answer['status']}"
    except urllib.error.HTTPError as err:
        err.close()
        session.recorder.finish(call, _describe_exception(err))
        raise
    except Exception as err:
        session.recorder.finish(call, _describe_exception(err))
        raise
    session.recorder.finish(call, result)
    return result


def post_webhook(sender: object, order_id: int, **kwargs: Any) -> str:
    """Tell the shop's webhook subscribers about the order."""
    return _post("post_webhook", "/webhooks/order", order_id)


def purge_cache(sender: object, order_id: int, **kwargs: Any) -> str:
    """Purge the CDN's cached product pages."""
    return _post("purge_cache", "/cache/purge", order_id)


def write_audit_log(sender: object, order_id: int, **kwargs: Any) -> str:
    """Record the order in the audit service."""
    return _post("write_audit_log", "/audit/events", order_id)


def reserve_inventory(sender: object, order_id: int, **kwargs: Any) -> str:
    """Reserve stock: the inventory service answers 503, so this one raises."""
    return _post("reserve_inventory", "/inventory/reserve", order_id)


def refresh_recommendations(sender: object, order_id: int, **kwargs: Any) -> str:
    """Refresh recommendations: answers only after three times the deadline."""
    return _post("refresh_recommendations", "/recommendations/refresh", order_id)


NAMED_RECEIVERS: Final = (
    post_webhook,
    purge_cache,
    write_audit_log,
    reserve_inventory,
    refresh_recommendations,
)


def partner_webhook(index: int) -> Callable[..., str]:
    """Return a receiver POSTing to partner *index*'s webhook, named ``notify_partner_<index>``."""
    name = f"notify_partner_{index}"

    def receiver(sender: object, order_id: int, **kwargs: Any) -> str:
        return _post(name, f"/partners/{index}/webhook", order_id)

    receiver.__name__ = receiver.__qualname__ = name
    return receiver


# -- captured structlog events ---------------------------------------------------


class EventLog:
    """A structlog processor that captures parasignal's events instead of printing them.

    Each captured event is kept as a dict; :meth:`lines` renders those of one
    method as logfmt lines, the way a log file would show them.
    """

    def __init__(self) -> None:
        self._events: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._renderer = structlog.processors.LogfmtRenderer(
            key_order=["event", "level", "request_id", "signal", "receiver", "method"],
            drop_missing=True,
        )

    def __call__(self, _logger: object, _method_name: str, event_dict: Any) -> Any:
        event = dict(event_dict)
        exc = event.get("exc_info")
        if isinstance(exc, BaseException):
            event["exc_info"] = _describe_exception(exc)
        if isinstance(event.get("duration_ms"), float):
            event["duration_ms"] = round(event["duration_ms"], 1)
        with self._lock:
            self._events.append(event)
        raise structlog.DropEvent

    def events(self, method: str | None = None) -> list[dict[str, Any]]:
        """Return the events captured so far (for *method* only, if given)."""
        with self._lock:
            return [e for e in self._events if method is None or e.get("method") == method]

    def lines(self, method: str) -> list[str]:
        """Return the events of *method*, rendered as logfmt lines."""
        return [str(self._renderer(None, "", dict(e))) for e in self.events(method)]


@contextmanager
def structlog_configured(event_log: EventLog) -> Iterator[None]:
    """Route structlog's events to *event_log* for the block; restore the configuration after.

    Also binds ``request_id`` with :mod:`structlog.contextvars` for the block,
    to show that it reaches events logged from worker threads.
    """
    was_configured = structlog.is_configured()
    saved = structlog.get_config()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            event_log,
        ],
        cache_logger_on_first_use=False,
    )
    try:
        with structlog.contextvars.bound_contextvars(request_id=REQUEST_ID):
            yield
    finally:
        if was_configured:
            structlog.configure(**saved)
        else:
            structlog.reset_defaults()


# -- running the modes -----------------------------------------------------------


@dataclass
class ModeResult:
    """What one dispatch mode did."""

    mode: str
    wall_s: float
    calls: dict[str, Call]  # snapshot taken when the call returned or raised
    responses: dict[str, Any] | None  # receiver name -> response; None if it raised
    error: BaseException | None


def run_mode(signal: Signal, mode: str, session: Session) -> ModeResult:
    """Send ``order_placed`` once with *mode*; record how it went."""
    token = _session.set(session)
    try:
        send: Callable[..., list[tuple[Callable[..., Any], Any]]] = getattr(signal, mode)
        started = time.perf_counter()
        try:
            answer = send(sender=Order, order_id=ORDER_ID)
        except Exception as err:  # noqa: BLE001 - send and send_parallel raise: show it
            wall = time.perf_counter() - started
            return ModeResult(mode, wall, session.recorder.snapshot(), None, err)
        wall = time.perf_counter() - started
        responses = {getattr(r, "__name__", repr(r)): response for r, response in answer}
        return ModeResult(mode, wall, session.recorder.snapshot(), responses, None)
    finally:
        _session.reset(token)


def _describe_exception(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f} ms"


def _row(name: str, result: ModeResult, timeout_s: float) -> tuple[str, str]:
    """Return the (result, duration) cells of receiver *name* in one mode's table."""
    call = result.calls.get(name)
    if call is None:
        return ("not called", "-")
    response = None if result.responses is None else result.responses.get(name)
    if isinstance(response, TimeoutError):
        return (
            f"TimeoutError: still running at the {timeout_s:g} s deadline",
            f"> {_ms(timeout_s)}",
        )
    if call.finished is None:
        return (
            "still running when the call raised; finishes in the background",
            f"> {_ms(result.wall_s)}",
        )
    outcome = call.outcome or ""
    if isinstance(response, Exception):
        outcome = _describe_exception(response)
    return (outcome, _ms(call.finished - call.started))


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], right: set[int]) -> list[str]:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(row: Sequence[str]) -> str:
        cells = [
            cell.rjust(width) if i in right else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        return "  " + "  ".join(cells).rstrip()

    return [line(header), line(["-" * w for w in widths]), *(line(row) for row in rows)]


MODE_NOTES: Final = {
    "send": "one after another on this thread; the first exception propagates (as Django)",
    "send_robust": "one after another on this thread; exceptions become responses (as Django)",
    "send_parallel": "together on worker threads; raises what send would raise",
    "send_parallel_robust": "together on worker threads; failures and deadline become responses",
}


def render_mode(
    index: int, result: ModeResult, names: Sequence[str], events: EventLog, timeout_s: float
) -> list[str]:
    """One mode's section of the report: its table, its outcome and its events."""
    rows = [[name, *_row(name, result, timeout_s)] for name in names]
    lines = [
        f"[{index}/{len(MODES)}] {result.mode}: {MODE_NOTES[result.mode]}",
        "",
        *_table(["receiver", "result", "duration"], rows, right={2}),
        "",
    ]
    if result.error is not None:
        lines.append(f"  raised {_describe_exception(result.error)}")
    lines.append(f"  wall time: {_ms(result.wall_s)}")
    logged = events.lines(result.mode)
    lines += ["", "  structured events:" if logged else "  structured events: none"]
    lines += [f"    {line}" for line in logged]
    return [*lines, ""]


def render_summary(results: Sequence[ModeResult], names: Sequence[str]) -> list[str]:
    """Render the wall time of every mode, and the speed-up of parallel dispatch."""
    rows = []
    for result in results:
        if result.error is not None:
            outcome = f"raised {type(result.error).__name__}"
        else:
            responses = result.responses or {}
            failed = sum(
                isinstance(r, Exception) and not isinstance(r, TimeoutError)
                for r in responses.values()
            )
            timed_out = sum(isinstance(r, TimeoutError) for r in responses.values())
            ok = len(responses) - failed - timed_out
            outcome = f"{ok} ok, {failed} failed, {timed_out} timed out"
        called = sum(name in result.calls for name in names)
        rows.append([result.mode, _ms(result.wall_s), f"{called}/{len(names)}", outcome])
    by_mode = {r.mode: r for r in results}
    lines = [
        "Summary",
        "",
        *_table(["mode", "wall time", "receivers called", "outcome"], rows, right={1, 2}),
        "",
    ]
    seq, par = by_mode["send_robust"].wall_s, by_mode["send_parallel_robust"].wall_s
    lines.append(
        f"Speed-up: send_parallel_robust answered {seq / max(par, 1e-9):.1f}x sooner than "
        f"send_robust ({_ms(seq)} -> {_ms(par)}), same receivers, same order."
    )
    seq, par = by_mode["send"].wall_s, by_mode["send_parallel"].wall_s
    lines.append(
        f"          send_parallel raised send's exception {seq / max(par, 1e-9):.1f}x sooner "
        f"({_ms(seq)} -> {_ms(par)})."
    )
    return lines


def check(results: Sequence[ModeResult], events: EventLog) -> list[str]:
    """List what went differently from the documented behaviour (empty when all is well)."""
    problems = []
    by_mode = {r.mode: r for r in results}
    for mode in ("send", "send_parallel"):
        error = by_mode[mode].error
        if not isinstance(error, urllib.error.HTTPError):
            problems.append(f"{mode} should have raised the HTTPError, got {error!r}")
    for mode in ("send_robust", "send_parallel_robust"):
        responses = by_mode[mode].responses
        if responses is None or not isinstance(responses.get("reserve_inventory"), Exception):
            problems.append(f"{mode} should have answered the HTTPError as a response")
        if not any(e["event"] == _events.RECEIVER_FAILED for e in events.events(mode)):
            problems.append(f"{mode} should have logged {_events.RECEIVER_FAILED}")
    responses = by_mode["send_parallel_robust"].responses or {}
    if not isinstance(responses.get("refresh_recommendations"), TimeoutError):
        problems.append("send_parallel_robust should have timed out refresh_recommendations")
    if not any(
        e["event"] == _events.RECEIVER_TIMEOUT for e in events.events("send_parallel_robust")
    ):
        problems.append(f"send_parallel_robust should have logged {_events.RECEIVER_TIMEOUT}")
    return problems


def _progress(stream: TextIO, text: str) -> None:
    print(text, file=stream, flush=True)


def run_demo(options: DemoOptions, out: TextIO, err: TextIO) -> int:
    """Run the demo: the report to *out*, progress lines to *err*; return the exit status.

    Everything started here is stopped before returning (see the module's
    docstring); structlog's configuration is restored.
    """
    receivers: list[Callable[..., Any]] = list(NAMED_RECEIVERS)
    receivers += [partner_webhook(i) for i in range(1, options.extra_receivers + 1)]
    names = [r.__name__ for r in receivers]
    events = EventLog()
    server = DemoServer(build_endpoints(options))
    thread = threading.Thread(target=server.serve_forever, name=SERVER_THREAD_NAME, daemon=True)
    signal = Signal(name="order_placed", timeout=options.timeout_s, max_workers=len(receivers))
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never a proxy
    http_timeout = options.slow_s + options.delay_ms / 1000.0 * 2 + 5.0
    results: list[ModeResult] = []
    started = time.perf_counter()
    try:
        thread.start()
        for receiver in receivers:
            signal.connect(receiver, sender=Order)
        print(_header(options, server.base_url, len(receivers)), file=out)
        with structlog_configured(events):
            for index, mode in enumerate(MODES, 1):
                _progress(err, f"[{index}/{len(MODES)}] {mode} ...")
                session = Session(server.base_url, opener, Recorder(), http_timeout)
                result = run_mode(signal, mode, session)
                results.append(result)
                _progress(err, f"[{index}/{len(MODES)}] {mode}: {result.wall_s:.2f} s")
            _progress(err, "waiting for receivers still running in the background ...")
            signal.shutdown(wait=True)
        for index, result in enumerate(results, 1):
            print("\n".join(render_mode(index, result, names, events, options.timeout_s)), file=out)
        print("\n".join(render_summary(results, names)), file=out)
    finally:
        signal.shutdown(wait=True)
        server.stop()
        thread.join()
    problems = check(results, events)
    for problem in problems:
        print(f"unexpected: {problem}", file=out)
    print(f"\nDemo finished in {time.perf_counter() - started:.1f} s.", file=out)
    _progress(err, "done")
    return 1 if problems else 0


def _header(options: DemoOptions, base_url: str, count: int) -> str:
    return "\n".join(
        [
            (
                f"parasignal demo: order_placed.send*(sender=Order, order_id={ORDER_ID}) "
                f"to {count} receivers"
            ),
            (
                f"HTTP server: {base_url} (endpoints answer after "
                f"{options.delay_ms * 0.5:g}-{options.delay_ms * 2:g} ms; /inventory/reserve "
                f"answers 503; /recommendations/refresh takes {options.slow_s:g} s)"
            ),
            (
                f"Signal(name='order_placed', timeout={options.timeout_s:g}, "
                f"max_workers={count}); structlog request_id={REQUEST_ID}"
            ),
            "",
        ]
    )


# -- command line ----------------------------------------------------------------


def _int_in(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = low - 1
        if not low <= value <= high:
            msg = f"must be an integer from {low} to {high}, not {text!r}"
            raise argparse.ArgumentTypeError(msg)
        return value

    return parse


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not MIN_TIMEOUT_S <= value <= MAX_TIMEOUT_S:  # also refuses NaN
        msg = (
            f"must be a number of seconds from {MIN_TIMEOUT_S:g} to {MAX_TIMEOUT_S:g}, not {text!r}"
        )
        raise argparse.ArgumentTypeError(msg)
    return value


def add_parser(commands: Any) -> None:
    """Register ``demo`` on *commands* (an argparse subparsers object)."""
    defaults = DemoOptions()
    parser = commands.add_parser(
        "demo",
        help="see parallel dispatch at work on real HTTP receivers",
        description=(
            "Start a local HTTP server, connect receivers that call it, and send one "
            "event with send, send_robust, send_parallel and send_parallel_robust. "
            "The report goes to stdout, progress lines to stderr."
        ),
    )
    parser.add_argument(
        "--receivers",
        type=_int_in(0, MAX_EXTRA_RECEIVERS),
        default=defaults.extra_receivers,
        metavar="N",
        help=f"extra partner-webhook receivers besides the five named ones "
        f"(0-{MAX_EXTRA_RECEIVERS}, default {defaults.extra_receivers})",
    )
    parser.add_argument(
        "--delay-ms",
        type=_int_in(0, MAX_DELAY_MS),
        default=defaults.delay_ms,
        metavar="MS",
        help=f"base endpoint delay; endpoints answer after 0.5x to 2x it "
        f"(0-{MAX_DELAY_MS}, default {defaults.delay_ms})",
    )
    parser.add_argument(
        "--timeout",
        type=_seconds,
        default=defaults.timeout_s,
        metavar="S",
        help=f"the signal's deadline for send_parallel*; the slow receiver takes "
        f"{SLOW_FACTOR:g}x it ({MIN_TIMEOUT_S:g}-{MAX_TIMEOUT_S:g}, "
        f"default {defaults.timeout_s:g})",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run the demo with the parsed command line *args*; return the exit status."""
    slowest_normal_s = args.delay_ms * 2 / 1000.0
    if slowest_normal_s >= args.timeout:
        # Otherwise send_parallel would raise TimeoutError instead of the
        # failure the demo is built to show, and its story would not hold.
        print(  # noqa: T201
            f"parasignal demo: error: --delay-ms {args.delay_ms} needs --timeout above "
            f"{slowest_normal_s:g} s (endpoints answer within twice the delay, and only the "
            "slow one may outlive the deadline).",
            file=sys.stderr,
        )
        return 2
    options = DemoOptions(
        extra_receivers=args.receivers, delay_ms=args.delay_ms, timeout_s=args.timeout
    )
    return run_demo(options, sys.stdout, sys.stderr)
