"""The settings of the commands that make a sample, defined once: :class:`SynthesizeSettings`
(``synful synthesize``), :class:`DownloadSettings` (``synful download``),
:class:`ConvertSettings` (``synful convert``) and :class:`MaskSettings` (``synful masks``).

Their command-line options come from here, and the workflow hands each command its part of
a sample entry as ``--settings`` (``samples.NAME.synthetic``, ``samples.NAME.masks``, the
``download:`` section, a sample's ``voxel_size`` with ``chunks``); the defaults of those config
keys (``config/schema.yaml``) and of :class:`synful.masks.SplitRule` are checked against these
models by ``tests/test_settings_defaults.py``. Imports no stage; the CREMI voxel size comes from
the format's owner, :mod:`synful.io.cremi`.
"""

# no ``from __future__ import annotations``: the fields' types are read at run time
import dataclasses

from ..io.cremi import CREMI_VOXEL_SIZE
from .fields import check_fields, setting

#: the axes a split rule can cut along
SPLIT_AXES = ("z", "y", "x")


@dataclasses.dataclass(frozen=True)
class SynthesizeSettings:
    """What a synthetic sample is made of (validated; the same settings give identical arrays)."""

    seed: int = setting(0, "random seed")
    shape: tuple[int, int, int] = setting(
        (32, 320, 320), "labelled cube size in voxels", minimum=1, metavar=("Z", "Y", "X")
    )
    padding: tuple[int, int, int] = setting(
        (8, 96, 96), "raw context around the cube in voxels, per side", minimum=0,
        metavar=("Z", "Y", "X"),
    )  # fmt: skip
    missing_sections: float = setting(
        0.0, "fraction of raw sections left black", minimum=0.0, maximum=1.0, metavar="F"
    )
    misaligned_sections: float = setting(
        0.0, "fraction of raw sections shifted in-plane", minimum=0.0, maximum=1.0, metavar="F"
    )

    def __post_init__(self):
        check_fields(self)


@dataclasses.dataclass(frozen=True)
class DownloadSettings:
    """How a file is fetched and checked (validated)."""

    sha256: str | None = setting(
        None,
        "expected sha256 digest (default: the one recorded in OUT.sha256.json by the first "
        "download of URL, if any)",
        metavar="HEX",
    )
    require_labels: bool = setting(
        False, "require volumes/labels/neuron_ids and annotations (training samples)"
    )
    no_check: bool = setting(
        False,
        "any file (e.g. a .tar.gz archive): skip the CREMI HDF5 layout check (--sha256 is "
        "still checked)",
    )
    retries: int = setting(5, "resumes after a transfer is cut off", minimum=0, metavar="N")
    timeout: float = setting(60.0, "socket timeout (seconds)", above=0.0, metavar="S")

    def __post_init__(self):
        check_fields(self)


@dataclasses.dataclass(frozen=True)
class ConvertSettings:
    """How a CREMI HDF5 file becomes a sample store (validated)."""

    voxel_size: tuple[int, int, int] = setting(
        CREMI_VOXEL_SIZE, "expected resolution of every volume (nm)", minimum=1,
        metavar=("Z", "Y", "X"),
    )  # fmt: skip
    chunks: tuple[int, int, int] = setting(
        (8, 256, 256), "zarr chunk shape (voxels)", minimum=1, metavar=("Z", "Y", "X")
    )

    def __post_init__(self):
        check_fields(self)


@dataclasses.dataclass(frozen=True)
class MaskSettings:
    """Where a sample's training and validation regions are: a split rule or mask volumes
    (validated). Mask volumes win over the rule, a range over the fraction."""

    split_axis: str = setting("z", "axis of the split rule", choices=SPLIT_AXES)
    training_fraction: float = setting(
        0.75, "training = the first F of the labelled cube along the axis", minimum=0.0,
        maximum=1.0, metavar="F",
    )  # fmt: skip
    training_range: tuple[float, float] | None = setting(
        None,
        "training = voxels whose centres lie in [BEGIN, END) nm (world) along the axis; "
        "instead of --training-fraction",
        metavar=("BEGIN", "END"),
    )
    training_mask: str | None = setting(None, "training mask volume", metavar="PATH")
    validation_mask: str | None = setting(None, "validation mask volume", metavar="PATH")

    def __post_init__(self):
        check_fields(self)
