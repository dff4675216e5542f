"""Settings for ``manage.py test``: the example's, with the test database in a file.

Django's test runner gives SQLite an in-memory database by default, which
every thread would see as a database of its own; parasignal's workers must
share the test database with the test, through a file
(``SHOP_TEST_DB_PATH``, else one in the temporary directory).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .settings import *  # noqa: F403 - the example's settings, amended below
from .settings import DATABASES

DATABASES["default"]["TEST"] = {
    "NAME": os.environ.get("SHOP_TEST_DB_PATH")
    or str(Path(tempfile.gettempdir()) / "parasignal-shop-test.sqlite3"),
}

# The services order_placed's receivers call are not running under the test
# runner: port 1 refuses at once, and those receivers' failures are their
# responses (send_parallel_robust).
SHOP_BACKEND = "127.0.0.1:1"
