"""Training configuration: every number of the recipe, as a frozen dataclass in TOML or JSON.

Defaults are the recipe of Segal et al. (WGAN-GP lambda 10, drift 0.001, Adam lr 0.001 with
betas (0, 0.99), EMA generator 0.999, 800k images at 4x4, then per resolution 800k fading
in and 800k stabilising, batch sizes falling with resolution). The growth schedule is a pure
function of the number of images shown, so a run resumed from any checkpoint, even in the
middle of a fade-in, continues at exactly the same resolution and alpha.

The EMA's horizon ramps up with the images shown, as in StyleGAN2-ADA (``ema_rampup``): a
fixed decay of 0.999 per step keeps 0.999^2000 = 14 % of the random initial weights after
2000 steps, so the samples and exported model of a short run were noise while the live
generator already drew chests. With the ramp the half-life is at most ``ema_rampup`` times
the images shown; past that point (886k images for the paper's recipe) it is the paper's.
"""

from __future__ import annotations

import dataclasses
import json
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cxrgan_desktop.core.shipped import resource_path
from cxrgan_desktop.engine.pggan import PAPER_CHANNELS, PGGANConfig

PAPER_BATCH_SIZES = {4: 64, 8: 64, 16: 64, 32: 64, 64: 64, 128: 64, 256: 56, 512: 32,
                     1024: 12}


@dataclass(frozen=True)
class DataConfig:
    image_dir: str = ""
    labels_csv: str = ""
    view_positions: tuple[str, ...] = ()
    require_findings: tuple[str, ...] = ()
    exclude_findings: tuple[str, ...] = ()
    max_images: int = 0  # 0 = all
    bit_depth: int = 16  # of the preprocessed cache
    square: str = "crop"  # how non-square images become square: crop | pad
    cache_dir: str = ""  # empty: a folder under the user cache


@dataclass(frozen=True)
class TrainConfig:
    name: str = "pggan"
    seed: int = 0
    latent_size: int = 512
    channels: tuple[int, ...] = PAPER_CHANNELS  # per resolution from 4 px; sets the target
    image_channels: int = 1
    mbstd_group_size: int = 0  # 0 = whole batch (the paper)
    images_first: int = 800_000  # at 4x4
    images_fade: int = 800_000  # per new resolution, fading in
    images_stable: int = 800_000  # per new resolution, after the fade
    images_final_extra: int = 400_000  # more at the target resolution (paper: 2M in all)
    batch_sizes: dict[int, int] = field(default_factory=lambda: dict(PAPER_BATCH_SIZES))
    lr: float = 0.001
    beta1: float = 0.0
    beta2: float = 0.99
    adam_eps: float = 1e-8
    gp_lambda: float = 10.0
    drift: float = 0.001
    ema_decay: float = 0.999  # per step (the paper); see ema_half_life_images
    ema_half_life_images: int = 0  # > 0: the EMA half-life in images (StyleGAN's ema_kimg)
    ema_rampup: float = 0.05  # half-life at most this x images shown; 0 = no ramp
    cpu_threads: int = 0  # torch threads per process on a CPU; 0 = automatic (see threads.py)
    mixed_precision: bool = True  # CUDA only; ignored on CPU
    checkpoint_every: int = 100_000  # images
    sample_every: int = 50_000  # images
    log_every: int = 2_000  # images
    sample_count: int = 16
    init_from: str = ""  # fine-tuning: a generator file (native or the paper's)
    freeze_below: int = 0  # fine-tuning: freeze generator layers below this resolution
    d_warmup_images: int = 20_000  # fine-tuning without a discriminator: train D alone first
    # patients kept out of training for the memorisation audit (engine/training/holdout.py);
    # 0 = none: every listed image trains, exactly as before the option existed
    hold_out_fraction: float = 0.0
    hold_out_seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)

    def __post_init__(self) -> None:
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        sizes = {int(k): int(v) for k, v in self.batch_sizes.items()}
        object.__setattr__(self, "batch_sizes", sizes)
        missing = [r for r in self.resolutions if r not in sizes]
        if missing:
            raise ValueError(f"batch_sizes has no entry for resolution(s) {missing}")
        if any(b < 1 for b in sizes.values()):
            raise ValueError("batch sizes must be positive")
        for name in ("images_first", "images_fade", "images_stable", "checkpoint_every",
                     "sample_every", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive")
        if self.images_final_extra < 0:
            raise ValueError("images_final_extra must not be negative")
        if not 0.0 < self.ema_decay < 1.0:
            raise ValueError("ema_decay must be in (0, 1)")
        if self.ema_half_life_images < 0 or self.ema_rampup < 0 or self.cpu_threads < 0:
            raise ValueError("ema_half_life_images, ema_rampup and cpu_threads must not be "
                             "negative")
        object.__setattr__(self, "hold_out_fraction", float(self.hold_out_fraction))
        object.__setattr__(self, "hold_out_seed", int(self.hold_out_seed))
        if not 0.0 <= self.hold_out_fraction < 1.0:
            raise ValueError(f"hold_out_fraction must be at least 0 and below 1, got "
                             f"{self.hold_out_fraction}")
        if self.hold_out_seed < 0:
            raise ValueError(f"hold_out_seed must not be negative, got {self.hold_out_seed}")

    def ema_beta(self, images_shown: int, batch: int) -> float:
        """The EMA weight kept in the step that trains on ``batch`` images after
        ``images_shown``: ``G_ema <- beta G_ema + (1 - beta) G``.

        StyleGAN2-ADA's rule: half-life h (images) = ``ema_half_life_images``, or the
        paper's per-step ``ema_decay`` as images at this batch size; with the ramp,
        h = min(h, images_shown * ema_rampup); beta = 0.5 ** (batch / h). The first step
        (h = 0) copies the live generator. A pure function of the schedule, so a resumed run
        uses exactly the same weights as an uninterrupted one.
        """
        if self.ema_half_life_images:
            half_life = float(self.ema_half_life_images)
        else:
            half_life = batch * math.log(0.5) / math.log(self.ema_decay)
        ramp = images_shown * self.ema_rampup if self.ema_rampup else math.inf
        if ramp >= half_life and not self.ema_half_life_images:
            return self.ema_decay  # exactly the paper's number once the ramp is over
        return 0.5 ** (batch / max(min(half_life, ramp), 1e-8))

    @property
    def architecture(self) -> PGGANConfig:
        return PGGANConfig(latent_size=self.latent_size, channels=self.channels,
                           image_channels=self.image_channels,
                           mbstd_group_size=self.mbstd_group_size)

    @property
    def resolutions(self) -> list[int]:
        return [4 * 2**d for d in range(len(self.channels))]

    @property
    def target_resolution(self) -> int:
        return self.resolutions[-1]

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["batch_sizes"] = {str(k): v for k, v in self.batch_sizes.items()}
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown training settings: {', '.join(unknown)} "
                             f"(known: {', '.join(sorted(known))})")
        data = dict(data)
        if "data" in data:
            data_known = {f.name for f in dataclasses.fields(DataConfig)}
            bad = sorted(set(data["data"]) - data_known)
            if bad:
                raise ValueError(f"unknown [data] settings: {', '.join(bad)}")
            data["data"] = DataConfig(**{k: tuple(v) if isinstance(v, list) else v
                                         for k, v in data["data"].items()})
        if "batch_sizes" in data:
            data["batch_sizes"] = {int(k): int(v) for k, v in data["batch_sizes"].items()}
        return cls(**data)


def presets_dir() -> Path:
    return resource_path("presets")


def preset_names() -> list[str]:
    return sorted(p.stem for p in presets_dir().glob("*.toml"))


def load_config(path: str | Path) -> TrainConfig:
    """A config from ``.toml`` or ``.json``, or a preset by name; errors name the file."""
    file = Path(path)
    if not file.exists() and str(path) in preset_names():
        file = presets_dir() / f"{path}.toml"
    try:
        text = file.read_text(encoding="utf-8")
        data = tomllib.loads(text) if file.suffix.lower() == ".toml" else json.loads(text)
        return TrainConfig.from_dict(data)
    except (OSError, ValueError, TypeError, tomllib.TOMLDecodeError) as error:
        raise ValueError(f"{file}: {error}") from error


@dataclass(frozen=True)
class Phase:
    depth: int
    alpha: float  # 1 = finished (no fade)
    fading: bool
    start: int  # images shown when the phase began
    end: int  # images shown when it ends

    @property
    def resolution(self) -> int:
        return 4 * 2**self.depth


def phases(config: TrainConfig) -> list[tuple[int, bool, int, int]]:
    """(depth, fading, start, end) of every phase, in order. Fine-tuning (``init_from``) is
    one stable phase of ``images_stable`` images at the model's own resolution."""
    last = len(config.channels) - 1
    if config.init_from:
        return [(last, False, 0, config.images_stable)]
    out, shown = [], 0
    out.append((0, False, 0, config.images_first))
    shown = config.images_first
    for depth in range(1, last + 1):
        out.append((depth, True, shown, shown + config.images_fade))
        shown += config.images_fade
        stable = config.images_stable + (config.images_final_extra if depth == last else 0)
        out.append((depth, False, shown, shown + stable))
        shown += stable
    return out


def total_images(config: TrainConfig) -> int:
    return phases(config)[-1][3]


def phase_at(config: TrainConfig, images_shown: int) -> Phase:
    """Where training stands after ``images_shown`` images (past the end: the last phase)."""
    for depth, fading, start, end in phases(config):
        if images_shown < end:
            alpha = (images_shown - start) / (end - start) if fading else 1.0
            return Phase(depth, alpha, fading, start, end)
    depth, fading, start, end = phases(config)[-1]
    return Phase(depth, 1.0, False, start, end)
