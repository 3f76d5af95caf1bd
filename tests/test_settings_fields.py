"""The settings mechanism (:mod:`synful.settings.fields`): one field -> validated value and
argparse option, and the CLI's import stays free of stages."""

import argparse
import dataclasses
import subprocess
import sys

import pytest

from synful.errors import SynfulError
from synful.settings.evaluate import EvaluateSettings
from synful.settings.extract import ExtractConfig, ExtractRun
from synful.settings.fields import add_options, check_fields, setting, values_from


@dataclasses.dataclass(frozen=True)
class Example:
    ratio: float = setting(0.5, "a ratio", minimum=0.0, maximum=1.0)
    count: int | None = setting(None, "a count", minimum=1)
    shape: tuple[int, int, int] | None = setting(None, "a shape", above=0, metavar=("Z", "Y", "X"))
    levels: tuple[float, ...] = setting((0.2, 0.1), "levels", maximum=1.0)
    sweep: tuple[float, ...] | str | None = setting(None, "numbers or a word")
    kind: str = setting("a", "a kind", choices=("a", "b"))
    on: bool = setting(False, "a flag")

    def __post_init__(self):
        check_fields(self)


def test_values_are_converted_to_the_field_types():
    e = Example(ratio=1, count=3.0, shape=[1, 2, 3], levels=[1, "0.5"], sweep=["1", 2], on=1)
    assert (e.ratio, e.count, e.shape, e.levels, e.sweep, e.on) == (
        1.0, 3, (1, 2, 3), (1.0, 0.5), (1.0, 2.0), True,
    )  # fmt: skip
    assert type(e.ratio) is float and type(e.count) is int
    assert Example(sweep="auto").sweep == "auto" and Example(sweep=["auto"]).sweep == "auto"
    assert Example(sweep=["0.5"]).sweep == (0.5,)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"ratio": 1.5}, "--ratio: must lie in [0, 1], got 1.5"),
        ({"ratio": "x"}, "--ratio: not a number: 'x'"),
        ({"ratio": float("nan")}, "--ratio: must be finite, got nan"),
        ({"ratio": None}, "--ratio: needs a value"),
        ({"count": 0}, "--count: must be >= 1, got 0"),
        ({"count": 1.5}, "--count: not an integer: 1.5"),
        ({"shape": [1, 2]}, "--shape: needs 3 values, got [1, 2]"),
        ({"shape": [1, 0, 2]}, "--shape: must be positive, got 0"),
        ({"levels": []}, "--levels: needs at least 1 values, got []"),
        ({"levels": 0.5}, "--levels: not a list: 0.5"),
        ({"levels": [2]}, "--levels: must be <= 1, got 2"),
        ({"sweep": ["auto", "1"]}, "--sweep: not a number: 'auto'"),
        ({"kind": "c"}, "--kind: unknown value 'c', expected one of a, b"),
    ],
)
def test_invalid_values_name_the_flag(kwargs, message):
    with pytest.raises(SynfulError) as info:
        Example(**kwargs)
    assert str(info.value) == message


def test_options_parse_to_the_model():
    parser = argparse.ArgumentParser()
    add_options(parser, Example)
    assert Example(**values_from(Example, parser.parse_args([]))) == Example()
    args = parser.parse_args(
        "--ratio 0.25 --count 2 --shape 1 2 3 --levels 0.7 0.3 --sweep auto --kind b --on".split()
    )
    assert Example(**values_from(Example, args)) == Example(
        ratio=0.25, count=2, shape=(1, 2, 3), levels=(0.7, 0.3), sweep="auto", kind="b", on=True
    )
    with pytest.raises(SystemExit):
        parser.parse_args(["--kind", "c"])  # choices are argparse's, as before


def test_a_setting_default_is_immutable_and_a_flag_defaults_to_false():
    with pytest.raises(TypeError):
        setting([1, 2], "a list")

    @dataclasses.dataclass(frozen=True)
    class On:
        on: bool = setting(True, "on by default")

    with pytest.raises(TypeError):
        add_options(argparse.ArgumentParser(), On)


def test_the_models_keep_what_the_stages_read():
    config = ExtractConfig(split_levels=[0.9, 0.6], context=120)
    assert config.split_levels == (0.6, 0.9) and config.context == 120.0
    assert ExtractConfig().to_dict()["split_levels"] == [0.6, 0.7, 0.8, 0.9, 0.95]
    assert ExtractRun(block_shape=[4, 16, 16]).block_shape == (4, 16, 16)
    assert EvaluateSettings(score_thresholds=[0.5, 1]).score_thresholds == (0.5, 1.0)


def test_command_line_builds_without_stages():
    """``synful --help`` imports the settings models, never numpy-heavy stages, scipy or torch."""
    code = (
        "import sys; from synful import cli; cli.build_parser(); "
        "print(sorted(m for m in ('scipy', 'torch', 'pandas', 'synful.extract', "
        "'synful.evaluate', 'synful.predict') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
