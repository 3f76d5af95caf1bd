"""The synful command line: global flags reach the command, errors are one line."""

import types

import pytest

from synful import cli
from synful.errors import SynfulError


def fake_command(seen: dict, error: Exception | None = None):
    def run(args):
        seen.update(quiet=args.quiet, debug=args.debug)
        if error is not None:
            raise error
        return 0

    return types.SimpleNamespace(NAME="fake", HELP="a fake command", add_arguments=lambda p: None, run=run)


@pytest.mark.parametrize(
    "argv, quiet",
    [(["fake"], False), (["--quiet", "fake"], True), (["fake", "--quiet"], True)],
)
def test_quiet_before_or_after_the_command_reaches_it(monkeypatch, argv, quiet):
    seen = {}
    monkeypatch.setattr(cli, "_command_modules", lambda: [fake_command(seen)])
    assert cli.main(argv) == 0
    assert seen == {"quiet": quiet, "debug": False}


def test_synful_error_is_one_line(monkeypatch, capsys):
    seen = {}
    error = SynfulError("in.hdf", "no dataset volumes/raw")
    monkeypatch.setattr(cli, "_command_modules", lambda: [fake_command(seen, error)])
    assert cli.main(["fake"]) == 1
    assert capsys.readouterr().err == "synful: error: in.hdf: no dataset volumes/raw\n"
