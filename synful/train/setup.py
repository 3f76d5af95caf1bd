"""The training setup (``config/setups/*.yaml``): its keys and defaults are
:class:`synful.settings.train.SetupSettings` (the one owner); :class:`TrainSetup` adds the
schedules read from them.

A setup is a flat mapping of the original ``parameter.json`` keys plus a few nested sections
(``elastic``, ``simple``, ``intensity``, ``defect``, ``curriculum``). :func:`load_setup` reads
YAML, rejects unknown keys with a suggestion (``unknown key 'fmap_nu' (did you mean
'fmap_num'?)``), checks types, fills in defaults and returns a :class:`TrainSetup`;
``TrainSetup.to_dict()`` is the full resolved setup stored in every checkpoint.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import types
import typing
from dataclasses import dataclass
from pathlib import Path

import yaml

from ..errors import SynfulError
from ..settings.train import (
    CHOICES,
    CurriculumSettings,
    DefectSettings,
    ElasticSettings,
    IntensitySettings,
    SetupSettings,
    SimpleSettings,
)
from .schedule import SCHEDULES, learning_rate_at

__all__ = [
    "CurriculumSettings",
    "DefectSettings",
    "ElasticSettings",
    "IntensitySettings",
    "SimpleSettings",
    "TrainSetup",
    "load_setup",
    "resolve_setup",
]


@dataclass
class TrainSetup(SetupSettings):
    """A full training setup (see ``config/README`` and ``config/setups/*.yaml``): the keys and
    defaults of :class:`synful.settings.train.SetupSettings`, and the schedules read from them."""

    def to_dict(self) -> dict:
        """The full resolved setup as plain data (stored in checkpoints)."""
        return dataclasses.asdict(self)

    def reject_probability_at(self, iteration: int) -> float:
        """``reject_probability`` at an iteration (the curriculum's schedule, if on)."""
        return self._scheduled(
            self.curriculum.reject_probability, self.reject_probability, iteration
        )

    def balance_clip_at(self, iteration: int) -> tuple[float, float]:
        """The balancing clip range at an iteration (the curriculum's schedule, if on)."""
        low = self._scheduled(self.curriculum.clipmin, self.balance_clip[0], iteration)
        return float(low), float(self.balance_clip[1])

    def learning_rate_at(self, iteration: int) -> float:
        """The learning rate of the step of ``iteration`` (``lr_schedule``)."""
        return learning_rate_at(
            iteration,
            self.learning_rate,
            self.lr_schedule,
            self.lr_warmup,
            self.lr_final,
            self.max_iteration,
        )

    def _scheduled(self, ends, fixed, iteration):
        if ends is None or self.curriculum.iterations <= 0:
            return float(fixed)
        t = min(max(iteration / self.curriculum.iterations, 0.0), 1.0)
        return float(ends[0] + t * (ends[1] - ends[0]))


def _type_name(annotation) -> str:
    return getattr(annotation, "__name__", str(annotation))


def _convert(value, annotation, where: str, path):
    """Check and convert ``value`` to ``annotation`` (bool, int, float, str, list[...], None)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
        if value is None and type(None) in options:
            return None
        inner = [o for o in options if o is not type(None)]
        # a list where a list is allowed (e.g. a radius per axis), else the first option
        lists = [o for o in inner if typing.get_origin(o) is list]
        if isinstance(value, list | tuple) and lists:
            return _convert(value, lists[0], where, path)
        return _convert(value, inner[0], where, path)
    if origin is list:
        (inner,) = typing.get_args(annotation)
        if not isinstance(value, list | tuple):
            raise SynfulError(path, f"{where} must be a list, got {value!r}")
        return [_convert(v, inner, f"{where}[{i}]", path) for i, v in enumerate(value)]
    if annotation is bool:
        if not isinstance(value, bool):
            raise SynfulError(path, f"{where} must be true or false, got {value!r}")
        return value
    if annotation is int:
        if isinstance(value, bool) or not (
            isinstance(value, int) or (isinstance(value, float) and value.is_integer())
        ):
            raise SynfulError(path, f"{where} must be an integer, got {value!r}")
        return int(value)
    if annotation is float:
        if isinstance(value, str):
            try:
                value = float(value)  # YAML reads 1e-4 as a string
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise SynfulError(path, f"{where} must be a number, got {value!r}")
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            raise SynfulError(path, f"{where} must be a string, got {value!r}")
        return value
    raise TypeError(f"unsupported schema type {_type_name(annotation)}")  # pragma: no cover


def _build(cls, data, path, prefix: str = ""):
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SynfulError(path, f"{prefix.rstrip('.') or 'setup'} must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for key in data:
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f" (did you mean '{prefix}{close[0]}'?)" if close else ""
            raise SynfulError(path, f"unknown key '{prefix}{key}'{hint}")
    values = {}
    for name in names:
        if name not in data:
            continue
        annotation = hints[name]
        if dataclasses.is_dataclass(annotation):
            values[name] = _build(annotation, data[name], path, f"{prefix}{name}.")
        else:
            values[name] = _convert(data[name], annotation, f"{prefix}{name}", path)
    return cls(**values)


def _check(setup: TrainSetup, path) -> None:
    def fail(problem):
        raise SynfulError(path, problem)

    for name, choices in CHOICES.items():
        value = getattr(setup, name)
        if value not in choices:
            fail(f"{name} must be {' or '.join(map(repr, choices))}, got {value!r}")
    for name in ("input_shape", "voxel_size", "predict_input_shape"):
        value = getattr(setup, name)
        if value is not None and (len(value) != 3 or min(value) < 1):
            fail(f"{name} must be 3 positive integers (z, y, x), got {value}")
    for factor in setup.downsample_factors:
        if len(factor) != 3 or min(factor) < 1:
            fail(f"downsample_factors entries must be 3 positive integers, got {factor}")
    if setup.m_loss_scale < 0 or setup.d_loss_scale < 0:
        fail("m_loss_scale and d_loss_scale must be >= 0")
    if setup.m_loss_scale == 0 and setup.d_loss_scale == 0:
        fail("m_loss_scale and d_loss_scale are both 0: nothing to train")
    if setup.network_type == "dh_unet" and (setup.m_loss_scale == 0 or setup.d_loss_scale == 0):
        fail("dh_unet needs both m_loss_scale and d_loss_scale > 0")
    if setup.fmap_num < 1 or setup.fmap_inc_factor < 1:
        fail("fmap_num and fmap_inc_factor must be >= 1")
    if setup.d_scale <= 0:
        fail("d_scale must be > 0")
    for name in ("blob_radius", "d_blob_radius"):
        value = getattr(setup, name)
        values = value if isinstance(value, list) else [value]
        if len(values) not in (1, 3) or min(values) <= 0:
            fail(f"{name} must be a number > 0 or 3 numbers > 0 (z, y, x), got {value}")
    low, high = (setup.balance_clip + [None, None])[:2]
    if len(setup.balance_clip) != 2 or not 0 < low < high <= 1:
        fail(f"balance_clip must be [min, max] with 0 < min < max <= 1, got {setup.balance_clip}")
    if not 0 <= setup.reject_probability <= 1 or not 0 < setup.min_masked <= 1:
        fail("reject_probability must lie in [0, 1] and min_masked in (0, 1]")
    for name in ("batch_size", "max_iteration", "checkpoint_every", "snapshot_every", "log_every"):
        if getattr(setup, name) < 1:
            fail(f"{name} must be >= 1")
    if setup.num_workers < 0 or setup.in_memory_mib < 0:
        fail("num_workers and in_memory_mib must be >= 0")
    if setup.keep_snapshots < 0:
        fail("keep_snapshots must be >= 0 (0 keeps all)")
    if setup.batch_norm_batches < 0:
        fail("batch_norm_batches must be >= 0")
    if setup.learning_rate <= 0 or len(setup.adam_betas) != 2:
        fail("learning_rate must be > 0 and adam_betas two numbers")
    if setup.lr_schedule not in SCHEDULES:
        fail(f"lr_schedule must be one of {', '.join(SCHEDULES)}, got {setup.lr_schedule!r}")
    if setup.lr_warmup < 0 or not 0 <= setup.lr_final <= 1:
        fail("lr_warmup must be >= 0 and lr_final in [0, 1]")
    e = setup.elastic
    if (
        len(e.control_point_spacing) != 3
        or min(e.control_point_spacing) < 1
        or len(e.jitter_sigma) != 3
    ):
        fail("elastic.control_point_spacing and elastic.jitter_sigma need 3 entries (z, y, x)")
    if len(e.rotation_interval) != 2 or e.subsample < 1:
        fail("elastic.rotation_interval needs 2 entries and elastic.subsample must be >= 1")
    d = setup.defect
    chances = (e.prob_slip, e.prob_shift, d.prob_missing, d.prob_low_contrast, d.prob_misaligned)
    if min(chances) < 0 or e.prob_slip + e.prob_shift > 1:
        fail("elastic.prob_slip and prob_shift must be >= 0 with a sum <= 1")
    if d.prob_missing + d.prob_low_contrast + d.prob_misaligned > 1:
        fail(
            "defect.prob_missing, prob_low_contrast and prob_misaligned must be >= 0 with a sum <= 1"
        )
    if e.max_misalign < 0 or d.max_misaligned < 0:
        fail("elastic.max_misalign and defect.max_misaligned must be >= 0 (voxels)")
    for name in ("scale", "shift"):
        if len(getattr(setup.intensity, name)) != 2:
            fail(f"intensity.{name} must be [min, max]")
    c = setup.curriculum
    for name in ("reject_probability", "clipmin"):
        value = getattr(c, name)
        if value is not None and len(value) != 2:
            fail(f"curriculum.{name} must be [start, end]")


def resolve_setup(data: dict, path: str | os.PathLike | None = None) -> TrainSetup:
    """Validate a setup mapping and fill in defaults; ``input_shape`` (training) and
    ``predict_input_shape`` (optional, a larger input for prediction) are rounded up to valid
    network inputs.

    Raises:
        SynfulError: (path, problem) for an unknown key, a wrong type or an invalid value.
    """
    setup = _build(TrainSetup, data, path)
    _check(setup, path)
    from ..models import valid_input_shape

    try:
        setup.input_shape = list(
            valid_input_shape(
                setup.input_shape,
                setup.downsample_factors,
                setup.kernel_sizes,
                setup.skip_alignment,
            )
        )
        if setup.predict_input_shape is not None:
            setup.predict_input_shape = list(
                valid_input_shape(
                    setup.predict_input_shape,
                    setup.downsample_factors,
                    setup.kernel_sizes,
                    setup.skip_alignment,
                )
            )
    except ValueError as exc:
        raise SynfulError(path, f"invalid network: {exc}") from None
    return setup


def load_setup(path: str | os.PathLike) -> TrainSetup:
    """Read, validate and resolve a setup YAML file."""
    path = Path(path)
    if not path.is_file():
        raise SynfulError(path, "no such setup file")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise SynfulError(path, f"invalid YAML ({str(exc).splitlines()[0]})") from None
    return resolve_setup(data or {}, path)
