"""Run synful from a Snakemake `script:` job, its messages going to the job's log.

The job runs in the Python that runs the script (Snakemake's own, or the rule's conda
environment with --sdm conda), so `synful` need not be on PATH. An environment without synful
installed (envs/synful.yaml) imports it from this checkout.
"""

import json
import logging
import shlex
import sys
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from importlib.util import find_spec
from pathlib import Path

if find_spec("synful") is None:
    sys.path.append(str(Path(__file__).resolve().parents[1]))

from synful.cli import main  # noqa: E402


@contextmanager
def log_to(path):
    """Send stdout, stderr and logging (INFO and up) to the file ``path``."""
    with open(path, "w") as log, redirect_stdout(log), redirect_stderr(log):
        logging.basicConfig(
            stream=log,
            level=logging.INFO,
            format="%(asctime)s %(name)s %(levelname)s: %(message)s",
            datefmt="%H:%M:%S",
            force=True,
        )
        yield log


def run_synful(snakemake, command, *args, settings=None):
    """Run `synful <command> <args>` (the CLI contract), writing its messages to the log.

    Args:
        snakemake: the job's ``snakemake`` object.
        command: the synful subcommand.
        args: its arguments (converted to strings; lists are flattened).
        settings: the command's config section (rules/common.smk), handed over as
            ``--settings '{"<command>": {...}}'`` (JSON; the command checks it).
    """
    argv = [command]
    for arg in args:
        argv += [str(a) for a in arg] if isinstance(arg, list | tuple) else [str(arg)]
    if settings is not None:
        argv += ["--settings", json.dumps({command: settings}, sort_keys=True)]
    with log_to(snakemake.log[0]):
        print("synful", shlex.join(argv), flush=True)
        code = main(argv)
    if code:
        sys.exit(f"synful {command} failed (exit {code}); see {snakemake.log[0]}")
