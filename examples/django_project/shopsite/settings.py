"""Settings of the example project (see ``serve.py``, which sets the environment).

``SHOP_DB_PATH``: the SQLite file, in a temporary directory ``serve.py`` makes.
``SHOP_BACKEND``: ``host:port`` of the services the receivers call.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = "example-only-not-secret"  # noqa: S105 - a local example, never deployed
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = ["shop.apps.ShopConfig"]
MIDDLEWARE = [
    "django.middleware.common.CommonMiddleware",  # sets Content-Length
    "shop.middleware.request_id",
]
ROOT_URLCONF = "shopsite.urls"
WSGI_APPLICATION = "shopsite.wsgi.application"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("SHOP_DB_PATH")
        or str(Path(tempfile.gettempdir()) / "parasignal-shop.sqlite3"),
        # Many threads write: waitress's request threads and parasignal's
        # workers. WAL lets readers run beside a writer, IMMEDIATE takes the
        # write lock when a transaction starts (no lock upgrade deadlocks),
        # synchronous=NORMAL is WAL's usual durability (one fsync per checkpoint),
        # and a writer waits up to 20 s for another instead of failing with
        # "database is locked".
        "OPTIONS": {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        },
    }
}

#: host:port of the services the parasignal receivers call.
SHOP_BACKEND = os.environ.get("SHOP_BACKEND", "127.0.0.1:8081")

# serve.py configures logging (JSON lines on stderr, for structlog's events
# and stdlib records alike) before Django starts; Django leaves it alone.
LOGGING_CONFIG = None
