"""Named arguments stay out of parasignal's own frames, where renderers that
print frame locals (rich, structlog's ``dict_tracebacks``) would show them."""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import Any

import pytest
from structlog.tracebacks import ExceptionDictTransformer

import parasignal
from parasignal import Signal

PACKAGE = str(Path(parasignal.__file__).resolve().parent)
SECRET = "card-4111-1111-1111-1111"  # noqa: S105 - a stand-in secret the tests look for


def failing(**kwargs: Any) -> None:
    raise ValueError("declined")


def parasignal_frames(tb: TracebackType | None) -> list[TracebackType]:
    found = []
    while tb is not None:
        if str(Path(tb.tb_frame.f_code.co_filename).resolve()).startswith(PACKAGE):
            found.append(tb)
        tb = tb.tb_next
    return found


@pytest.mark.parametrize("method", ["send_robust", "send_parallel_robust"])
def test_the_frame_that_catches_a_receivers_failure_shows_no_argument_value(
    method: str,
) -> None:
    signal = Signal(max_workers=1)
    signal.connect(failing)
    [(_, error)] = getattr(signal, method)(None, card=SECRET)
    signal.shutdown()
    frames = parasignal_frames(error.__traceback__)
    assert frames, "the traceback starts in parasignal's frame that caught the failure"
    for tb in frames:
        for name, value in tb.tb_frame.f_locals.items():
            assert SECRET not in repr(value), f"{tb.tb_frame.f_code.co_name}() local {name!r}"
    # What dict_tracebacks with locals renders: the receiver's own frame shows
    # its kwargs (that is the receiver's business), parasignal's frames none.
    rendered = ExceptionDictTransformer(show_locals=True)((type(error), error, error.__traceback__))
    for frame in rendered[0]["frames"]:
        if frame["filename"].startswith(PACKAGE):
            assert SECRET not in str(frame.get("locals", {})), frame["name"]


def test_a_dispatch_names_the_keywords_but_hides_their_values() -> None:
    from parasignal._dispatch import Dispatch  # noqa: PLC0415

    named = {"card": SECRET, "amount": 5}
    robust = False
    dispatch = Dispatch(
        None, lambda: "orders", "send_parallel", "shop", named, robust, None, None, print
    )
    text = repr(dispatch)
    assert SECRET not in text
    assert "amount, card" in text
