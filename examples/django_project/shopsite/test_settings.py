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
