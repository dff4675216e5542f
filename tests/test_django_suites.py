"""Django's own dispatch and async signal suites, unchanged, against parasignal.

Set ``PARASIGNAL_DJANGO_TESTS`` to the ``tests`` directory of a Django source
tree matching the installed Django (``pip download django==6.1.3 --no-deps
--no-binary :all:``, then unpack it) to run them; ``django_suites/run_django_suites.py``
says how they are run. Without it the test is skipped: parasignal does not
ship Django's code.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("django", reason="Django's suites need Django")

RUN = Path(__file__).resolve().parent / "django_suites" / "run_django_suites.py"
TESTS_DIR = os.environ.get("PARASIGNAL_DJANGO_TESTS", "")


@pytest.mark.skipif(
    not TESTS_DIR, reason="set PARASIGNAL_DJANGO_TESTS to a Django source tree's tests/"
)
def test_djangos_dispatch_and_async_signal_suites_pass_against_parasignal() -> None:
    done = subprocess.run(
        [sys.executable, str(RUN), TESTS_DIR],
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    last = done.stdout.strip().splitlines()[-1]
    passed, run = last.rsplit(" ", 2)[-2].split("/")
    assert passed == run, last
    assert int(run) >= 39  # dispatch: 21; AsyncReceiversTests: 6; contextvars sharing: 12
