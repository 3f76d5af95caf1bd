"""The ``synful`` command line: one subcommand per module in :mod:`synful.commands`.

Each command module defines ``NAME``, ``HELP``, ``add_arguments(parser)`` and ``run(args)``
and imports heavy libraries (torch) only inside ``run``, so that ``synful --help`` and the
commands that do not need torch start fast. Errors become one line, ``synful: error: ...``,
and a non-zero exit; ``--debug`` shows the traceback instead. SIGTERM (a SLURM time limit)
ends a command cleanly: temporary files are removed, resumable state is kept, exit 143.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys

from . import __version__, commands
from .atomic import settle_background_writes
from .errors import SynfulError
from .interrupts import EXIT_CODE as TERMINATED_EXIT_CODE
from .interrupts import Terminated, sigterm_raises

ORDER = [
    "synthesize",
    "download",
    "unpack",
    "convert",
    "masks",
    "train",
    "import-tf",
    "predict",
    "extract",
    "evaluate",
    "summarize",
    "export",
]


def _command_modules():
    names = [m.name for m in pkgutil.iter_modules(commands.__path__) if not m.name.startswith("_")]
    modules = [importlib.import_module(f"{commands.__name__}.{name}") for name in names]
    rank = {name: i for i, name in enumerate(ORDER)}
    return sorted(modules, key=lambda m: (rank.get(m.NAME, len(ORDER)), m.NAME))


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show tracebacks and debug logging")
    common.add_argument("--quiet", action="store_true", help="only print warnings and errors")
    parser = argparse.ArgumentParser(
        prog="synful",
        description="Synaptic partner detection in 3D electron microscopy.",
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"synful {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in _command_modules():
        p = sub.add_parser(
            module.NAME,
            help=module.HELP,
            description=getattr(module, "DESCRIPTION", module.HELP),
            parents=[common],
            formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        )
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = args.debug or "--debug" in argv
    # a flag given before the command is overwritten by the subcommand's default: check argv
    quiet = args.quiet or "--quiet" in argv
    args.debug, args.quiet = debug, quiet  # commands read them (progress bars, tracebacks)
    # third-party libraries only speak up with warnings (numexpr, distributed, ... log their
    # start-up at INFO); synful's own loggers report progress unless --quiet
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    logging.getLogger("synful").setLevel(
        logging.DEBUG if debug else logging.WARNING if quiet else logging.INFO
    )
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    with sigterm_raises():
        return _run(args, debug)


def _run(args, debug: bool) -> int:
    try:
        result = args._run(args)
    except SynfulError as exc:
        if debug:
            raise
        print(f"synful: error: {exc}", file=sys.stderr)
        return 1
    except Terminated:
        settle_background_writes()  # let zarr's in-flight writes finish before the exit
        print(
            "synful: error: terminated (SIGTERM); finished work is kept, rerun to resume",
            file=sys.stderr,
        )
        return TERMINATED_EXIT_CODE
    except KeyboardInterrupt:
        settle_background_writes()
        print("synful: error: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if debug:
            raise
        text = str(exc).splitlines()[0] if str(exc) else ""
        print(
            f"synful: error: {type(exc).__name__}: {text} (run with --debug for the traceback)",
            file=sys.stderr,
        )
        return 1
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
