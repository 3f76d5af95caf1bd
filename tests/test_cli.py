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

    return types.SimpleNamespace(
        NAME="fake", HELP="a fake command", add_arguments=lambda p: None, run=run
    )


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


@pytest.mark.parametrize("command", ["train", "predict"])
def test_threads_reach_torch(monkeypatch, command):
    """``--threads N`` (what a workflow job was given) sets torch's threads before the stage."""
    import torch

    from synful.commands import predict, train

    seen = {}
    module = {"train": train, "predict": predict}[command]
    stage = "synful.train.train" if command == "train" else "synful.predict.predict"
    monkeypatch.setattr(stage, lambda *a, **k: seen.setdefault("threads", torch.get_num_threads()))
    before = torch.get_num_threads()
    want = 1 if before != 1 else 2
    try:
        argv = {
            "train": ["s.yaml", "--samples", "a.zarr", "--out", "d"],
            "predict": ["c", "s", "o"],
        }
        args = cli.build_parser().parse_args([command, *argv[command], "--threads", str(want)])
        module.run(args)
        assert seen == {"threads": want}
    finally:
        torch.set_num_threads(before)


def test_threads_must_be_positive(capsys):
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["predict", "c", "s", "o", "--threads", "0"])
    assert "must be at least 1" in capsys.readouterr().err
