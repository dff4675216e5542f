"""The ``parasignal`` command: ``parasignal demo`` and ``parasignal stress``.

Each subcommand lives in its own module, which adds its parser here and
returns the process exit status.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import __version__, _demo, _stress

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``parasignal`` command line; return its exit status.

    Exit status 2 means a usage error, as with argparse.
    """
    parser = argparse.ArgumentParser(
        prog="parasignal",
        description="Django-compatible signals with parallel dispatch on threads.",
    )
    parser.add_argument("--version", action="version", version=f"parasignal {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _demo.add_parser(commands)
    _stress.add_parser(commands)
    args = parser.parse_args(argv)
    status: int = args.run(args)
    return status


if __name__ == "__main__":  # pragma: no cover - python -m parasignal._cli
    sys.exit(main())
