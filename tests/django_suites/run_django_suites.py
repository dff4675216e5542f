"""Run Django's own dispatch and async signal test suites, unchanged, against parasignal.

Usage: ``python tests/django_suites/run_django_suites.py DJANGO_TESTS_DIR`` where
``DJANGO_TESTS_DIR`` is the ``tests`` directory of a Django source tree of
the installed version (``pip download django==X --no-deps --no-binary :all:``
and unpack it). Nothing of Django's is copied here: its test modules are
imported from that directory as they are, after ``django.dispatch`` and
``django.dispatch.dispatcher`` have been pointed at parasignal's.

Runs ``dispatch.tests`` (all of it) and, from ``signals.tests``, the async
receiver suites (``AsyncReceiversTests`` and
``TestReceiversContextVarsSharing``). Exit status 0 when every test passes.
The last line of output is ``parasignal-django-suites: <passed>/<run> passed``.

parasignal logs receiver failures through structlog, not stdlib logging's
``django.dispatch`` logger (see the README, "Differences from Django").
Django's ``test_send_robust_fail`` asserts on that logger's record, so this
harness routes parasignal's ``signal.receiver_failed`` events into it with
Django's message, as an application that wants Django's log lines would
(:func:`_install_structlog_routing`); the tests themselves are unchanged.
"""

from __future__ import annotations

import contextvars
import logging
import sys
import types
import unittest
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

SUITES = (
    "dispatch.tests",
    "signals.tests.AsyncReceiversTests",
    "signals.tests.TestReceiversContextVarsSharing",
)


# The failing receiver's __qualname__, for the message Django would log.
_receiver_qualname: contextvars.ContextVar[str] = contextvars.ContextVar("qualname", default="")


def _install_structlog_routing() -> None:
    """Log ``signal.receiver_failed`` on ``django.dispatch`` with Django's message."""
    import structlog  # noqa: PLC0415

    from parasignal import dispatcher  # noqa: PLC0415

    original = dispatcher.Signal._log_robust_failure

    def log_robust_failure(self: Any, receiver: Any, err: BaseException) -> None:
        # Django names the receiver by its __qualname__.
        qualname = getattr(receiver, "__qualname__", repr(receiver))
        token = _receiver_qualname.set(qualname)
        try:
            original(self, receiver, err)
        finally:
            _receiver_qualname.reset(token)

    def processor(_logger: Any, _name: str, event_dict: MutableMapping[str, Any]) -> Any:
        if event_dict.get("event") == "signal.receiver_failed":
            exc = event_dict["exc_info"]
            logging.getLogger("django.dispatch").error(
                "Error calling %s in Signal.%s() (%s)",
                _receiver_qualname.get(),
                event_dict["method"],
                exc,
                exc_info=exc,
            )
        raise structlog.DropEvent

    dispatcher.Signal._log_robust_failure = log_robust_failure  # type: ignore[method-assign]
    structlog.configure(processors=[processor])


def main(argv: list[str]) -> int:
    """Run the suites; return the exit status."""
    if len(argv) != 1 or not (Path(argv[0]) / "dispatch" / "tests.py").is_file():
        print(__doc__, file=sys.stderr)  # noqa: T201
        return 2
    tests_dir = str(Path(argv[0]).resolve())
    sys.path.insert(0, tests_dir)

    import django  # noqa: PLC0415
    from django.conf import settings  # noqa: PLC0415

    settings.configure(
        DEBUG=False,
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "signals"],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        DEFAULT_AUTO_FIELD="django.db.models.AutoField",
        USE_TZ=True,
    )
    django.setup()

    import parasignal  # noqa: PLC0415
    from parasignal import dispatcher  # noqa: PLC0415

    # The test modules import django.dispatch (Signal, receiver) and
    # django.dispatch.dispatcher (_make_id, patched by mock.patch by name).
    shim = types.ModuleType("django.dispatch")
    shim.Signal = parasignal.Signal  # type: ignore[attr-defined]
    shim.receiver = parasignal.receiver  # type: ignore[attr-defined]
    shim.dispatcher = dispatcher  # type: ignore[attr-defined]
    sys.modules["django.dispatch"] = shim
    sys.modules["django.dispatch.dispatcher"] = dispatcher
    django.dispatch = shim
    _install_structlog_routing()

    from django.test.utils import get_runner  # noqa: PLC0415

    runner = get_runner(settings)(verbosity=2, interactive=False)
    suite = runner.build_suite(list(SUITES))
    for test in _flatten(suite):
        module = sys.modules[type(test).__module__]
        uses = getattr(module, "Signal", None) or getattr(module, "dispatch", None)
        if uses is not None and uses not in (parasignal.Signal, shim):
            print(f"{test.id()} does not use parasignal", file=sys.stderr)  # noqa: T201
            return 1
    old_config = runner.setup_databases()
    try:
        result = runner.run_suite(suite)
    finally:
        runner.teardown_databases(old_config)
    failed = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
    passed = result.testsRun - failed - len(result.skipped)
    print(f"parasignal-django-suites: {passed}/{result.testsRun} passed")  # noqa: T201
    return 0 if result.wasSuccessful() and not result.skipped else 1


def _flatten(suite: unittest.TestSuite) -> list[unittest.TestCase]:
    tests: list[unittest.TestCase] = []
    for item in suite:
        if isinstance(item, unittest.TestSuite):
            tests += _flatten(item)
        else:
            tests.append(item)
    return tests


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
