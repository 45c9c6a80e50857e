"""The CT denoising recipe as typed dataclasses; ``default.yaml`` beside it is the shipped one."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from suite.engine.train import TrainConfig

DEFAULT_YAML = Path(__file__).with_name("default.yaml")
HU_SCALE = 1000.0  # model input = HU / 1000: water 0, air -1 (invertible, no clipping)
NOISE_SCALE = 100.0  # the noise-level channel (model.noise_channel) = estimated noise HU / 100


@dataclass
class ModelConfig:
    """Residual 3D U-Net widths, optional space-to-depth folding, inference tiling.

    ``backend: monai`` (with ``num_res_units``) trains MONAI's ``UNet`` in the same recipe, so
    the speed benchmark's baseline network can be compared at equal training.
    ``gated_levels`` puts squeeze-and-excitation gates on the lean network's deepest levels;
    ``resample_kernel: 3`` and ``head_kernel: 3`` make its resampling and output convolutions
    overlap their neighbours, ``norm_levels`` adds instance norm to its deepest levels and
    ``residual_levels`` shortcuts around their convolutions (see
    :class:`suite.models.unet.LeanUNet`); all are MONAI's, tried to bring the folded network to
    MONAI's quality (``docs/ct_denoise_3x_search.md``).
    ``noise_channel`` gives the lean network the input's noise level, estimated once per volume
    (:func:`~domains.ct_denoise.lowdose.volume_noise_hu`), as a second input channel that
    scales and shifts its first level's features, as FFDNet's noise map tells one network
    how strongly to denoise.
    """

    channels: list[int] = field(default_factory=lambda: [16, 32, 64])
    patch: list[int] = field(default_factory=lambda: [128, 128, 16])
    overlap: list[int] = field(default_factory=lambda: [16, 16, 4])
    batch_size: int = 1
    unshuffle: list[int] | None = None
    backend: str = "lean"
    num_res_units: int = 0
    gated_levels: int = 0
    resample_kernel: int = 2
    head_kernel: int = 1
    norm_levels: int = 0
    residual_levels: int = 0
    noise_channel: bool = False


@dataclass
class LossConfig:
    """Weights of the loss terms (HU / 1000 units; SSIM on the [-160, 240] HU window).

    ``frequency`` weighs :func:`suite.losses.frequency_loss` (FFT amplitude L1 plus
    ``frequency_phase`` times the phase term) over axial slices; 0 (the shipped recipe) leaves
    it out. ``window_l1`` adds that many times the L1 error again on the voxels whose reference
    lies in the soft-tissue window, where the benchmark's PSNR is measured and where low-dose
    noise matters to a reader; air, lung and bone keep the plain ``l1`` weight.
    """

    l1: float = 1.0
    ssim: float = 0.1
    frequency: float = 0.0
    frequency_phase: float = 0.1
    window_l1: float = 0.0


@dataclass
class DataConfig:
    """How training pairs are made from normal-dose volumes.

    Attributes:
        noise_levels_hu: added-noise levels (std in soft tissue, HU) simulated per volume.
        realizations: independent noise draws per level.
        val: held-out normal-dose volume (validation at ``val_noise_hu``).
        val_noise_hu: added noise of the validation input.
        paired: each ``--data`` folder holds a ``low`` and a ``full`` dose volume (DICOM folders
            or NIfTI files) to train on instead of simulated low dose (``--paired``); ``val``
            may then be such a folder too.
        inplane_bins: in-plane block-averaging factors applied to each training volume, so the
            model sees the noise texture of several pixel sizes (1 keeps the original only).
        workers: processes that simulate the training pairs (the projection-domain simulation
            is CPU-bound, about 30 s per 512x512x20 volume and level; 1 runs it in-process).
        cache: folder where simulated inputs are kept as ``.npy`` files named by a hash of the
            clean volume, pixel size, level and seed, so repeated or concurrent recipes on the
            same data simulate once (``None``: no cache).
        slice_steps: slice-spacing factors: each pair is also used with only every k-th axial
            slice (all k phases), so the model sees anatomy that changes faster from slice to
            slice than in the training series (1 keeps the original spacing only). The noise
            of each slice is simulated independently, so a subsampled pair is still exact.
        init: weights to start from (a fine-tuning stage), or ``None`` for random weights.
        teacher: weights of a trained network whose output on each simulated input becomes
            (part of) the target: distillation of a larger network into a smaller one.
        teacher_mix: the teacher's share of the target (the rest is the clean volume).
        level_weights: relative sampling weight of each noise level (one per
            ``noise_levels_hu``; ``None``: all equally often). Equal sampling minimises the
            mean L1 error, which the noisiest levels dominate; PSNR is a log error, and the
            gradient of log(error) is the error's gradient over the error, so weights inversely
            proportional to each level's remaining error ask for equal gains in dB at every
            level (1 / level tilts further, since a network's output error grows more slowly
            than its input noise).
        attenuation_scales: scales of the line integrals that set the simulated counts, cycled
            over the draws (draw ``d`` takes ``attenuation_scales[d % len(attenuation_scales)]``,
            so ``realizations`` must be at least their number); ``[1.0]`` simulates each volume
            as it is. Below 1 the added noise has the texture of a less attenuating patient at
            the same level: finer, less streaky (``lowdose.simulate_low_dose``). The training
            series is a large abdomen whose lateral views dominate its noise as streaks; a
            smaller patient's noise puts more of its power at the finest scale.
    """

    noise_levels_hu: list[float] = field(default_factory=lambda: [20.0, 35.0, 50.0, 75.0, 100.0])
    realizations: int = 1
    val: Path | None = None
    val_noise_hu: float = 50.0
    paired: bool = False
    inplane_bins: list[int] = field(default_factory=lambda: [1])
    workers: int = 1
    cache: Path | None = None
    slice_steps: list[int] = field(default_factory=lambda: [1])
    init: Path | None = None
    teacher: Path | None = None
    teacher_mix: float = 1.0
    level_weights: list[float] | None = None
    attenuation_scales: list[float] = field(default_factory=lambda: [1.0])


@dataclass
class AdaptConfig:
    """Self-supervised fine-tuning on the input (``enhance --adapt``, ``adapt.py``).

    Chosen on slices 10-33 of ``totalsegmentator_ct.nii.gz``, disjoint from the benchmark's
    central slices (``docs/ct_denoise.md``).

    Attributes:
        steps: optimisation steps (a constant learning rate).
        lr: Adam learning rate.
        batch_size: patches per step.
        patch: patch size (X, Y, Z), shrunk to the slab when it is smaller.
        draws: independent simulated noise draws (recorrupted pairs).
        slices: central axial slices used (the simulation costs about 1.5 s per 512x512 slice).
        seed: seeds the draws, the patches and the weights' update order.
    """

    steps: int = 100
    lr: float = 1e-4
    batch_size: int = 4
    patch: list[int] = field(default_factory=lambda: [64, 64, 16])
    draws: int = 4
    slices: int = 32
    seed: int = 0


@dataclass
class CtConfig:
    """The whole recipe."""

    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    data: DataConfig = field(default_factory=DataConfig)
    adapt: AdaptConfig = field(default_factory=AdaptConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
