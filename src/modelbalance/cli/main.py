"""The ``modelbalance`` console script: one sub-command per job.

Each sub-command lives in its own module exposing ``register(subparsers)``; the module's handler returns an exit
code. Errors a user can fix (bad option, missing file, unknown source) are raised as :class:`UsageError` and printed
as one line on stderr with exit status 2.
"""

from __future__ import annotations

import argparse
import sys


class UsageError(Exception):
    """A problem with the user's input: printed as one line, no traceback."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one clear line, non-zero exit
        raise UsageError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    from modelbalance import __version__
    from modelbalance.cli import analyze, experiment

    parser = _Parser(
        prog="modelbalance",
        description="Layer-wise heavy-tail spectral analysis and TempBalance learning-rate balancing: analyze a "
        "model, run a low-data experiment, or the demo. 'modelbalance COMMAND --help' for each.",
    )
    parser.add_argument("--version", action="version", version=f"modelbalance {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    analyze.register(sub)
    experiment.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        return int(args.handler(args) or 0)
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
