"""The learning-rate schedule: values, validation, and what the optimiser gets."""

import math

import pytest
import yaml

from synful.errors import SynfulError
from synful.train.schedule import learning_rate_at
from synful.train.setup import load_setup


def test_constant_is_the_rate_at_every_iteration():
    assert [learning_rate_at(i, 1e-3) for i in (1, 50, 10**6)] == [1e-3] * 3


def test_cosine_decays_from_the_peak_to_the_final_fraction():
    lr = [learning_rate_at(i, 2.0, "cosine", final=0.1, max_iteration=100) for i in range(0, 121)]
    assert lr[0] == 2.0
    assert lr[50] == pytest.approx(2.0 * (0.1 + 0.9 * 0.5))  # half way: the mean of the ends
    assert lr[100] == pytest.approx(0.2) and lr[120] == pytest.approx(0.2)  # stays at the end
    assert all(a >= b for a, b in zip(lr, lr[1:]))
    assert lr[25] == pytest.approx(2.0 * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi / 4))))


def test_linear_decay_and_warmup():
    lr = [
        learning_rate_at(i, 1.0, "linear", warmup=10, final=0.0, max_iteration=110)
        for i in range(1, 111)
    ]
    assert lr[:10] == pytest.approx([i / 10 for i in range(1, 11)])  # 0.1 ... 1.0
    assert lr[59] == pytest.approx(0.5)  # iteration 60: half of the decay
    assert lr[-1] == 0.0
    # warm-up applies to the constant schedule too
    assert learning_rate_at(5, 1.0, "constant", warmup=10) == 0.5


def test_unknown_schedule():
    with pytest.raises(ValueError, match="unknown schedule"):
        learning_rate_at(1, 1.0, "step")


@pytest.mark.parametrize(
    "text, problem",
    [
        ("lr_schedule: cosin\n", "lr_schedule must be one of constant, cosine, linear"),
        ("lr_final: 2\n", "lr_final in \\[0, 1\\]"),
        ("lr_warmup: -5\n", "lr_warmup must be >= 0"),
    ],
)
def test_invalid_schedule_settings_name_the_file(tmp_path, text, problem):
    path = tmp_path / "setup.yaml"
    path.write_text(text)
    with pytest.raises(SynfulError, match=problem) as info:
        load_setup(path)
    assert info.value.path == str(path)


def test_setup_schedule_ends_at_max_iteration(tmp_path):
    path = tmp_path / "setup.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "learning_rate": 1e-3,
                "lr_schedule": "cosine",
                "lr_final": 0.01,
                "max_iteration": 2000,
            }
        )
    )
    setup = load_setup(path)
    assert setup.learning_rate_at(1) == pytest.approx(1e-3, rel=1e-5)
    assert setup.learning_rate_at(2000) == pytest.approx(1e-5)
