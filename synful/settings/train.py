"""The training setup's keys and their defaults, defined once (``config/setups/*.yaml``).

:class:`SetupSettings` holds every key of a setup (the original ``parameter.json`` keys plus the
nested sections ``elastic``, ``simple``, ``intensity``, ``defect``, ``curriculum``) with its
type and default. :class:`synful.train.setup.TrainSetup` is it with the schedules read from
the keys, :func:`synful.train.setup.load_setup` reads and checks a YAML file into one, and
:data:`synful.models.MODEL_DEFAULTS` takes the network keys' defaults from here
(:data:`LEGACY_DEFAULTS` for a setup stored before a key existed). The shipped setups and the
workflow schema are checked against it by ``tests/test_setup_defaults.py``.

Imports only the standard library (the workflow reads setups where torch is not installed).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

#: the setup keys the network is built from (:func:`synful.models.build_model`)
MODEL_KEYS = (
    "network_type",
    "downsample_factors",
    "fmap_num",
    "fmap_inc_factor",
    "m_loss_scale",
    "d_loss_scale",
    "d_scale",
    "kernel_sizes",
    "normalization",
    "init",
    "mask_loss",
    "skip_alignment",
)
#: what a setup stored without a key (a checkpoint written before the key existed) was built
#: with, where that differs from the key's default for new setups: skip_alignment was
#: centre_crop, the only alignment then
LEGACY_DEFAULTS = {"skip_alignment": "centre_crop"}

#: the values the choice keys take (the network modules import them from here)
NETWORK_TYPES = ("vanilla", "dh_unet")
NORMALIZATIONS = ("none", "batch")
SKIP_ALIGNMENTS = ("geometric", "centre_crop")
INITS = ("he", "glorot")
MASK_LOSSES = ("ce", "mse")
#: choice key -> its values, as :func:`synful.train.setup.load_setup` checks them
CHOICES = {
    "network_type": NETWORK_TYPES,
    "normalization": NORMALIZATIONS,
    "skip_alignment": SKIP_ALIGNMENTS,
    "init": INITS,
    "mask_loss": MASK_LOSSES,
}


@dataclass
class ElasticSettings:
    """Elastic augmentation (gunpowder ElasticAugment); lengths in voxels, angles in radians."""

    enabled: bool = True
    control_point_spacing: list[int] = field(default_factory=lambda: [4, 40, 40])
    jitter_sigma: list[float] = field(default_factory=lambda: [0.0, 2.0, 2.0])
    rotation_interval: list[float] = field(default_factory=lambda: [0.0, math.pi / 2])
    prob_slip: float = 0.05
    prob_shift: float = 0.05
    max_misalign: float = 10.0
    subsample: int = 8


@dataclass
class SimpleSettings:
    """Mirror along y and x, transpose y <-> x (gunpowder SimpleAugment as in the original)."""

    mirror: bool = True
    transpose: bool = True


@dataclass
class IntensitySettings:
    """Per-section a' = mean + (a - mean) * scale + shift on raw in [0, 1], clipped to [0, 1]."""

    enabled: bool = True
    scale: list[float] = field(default_factory=lambda: [0.9, 1.1])
    shift: list[float] = field(default_factory=lambda: [-0.1, 0.1])


@dataclass
class DefectSettings:
    """Section defects of the raw only (not in the original's public scripts): missing,
    low-contrast and misaligned sections (``max_misaligned``: voxels per in-plane axis)."""

    prob_missing: float = 0.0
    prob_low_contrast: float = 0.0
    contrast_scale: float = 0.1
    prob_misaligned: float = 0.0
    max_misaligned: int = 16


@dataclass
class CurriculumSettings:
    """A linear schedule over the first ``iterations`` iterations (0 = off).

    While on, ``reject_probability`` goes linearly from ``reject_probability[0]`` to
    ``reject_probability[1]`` and the lower balancing clip from ``clipmin[0]`` to ``clipmin[1]``
    (an entry left empty keeps the setup's fixed value); afterwards the end values hold. The
    original's curriculum schedule is not public (unverified); this is our own choice.
    """

    iterations: int = 0
    reject_probability: list[float] | None = None
    clipmin: list[float] | None = None


@dataclass
class SetupSettings:
    """Every key of a training setup and its default (:class:`synful.train.setup.TrainSetup`
    adds the schedules read from them, :func:`synful.train.setup.load_setup` the checks)."""

    description: str = ""
    # network
    network_type: str = "vanilla"
    input_shape: list[int] = field(default_factory=lambda: [45, 295, 295])
    predict_input_shape: list[int] | None = None
    downsample_factors: list[list[int]] = field(
        default_factory=lambda: [[1, 3, 3], [1, 3, 3], [3, 3, 3]]
    )
    fmap_num: int = 4
    fmap_inc_factor: int = 5
    kernel_sizes: list[list[int]] | None = None
    normalization: str = "none"
    # where the U-Net cuts its skip connections (synful/models/unet.py): "geometric" (the
    # original's alignment; new setups) or "centre_crop" (synful's only one before this key: a
    # checkpoint without the key was trained with it, LEGACY_DEFAULTS). The same network
    # when every downsample factor is a power of 2; different for the published [1,3,3],[1,3,3],[3,3,3]
    skip_alignment: str = "geometric"
    # weight initialisation: "he" (He-normal U-Net convolutions, PyTorch's default heads; our
    # default, kept so that existing setups build the same network) or "glorot" (the
    # original's TF1 default: Glorot-uniform weights and zero biases everywhere, heads included)
    init: str = "he"
    # BatchNorm statistics stored in a checkpoint: recomputed with its weights over this many
    # batches (0: PyTorch's running averages; synful/train/batchnorm.py)
    batch_norm_batches: int = 64
    voxel_size: list[int] = field(default_factory=lambda: [40, 4, 4])
    # targets
    # ball radii in nm: one number, or one per axis (z, y, x) for an ellipsoid
    blob_radius: float | list[float] = 10.0
    d_blob_radius: float | list[float] = 100.0
    d_scale: float = 1.0
    # losses
    m_loss_scale: float = 1.0
    d_loss_scale: float = 1.0
    # ce: weighted sigmoid cross-entropy on the logits (prediction: sigmoid); mse: weighted
    # squared error of the linear output against 0/1, as the published MSE graphs (prediction:
    # the linear output clipped to [0, 1])
    mask_loss: str = "ce"
    balance_clip: list[float] = field(default_factory=lambda: [7e-4, 0.9993])
    # sampling
    reject_probability: float = 0.95
    min_masked: float = 1.0
    batch_size: int = 1
    # optimiser and schedule
    learning_rate: float = 0.5e-4
    # constant (the original), cosine or linear decay to learning_rate * lr_final at
    # max_iteration, after lr_warmup iterations of linear warm-up (synful/train/schedule.py)
    lr_schedule: str = "constant"
    lr_warmup: int = 0
    lr_final: float = 0.0
    adam_betas: list[float] = field(default_factory=lambda: [0.95, 0.999])
    adam_eps: float = 1e-8
    max_iteration: int = 700000
    checkpoint_every: int = 30000
    snapshot_every: int = 1000
    # snapshots kept in DIR/snapshots: those of the last keep_snapshots iterations (0: all)
    keep_snapshots: int = 5
    log_every: int = 10
    seed: int = 0
    num_workers: int = 4
    # sample arrays (raw, neuron_ids, training mask) up to this size are read into memory once
    # per data worker instead of from zarr for every batch (0: never)
    in_memory_mib: int = 512
    # bfloat16 autocast where the device computes in bf16 natively (the original trained in
    # float32; the published and original setups set false, so bf16 is an explicit opt-in there)
    mixed_precision: bool = True
    # augmentation
    elastic: ElasticSettings = field(default_factory=ElasticSettings)
    simple: SimpleSettings = field(default_factory=SimpleSettings)
    intensity: IntensitySettings = field(default_factory=IntensitySettings)
    defect: DefectSettings = field(default_factory=DefectSettings)
    curriculum: CurriculumSettings = field(default_factory=CurriculumSettings)


def setup_defaults() -> dict:
    """Every key of a new setup and its default (nested sections as mappings)."""
    return dataclasses.asdict(SetupSettings())


def model_defaults() -> dict:
    """The network keys' defaults for a setup that lacks them (:data:`MODEL_KEYS`): a new
    setup's, but :data:`LEGACY_DEFAULTS`."""
    defaults = setup_defaults()
    return {key: defaults[key] for key in MODEL_KEYS} | LEGACY_DEFAULTS
