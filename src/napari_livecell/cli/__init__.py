"""``napari-livecell`` command line: the parser and ``main``; one module per subcommand."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from napari_livecell.cli import (
    convert,
    curate,
    demo,
    evaluate,
    measure,
    quantize,
    review_sim,
    segment,
    serve,
    synth,
    track,
    train,
)
from napari_livecell.cli.common import USER_ERRORS, CommandError, OneLineParser, describe_os_error

SUBCOMMANDS = (
    synth,
    segment,
    train,
    evaluate,
    convert,
    serve,
    curate,
    demo,
    track,
    measure,
    quantize,
    review_sim,
)


def build_parser() -> argparse.ArgumentParser:
    """The ``napari-livecell`` argument parser."""
    from napari_livecell import __version__

    parser = OneLineParser(
        prog="napari-livecell",
        description=(
            "Segment cells in microscopy images (phase contrast, bright field, fluorescence) "
            "with YOLO-seg models; proofread, measure, track and retrain."
        ),
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    for module in SUBCOMMANDS:
        module.add_parser(commands)
    return parser


# OSError as a last resort: a disk that fills up, a mount that goes read-only mid-run
_HANDLED: tuple[type[Exception], ...] = (CommandError, *USER_ERRORS, OSError)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        if not exit_.code:
            raise  # --help and --version end the program, as argparse does
        return 2  # the command line refused in one line, returned like every other error
    try:
        return int(args.handler(args) or 0)
    except _HANDLED as error:
        print(f"napari-livecell: error: {_one_line(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("napari-livecell: interrupted", file=sys.stderr)
        return 130


def _one_line(error: BaseException) -> str:
    """The message of a user error, on one line."""
    if isinstance(error, OSError):
        message = describe_os_error(error)
    else:
        message = str(error).strip("'\"") or type(error).__name__
    return " ".join(message.split()) if "\n" in message else message
