"""The example Django project's own tests, run by Django's test runner in a subprocess.

``examples/django_project/shop/tests.py`` holds them (ORM receivers through
``send_parallel`` and ``asend_parallel`` in bursts of 200, counting open
connections and file handles; a ``TestCase`` in inline mode; the
``transaction.on_commit`` recipe). A subprocess, because configuring Django
is for good: the rest of this suite runs without Django configured.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("django", reason="the example project needs Django")

ROOT = Path(__file__).resolve().parent.parent
PROJECT = ROOT / "examples" / "django_project"
TESTS = 12


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts file handles in /proc")
def test_the_projects_tests_pass_under_djangos_test_runner(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "SHOP_DB_PATH": str(tmp_path / "shop.sqlite3"),
        "SHOP_TEST_DB_PATH": str(tmp_path / "test-shop.sqlite3"),
        "PYTHONWARNINGS": "error",
    }
    done = subprocess.run(
        [
            sys.executable,
            str(PROJECT / "manage.py"),
            "test",
            "shop",
            "--settings=shopsite.test_settings",
            "--noinput",
            "-v",
            "2",
        ],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    report = done.stderr
    assert done.returncode == 0, report[-4000:]
    assert re.search(rf"^Ran {TESTS} tests in ", report, re.MULTILINE), report[-2000:]
    assert re.search(r"^OK$", report, re.MULTILINE), report[-2000:]
    assert report.count(" ... ok") == TESTS, report[-2000:]


def test_the_django_guides_on_commit_recipe_is_the_tested_one() -> None:
    source = (PROJECT / "shop" / "orders.py").read_text()
    recipe = source[source.index("def place_order") :].strip()
    guide = (ROOT / "docs" / "django.md").read_text()
    assert recipe in guide, "docs/django.md's on_commit recipe drifted from shop/orders.py"


def test_the_django_guides_inline_test_example_is_one_of_the_projects_tests() -> None:
    tests = (PROJECT / "shop" / "tests.py").read_text()
    example = tests[tests.index("class PlaceOrderTests") :].strip()
    guide = (ROOT / "docs" / "django.md").read_text()
    assert example in guide, "docs/django.md's TestCase example drifted"
