"""Serve the example Django project with waitress, next to its backend services.

Run it with ``python examples/django_project/serve.py`` (needs ``pip install
django waitress``), then::

    curl -d item=book -H 'X-Request-ID: req-1' http://127.0.0.1:8000/orders/
    curl -d item=broken http://127.0.0.1:8000/orders/    # the mail service refuses it

Startup: a temporary directory for the SQLite database, ``migrate``, the
backend services (from ``examples/wsgi_server.py``) on a free port, then
waitress with ``--threads`` request threads. Events are JSON lines on stderr.

Shutdown (Ctrl-C or SIGTERM), in this order: waitress stops accepting and
finishes the requests in progress; ``parasignal.shutdown()`` waits for
receivers still running (a deadline may have left some behind) and stops the
shared pool; the backend stops; database connections close; the temporary
directory goes. Then it prints the threads left (none).
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal as os_signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import FrameType

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]  # the project, and examples/ for wsgi_server

from wsgi_server import Backend, WaitressServer, configure_logging  # noqa: E402

import parasignal  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    """Serve until Ctrl-C or SIGTERM, then shut down in order."""
    parser = argparse.ArgumentParser(description="Serve the example Django project.")
    parser.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    parser.add_argument("--threads", type=int, default=16, help="waitress threads")
    args = parser.parse_args(argv)

    configure_logging()  # JSON lines on stderr, for structlog and stdlib alike
    db_dir = tempfile.mkdtemp(prefix="parasignal-shop-")
    backend = Backend().start()
    os.environ["SHOP_DB_PATH"] = str(Path(db_dir) / "shop.sqlite3")
    os.environ["SHOP_BACKEND"] = f"{backend.host}:{backend.port}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shopsite.settings")

    import django  # noqa: PLC0415 - after the environment is set
    from django.core.management import call_command  # noqa: PLC0415
    from django.core.wsgi import get_wsgi_application  # noqa: PLC0415
    from django.db import connections  # noqa: PLC0415

    django.setup()
    call_command("migrate", verbosity=0)
    connections.close_all()
    server = WaitressServer(get_wsgi_application(), threads=args.threads, port=args.port)

    def stop(signum: int, frame: FrameType | None) -> None:
        server.request_stop()

    os_signal.signal(os_signal.SIGINT, stop)
    os_signal.signal(os_signal.SIGTERM, stop)
    print(f"listening on http://127.0.0.1:{server.port} ({args.threads} threads)", flush=True)
    server.serve()  # until Ctrl-C or SIGTERM; requests in progress are finished

    started = time.perf_counter()
    parasignal.shutdown(wait=True)  # the shared pool: running receivers finish first
    backend.stop()
    connections.close_all()
    shutil.rmtree(db_dir, ignore_errors=True)
    waited = (time.perf_counter() - started) * 1000
    logging.shutdown()
    left = sorted(t.name for t in threading.enumerate() if t is not threading.main_thread())
    print(f"stopped cleanly in {waited:.0f} ms; threads left: {left or 'none'}", flush=True)


if __name__ == "__main__":
    main()
