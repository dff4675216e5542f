"""parasignal inside a threaded WSGI server: waitress, request ids, a deadline.

Run it with ``python examples/wsgi_server.py`` (needs ``pip install waitress``)
and try::

    curl -H 'X-Request-ID: req-1' http://127.0.0.1:8080/orders/1
    curl 'http://127.0.0.1:8080/orders/2?fail=inventory'         # a receiver fails
    curl 'http://127.0.0.1:8080/orders/3?slow=recommendations'   # one outlives the deadline

Every request to ``/orders/<id>`` binds its request id with structlog's
contextvars and fires ``order_placed``. Its five receivers are clients of
other services: each makes a real HTTP call to a small backend server that
this script also starts on 127.0.0.1, which answers after a delay (30 to
100 ms). ``send_parallel_robust`` calls them together on the signal's own
pool, so a request waits about as long as the slowest one (100 ms) instead
of their sum (260 ms), and the signal's deadline (1 s) keeps a stuck
service from holding a server thread. Failures and timeouts become
structured events carrying the request's id, and the response says what each
receiver answered.

Sizing: waitress runs requests on ``--threads`` threads (T) and each request
fans out to five receivers (R), so the signal gets its own pool of T x R
threads: every receiver of every request in flight can wait on its service
at once, and no other signal can starve it.

Shutdown (Ctrl-C or SIGTERM): waitress stops taking requests and its threads
finish the ones they are serving; then ``order_placed.shutdown()`` waits for
receivers still running (one left behind by the deadline, say) and releases
the pool; then the backend stops.

The test suite (``tests/test_server_integration.py``) and the load benchmark
(``benchmarks/load.py``) drive this same application.
"""

from __future__ import annotations

import argparse
import http
import http.client
import http.server
import json
import logging
import signal as os_signal
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from types import FrameType
from typing import TYPE_CHECKING, Any, Final

import structlog

from parasignal import Signal

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

#: How long each service takes to answer, in milliseconds. Their sum is what
#: ``send`` makes a request wait; the largest is what ``send_parallel`` does.
SERVICE_DELAYS_MS: Final = {
    "webhook": 60,
    "cache": 30,
    "audit": 100,
    "inventory": 40,
    "recommendations": 30,
}
#: How long a service asked to be slow (``?slow=SERVICE``) takes.
SLOW_DELAY_MS: Final = 1500
#: The signal's deadline: no request waits longer than this for its receivers.
DEADLINE_S: Final = 1.0
#: Socket timeout of each call to a service: a receiver left running by the
#: deadline still ends within this.
SERVICE_TIMEOUT_S: Final = 3.0
METHODS: Final = ("send", "send_robust", "send_parallel", "send_parallel_robust")


class ServiceError(Exception):
    """A service answered with an error status."""


# -- the services the receivers call: a small backend on 127.0.0.1 ------------


class _BackendHandler(http.server.BaseHTTPRequestHandler):
    """``POST /<service>``: answer after ``X-Delay-Ms``, with 503 if ``X-Fail`` is set."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        time.sleep(int(self.headers.get("X-Delay-Ms") or 0) / 1000)
        failing = self.headers.get("X-Fail") == "1"
        status = 503 if failing else 200
        body = json.dumps(
            {
                "service": self.path.strip("/"),
                "request_id": self.headers.get("X-Request-ID"),
                "status": "unavailable" if failing else "done",
            }
        ).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        """Stay quiet: the receivers report what matters."""


class _BackendServer(http.server.ThreadingHTTPServer):
    # socketserver's default listen backlog is 5: a burst of receivers
    # connecting at once would overflow it, and the kernel would drop their
    # connection attempts, which clients retry only after a second.
    request_queue_size = 1024


class Backend:
    """The other services, served by ``ThreadingHTTPServer`` on 127.0.0.1."""

    def __init__(self, port: int = 0) -> None:
        self._server = _BackendServer(("127.0.0.1", port), _BackendHandler)
        self.host = "127.0.0.1"
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="backend",
            daemon=True,
        )

    def start(self) -> Backend:
        """Start serving on a thread of its own; return self."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and wait for the requests in progress."""
        self._server.shutdown()
        self._server.server_close()  # joins the threads of requests in progress
        self._thread.join(timeout=5)


# -- the receivers: clients of those services ---------------------------------


class Services:
    """The receivers of ``order_placed``: one method per service, each a real HTTP call.

    The request id is not an argument of the signal: each receiver reads it from
    structlog's contextvars, which parasignal copies into the worker thread, and
    forwards it to the service, as a tracing header would be.
    """

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port

    def receivers(self) -> list[Callable[..., str]]:
        """Return the receivers, in the order they are connected."""
        return [
            self.post_webhook,
            self.purge_cache,
            self.write_audit_log,
            self.reserve_inventory,
            self.refresh_recommendations,
        ]

    def post_webhook(self, order_id: int, **kwargs: Any) -> str:
        """Tell the shop's partners (a webhook POST)."""
        return self._call("webhook", order_id, kwargs)

    def purge_cache(self, order_id: int, **kwargs: Any) -> str:
        """Purge the order's pages from the CDN cache."""
        return self._call("cache", order_id, kwargs)

    def write_audit_log(self, order_id: int, **kwargs: Any) -> str:
        """Record the order in the audit service (the slowest)."""
        return self._call("audit", order_id, kwargs)

    def reserve_inventory(self, order_id: int, **kwargs: Any) -> str:
        """Reserve the items in the inventory service."""
        return self._call("inventory", order_id, kwargs)

    def refresh_recommendations(self, order_id: int, **kwargs: Any) -> str:
        """Refresh the customer's recommendations."""
        return self._call("recommendations", order_id, kwargs)

    def _call(self, service: str, order_id: int, named: dict[str, Any]) -> str:
        request_id = str(structlog.contextvars.get_contextvars().get("request_id", ""))
        fail: frozenset[str] = named.get("fail", frozenset())
        slow: frozenset[str] = named.get("slow", frozenset())
        delay = SLOW_DELAY_MS if service in slow else SERVICE_DELAYS_MS[service]
        connection = http.client.HTTPConnection(self.host, self.port, timeout=SERVICE_TIMEOUT_S)
        try:
            connection.request(
                "POST",
                f"/{service}",
                body=json.dumps({"order_id": order_id}).encode(),
                headers={
                    "Content-Type": "application/json",
                    "X-Request-ID": request_id,
                    "X-Delay-Ms": str(delay),
                    "X-Fail": "1" if service in fail else "0",
                },
            )
            response = connection.getresponse()
            answer = json.loads(response.read())
        finally:
            connection.close()
        if response.status >= http.HTTPStatus.BAD_REQUEST:
            raise ServiceError(f"{service} answered {response.status} {response.reason}")
        if answer["request_id"] != request_id:  # the context reached the worker thread
            raise ServiceError(f"{service} saw request id {answer['request_id']!r}")
        return f"{response.status} {answer['status']}"


# -- the WSGI application -------------------------------------------------------


class OrderApp:
    """``GET /orders/<id>[?fail=SERVICE,...][&slow=SERVICE,...]`` fires ``order_placed``.

    The response is JSON: the request id, the order id, the dispatch method,
    ``dispatch_ms`` (how long the signal took, also in the ``X-Dispatch-Ms``
    header) and each receiver's outcome in connection order. ``fail`` makes
    those services answer 503, ``slow`` makes them take ``SLOW_DELAY_MS``.

    *method* is the ``Signal`` method used to dispatch (the benchmark compares
    them); with ``send`` or ``send_parallel`` a failing receiver turns the
    response into a 502. The signal has its own pool of *max_workers*
    threads (``None``: parasignal's shared pool) and a *timeout* deadline.
    """

    def __init__(
        self,
        services: Services,
        *,
        method: str = "send_parallel_robust",
        max_workers: int | None = None,
        timeout: float | None = DEADLINE_S,
    ) -> None:
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, not {method!r}.")
        self.method = method
        self.order_placed = Signal(name="order_placed", max_workers=max_workers, timeout=timeout)
        # The bound methods are held weakly: self.services keeps them alive.
        self.services = services
        for receiver in services.receivers():
            self.order_placed.connect(receiver)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """Serve one request (WSGI)."""
        # waitress reuses its threads, and with them their context: clear what
        # the previous request on this thread bound.
        structlog.contextvars.clear_contextvars()
        request_id = environ.get("HTTP_X_REQUEST_ID") or uuid.uuid4().hex
        structlog.contextvars.bind_contextvars(request_id=request_id)
        try:
            status, body, headers = self._handle(environ, request_id)
        finally:
            structlog.contextvars.clear_contextvars()
        payload = json.dumps(body).encode()
        start_response(
            status,
            [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(payload))),
                ("X-Request-ID", request_id),
                *headers,
            ],
        )
        return [payload]

    def _handle(
        self, environ: WSGIEnvironment, request_id: str
    ) -> tuple[str, dict[str, Any], list[tuple[str, str]]]:
        parts = environ.get("PATH_INFO", "").strip("/").split("/")
        if len(parts) != 2 or parts[0] != "orders" or not parts[1].isdigit():  # noqa: PLR2004
            return "404 Not Found", {"request_id": request_id, "error": "no such page"}, []
        order_id = int(parts[1])
        query = _parse_query(environ.get("QUERY_STRING", ""))
        dispatch = getattr(self.order_placed, self.method)
        started = time.perf_counter()
        try:
            responses = dispatch(
                sender=OrderApp, order_id=order_id, fail=query["fail"], slow=query["slow"]
            )
        except Exception as exc:  # noqa: BLE001 - send and send_parallel raise; say so
            dispatch_ms = (time.perf_counter() - started) * 1000
            error = f"{type(exc).__name__}: {exc}"
            body = {"request_id": request_id, "order_id": order_id, "error": error}
            return "502 Bad Gateway", body, [("X-Dispatch-Ms", f"{dispatch_ms:.1f}")]
        dispatch_ms = (time.perf_counter() - started) * 1000
        receivers = [
            {
                "receiver": getattr(receiver, "__name__", repr(receiver)),
                "ok": not isinstance(response, BaseException),
                "result": (
                    f"{type(response).__name__}: {response}"
                    if isinstance(response, BaseException)
                    else response
                ),
            }
            for receiver, response in responses
        ]
        body = {
            "request_id": request_id,
            "order_id": order_id,
            "method": self.method,
            "dispatch_ms": round(dispatch_ms, 1),
            "receivers": receivers,
        }
        return "200 OK", body, [("X-Dispatch-Ms", f"{dispatch_ms:.1f}")]


def _parse_query(query_string: str) -> dict[str, frozenset[str]]:
    found: dict[str, set[str]] = {"fail": set(), "slow": set()}
    for pair in query_string.split("&"):
        key, _, value = pair.partition("=")
        if key in found:
            found[key].update(v for v in value.split(",") if v)
    return {key: frozenset(values) for key, values in found.items()}


# -- serving it with waitress -----------------------------------------------------


class WaitressServer:
    """A waitress server that can be stopped, from any thread, without losing a request.

    ``waitress.serve()`` runs until interrupted and has no stop method. This
    is the same server (``waitress.create_server``) with its event loop run
    in short slices, so that :meth:`request_stop` (safe from a signal
    handler) ends it gracefully: the listening socket closes first, so no new
    connection is accepted; requests in progress are finished and their
    responses sent (for up to *drain_timeout* seconds); then every connection
    closes and waitress's request threads exit.

    :meth:`serve` runs the loop on the calling thread; :meth:`start` on a
    background thread, which :meth:`stop` ends and joins.
    """

    def __init__(
        self,
        app: WSGIApplication,
        *,
        threads: int,
        host: str = "127.0.0.1",
        port: int = 0,
        drain_timeout: float = 5.0,
    ) -> None:
        import waitress  # noqa: PLC0415 - optional: only the server needs it

        self._map: dict[int, Any] = {}
        self.threads = threads
        self.drain_timeout = drain_timeout
        self.server = waitress.create_server(
            app, map=self._map, host=host, port=port, threads=threads, ident="parasignal-example"
        )
        self.host: str = self.server.effective_host
        self.port = int(self.server.effective_port)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def serve(self) -> None:
        """Serve on this thread until :meth:`request_stop`; then shut down gracefully."""
        from waitress import wasyncore  # noqa: PLC0415 - see __init__

        while not self._stopping.is_set():
            wasyncore.loop(timeout=0.05, map=self._map, count=1)
        # Close the listening socket only (the server's own close() would also
        # close the trigger through which request threads hand responses to
        # this loop), then finish the requests in progress.
        wasyncore.dispatcher.close(self.server)
        deadline = time.monotonic() + self.drain_timeout
        while self._busy() and time.monotonic() < deadline:
            wasyncore.loop(timeout=0.05, map=self._map, count=1)
        # A request thread that has just answered still pulls the trigger to
        # wake this loop: let every request thread exit before the trigger
        # closes, then flush what they handed over.
        self.server.task_dispatcher.shutdown(
            cancel_pending=True, timeout=max(0.1, deadline - time.monotonic())
        )
        while self._busy() and time.monotonic() < deadline:
            wasyncore.loop(timeout=0.05, map=self._map, count=1)
        for channel in list(self._map.values()):  # idle keep-alive connections, the trigger
            channel.handle_close()
        self.server.close()

    def _busy(self) -> bool:
        return any(
            getattr(channel, "requests", None) or getattr(channel, "total_outbufs_len", 0)
            for channel in list(self._map.values())
        )

    def request_stop(self) -> None:
        """Ask :meth:`serve` to shut down; returns at once (safe in a signal handler)."""
        self._stopping.set()

    def start(self) -> WaitressServer:
        """Serve on a background thread; return self."""
        self._thread = threading.Thread(target=self.serve, name="waitress-loop", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop the background server; True if it ended within *timeout* seconds."""
        self.request_stop()
        if self._thread is not None:
            self._thread.join(timeout)
            return not self._thread.is_alive()
        return True


# -- the command line ------------------------------------------------------------


def configure_logging(level: int = logging.INFO) -> None:
    """Log everything as JSON lines on stderr: structlog's events and stdlib records alike.

    parasignal's events go through stdlib :mod:`logging` (structlog's stdlib
    integration), and so do waitress's (and Django's) records, through one
    handler whose lock keeps lines written by different threads whole. The
    request id bound with ``bind_contextvars`` is in every line logged while
    it is bound, parasignal's worker threads included.
    """
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.TimeStamper(fmt="iso"),
                structlog.processors.format_exc_info,
                structlog.processors.JSONRenderer(),
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def main(argv: list[str] | None = None) -> None:
    """Serve the example until Ctrl-C or SIGTERM."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    parser.add_argument("--threads", type=int, default=16, help="waitress threads (T)")
    parser.add_argument("--method", choices=METHODS, default="send_parallel_robust")
    args = parser.parse_args(argv)

    configure_logging()
    backend = Backend().start()
    services = Services(backend.host, backend.port)
    receivers = len(services.receivers())
    app = OrderApp(services, method=args.method, max_workers=args.threads * receivers)
    server = WaitressServer(app, threads=args.threads, port=args.port)

    def stop(signum: int, frame: FrameType | None) -> None:
        server.request_stop()

    os_signal.signal(os_signal.SIGINT, stop)
    os_signal.signal(os_signal.SIGTERM, stop)
    print(
        f"listening on http://127.0.0.1:{server.port} "
        f"({args.threads} threads, {args.method}, backend on port {backend.port})",
        flush=True,
    )
    server.serve()  # until Ctrl-C or SIGTERM; requests in progress are finished
    started = time.perf_counter()
    app.order_placed.shutdown(wait=True)  # receivers left behind by a deadline finish
    backend.stop()
    waited = (time.perf_counter() - started) * 1000
    print(f"stopped cleanly (waited {waited:.0f} ms for receivers and the backend)", flush=True)


if __name__ == "__main__":
    main()
