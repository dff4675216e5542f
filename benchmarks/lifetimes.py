"""Count what outlives a parallel dispatch: weak receivers and payloads still alive
right after the call returned, by reference counting alone (the collector is off).

    python benchmarks/lifetimes.py [--rounds 20000]

For each pool kind (the shared pool, an own pool of 4, a user's
ThreadPoolExecutor) and each method, connects a weak bound-method receiver
among three plain ones, dispatches with a payload, drops both, and counts the
survivors. Every count should be 0.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import structlog

from parasignal import Signal


class Payload:
    pass


class Owner:
    def __init__(self, fail: bool) -> None:
        self.fail = fail

    def on_signal(self, **kwargs: Any) -> str:  # noqa: ARG002 - a receiver's signature
        if self.fail:
            raise ValueError("owner failed")
        return "owner"


def plain(**kwargs: Any) -> str:
    return "plain"


def call(signal: Signal, method: str, loop: asyncio.AbstractEventLoop, **named: Any) -> Any:
    if method.startswith("asend"):

        async def awaited() -> Any:
            try:
                return await getattr(signal, method)(None, **named)
            except Exception as exc:  # noqa: BLE001 - failures are part of the run
                # Only its type: an exception made the task's result would
                # sit in a cycle of asyncio's own on Python 3.12+ (its
                # traceback's frames lead back to the task), freed only by
                # the collector, whatever the dispatcher did.
                return type(exc)

        return loop.run_until_complete(awaited())
    try:
        return getattr(signal, method)(None, **named)
    except Exception as exc:  # noqa: BLE001 - as above
        return exc


def count(signal: Signal, method: str, rounds: int, fail: bool) -> tuple[int, int]:
    loop = asyncio.new_event_loop()
    live_receivers = live_payloads = 0
    try:
        for _ in range(rounds):
            owner = Owner(fail)
            signal.connect(owner.on_signal)
            payload = Payload()
            refs = weakref.ref(owner), weakref.ref(payload)
            result = call(signal, method, loop, payload=payload)
            del result, owner, payload
            live_receivers += refs[0]() is not None
            live_payloads += refs[1]() is not None
    finally:
        loop.close()
    return live_receivers, live_payloads


def _drop(_logger: object, _method: str, _event: Any) -> Any:
    raise structlog.DropEvent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20_000)
    args = parser.parse_args()
    # Failure events are part of every failure round: drop them unrendered.
    structlog.configure(processors=[_drop])
    methods = ["send_parallel", "send_parallel_robust", "asend", "asend_robust"]
    methods += [m for m in ("asend_parallel", "asend_parallel_robust") if hasattr(Signal, m)]
    gc.disable()
    executor = ThreadPoolExecutor(8)
    print(f"{'pool':<10} {'method':<24} {'outcome':<8} live receivers  live payloads  seconds")
    for kind in ("shared", "own", "executor"):
        for method in methods:
            for fail in (False, True):
                config: dict[str, Any] = {}
                if kind == "own":
                    config["max_workers"] = 4
                elif kind == "executor":
                    config["executor"] = executor
                signal = Signal(**config)
                for uid in range(3):
                    signal.connect(plain, weak=False, dispatch_uid=uid)
                started = time.perf_counter()
                receivers, payloads = count(signal, method, args.rounds, fail)
                seconds = time.perf_counter() - started
                outcome = "failure" if fail else "success"
                print(
                    f"{kind:<10} {method:<24} {outcome:<8} "
                    f"{receivers:>14}  {payloads:>13}  {seconds:7.2f}"
                )
                signal.shutdown()
    executor.shutdown()


if __name__ == "__main__":
    main()
