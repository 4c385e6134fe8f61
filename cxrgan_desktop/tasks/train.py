"""A whole training run from a config file: prepare the data cache, then train.

Shared by ``cxrgan train`` and the GUI's Train panel (and, under torchrun, by every rank).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from cxrgan_desktop.core import paths
from cxrgan_desktop.core.jobs import ProgressFn, no_progress, sub_progress
from cxrgan_desktop.engine.devices import resolve_device
from cxrgan_desktop.engine.training import distributed
from cxrgan_desktop.engine.training.config import TrainConfig
from cxrgan_desktop.engine.training.loop import TrainingData, TrainResult, train

if TYPE_CHECKING:
    from cxrgan_desktop.engine.training.dataset import DatasetSpec
    from cxrgan_desktop.engine.training.holdout import HeldOut


def new_run_dir(name: str, root: Path | None = None) -> Path:
    """``<root>/00007-name``: numbered so that runs sort by creation (stylegan3's habit)."""
    root = root or paths.data_dir() / "runs"
    root.mkdir(parents=True, exist_ok=True)
    numbers = [int(m.group(1)) for p in root.iterdir() if (m := re.match(r"(\d{5})-", p.name))]
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "run"
    return root / f"{max(numbers, default=-1) + 1:05d}-{safe}"


@dataclass
class PreparedData:
    data: TrainingData
    cache_dir: Path
    files: tuple[str, ...] = ()  # the cache's relative paths, in row order


def dataset_spec(config: TrainConfig) -> DatasetSpec:
    """The images the config's ``[data]`` section selects."""
    from cxrgan_desktop.engine.training.dataset import DatasetSpec

    settings = config.data
    if not settings.image_dir:
        raise ValueError("the config names no training images: set [data] image_dir")
    return DatasetSpec(
        image_dir=Path(settings.image_dir),
        labels_csv=Path(settings.labels_csv) if settings.labels_csv else None,
        view_positions=tuple(settings.view_positions),
        require_findings=tuple(settings.require_findings),
        exclude_findings=tuple(settings.exclude_findings),
        max_images=settings.max_images or None)


def prepare_data(config: TrainConfig, progress: ProgressFn = no_progress,
                 cancel: threading.Event | None = None) -> PreparedData:
    """Build (or reuse, or resume) the multi-resolution cache the config's data needs.

    The cache holds every listed image whatever the hold-out: held-out patients are left
    out by :func:`apply_held_out` when the sampler draws, not by the cache's key, so one
    cache serves a run with a hold-out, one without and the audit that reads the held-out
    images, and its key and fingerprint are those of runs before the option existed."""
    from cxrgan_desktop.engine.training.image_cache import build_cache, default_cache_dir

    settings = config.data
    spec = dataset_spec(config)
    resolution = config.target_resolution
    cache_dir = (Path(settings.cache_dir) if settings.cache_dir else
                 default_cache_dir(spec, resolution, settings.bit_depth, settings.square))
    cache = build_cache(spec, cache_dir, resolution, bit_depth=settings.bit_depth,
                        square=settings.square, progress=progress, cancel=cancel)
    data = TrainingData(cache.count, cache.fingerprint, cache.description, cache.batch)
    return PreparedData(data, cache_dir, cache.files)


def resolve_held_out(config: TrainConfig, run_dir: Path) -> HeldOut | None:
    """The run's held-out patients: those its ``held_out.json`` records (a resumed run), or a
    new choice from the listing and the seed, written there before the first step.

    A run keeps the hold-out it started with: resuming with another fraction or seed, adding
    a hold-out to a run that trained without one, or dropping it, is an error, since the
    patients in question have then been trained on."""
    from cxrgan_desktop.engine.training.dataset import list_dataset
    from cxrgan_desktop.engine.training.holdout import (
        HELD_OUT_JSON,
        choose_held_out,
        read_held_out,
        write_held_out,
    )

    record = Path(run_dir) / HELD_OUT_JSON
    started = (Path(run_dir) / "checkpoints" / "latest.pt").exists()
    fraction, seed = config.hold_out_fraction, config.hold_out_seed
    if record.exists():
        held = read_held_out(run_dir)
        if (held.fraction, held.seed) != (fraction, seed):
            raise ValueError(f"{record}: this run holds out a fraction {held.fraction:g} of "
                             f"the patients with seed {held.seed}; resume it with "
                             f"--hold-out-patients {held.fraction:g} --hold-out-seed "
                             f"{held.seed} (asked: {fraction:g}, seed {seed})")
        return held
    if not fraction:
        return None
    if started:
        raise ValueError(f"{run_dir}: this run has trained on all its patients (no "
                         f"{HELD_OUT_JSON}); a hold-out can only start with a new run")
    held = choose_held_out(list_dataset(dataset_spec(config)), fraction, seed)
    write_held_out(run_dir, held)
    return held


def apply_held_out(prepared: PreparedData, config: TrainConfig, held: HeldOut | None
                   ) -> TrainingData:
    """The training data without the held-out patients: the sampler draws positions in the
    kept rows only, mapped to cache rows, so no held-out image is ever in a batch. Without a
    hold-out: the data as it is (same count, order and batches as before the option)."""
    if held is None:
        return prepared.data
    from cxrgan_desktop.engine.training.dataset import list_dataset
    from cxrgan_desktop.engine.training.holdout import training_rows

    rows = training_rows(prepared.files, list_dataset(dataset_spec(config)), held)
    if len(rows) == 0:
        raise ValueError(f"{held.image_dir}: every image is held out; lower the fraction")
    whole = prepared.data

    def batch(resolution: int, indices: Sequence[int]) -> torch.Tensor:
        return whole.batch(resolution, rows[np.asarray(indices, dtype=np.int64)])

    return TrainingData(len(rows), whole.fingerprint,
                        f"{whole.description}; {len(rows)} trained on, {len(held.files)} "
                        f"images of {len(held.patient_ids)} patients held out", batch,
                        held.summary())


def run_training(config: TrainConfig, run_dir: Path, *, device: str = "auto",
                 stop_at: int | None = None, progress: ProgressFn = no_progress,
                 cancel: threading.Event | None = None) -> TrainResult:
    """Data cache (first 5 % of the bar), then training (the rest). Under torchrun, rank 0
    builds the cache while the others wait, then every rank opens it."""
    context = distributed.current()
    if context.is_main:
        prepared = prepare_data(config, sub_progress(progress, 0.0, 0.05), cancel)
        held = resolve_held_out(config, run_dir)  # held_out.json before the first step
    distributed.barrier(context)
    if not context.is_main:
        prepared = prepare_data(config)  # complete by now: opens it
        # the record rank 0 wrote (or found): the same patients on every rank
        held = resolve_held_out(config, run_dir)
    data = apply_held_out(prepared, config, held)
    state = None
    if config.init_from:
        from cxrgan_desktop.engine.training.finetune import prepare_finetune

        config, state = prepare_finetune(config, resolve_device(device), rank=context.rank)
    return train(config, data, run_dir, device=device, state=state, stop_at=stop_at,
                 progress=sub_progress(progress, 0.05, 1.0), cancel=cancel)


def export_checkpoint(run_dir: Path, out: Path, name: str | None = None,
                      weights: str = "ema") -> Path:
    """Write the EMA (``weights="ema"``) or live (``"live"``) generator of a run's latest
    checkpoint as a native model.

    Why: a run takes days; users want to sample (or run LCO on) the model as it stands, at
    the resolution it has reached, without stopping the run. The checkpoint is read with
    ``weights_only=True``; the model records how many images it had seen. The live weights
    are for comparison: with a fixed decay of 0.999 the EMA kept 0.999^n of a new layer's
    initial weights after n steps, so a short run's EMA was noise; the EMA horizon now ramps
    up with the images shown (``ema_rampup``), and a short run's EMA follows its live
    generator.
    """
    if weights not in ("ema", "live"):
        raise ValueError(f"weights must be 'ema' or 'live', got {weights!r}")
    import json

    import torch

    from cxrgan_desktop.engine.checkpoints import OutputAdapter, save_generator
    from cxrgan_desktop.engine.pggan import Generator, PGGANConfig
    from cxrgan_desktop.engine.training.state import CHECKPOINT_FORMAT

    path = Path(run_dir) / "checkpoints" / "latest.pt"
    if not path.is_file():
        raise ValueError(f"{run_dir}: no checkpoint yet (checkpoints/latest.pt); a run writes "
                         "one every checkpoint_every images and when it stops")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
        if data.get("format") != CHECKPOINT_FORMAT:
            raise ValueError("not a cxrgan-desktop training checkpoint")
        config = json.loads(data["config"])
        generator = Generator(PGGANConfig.from_json(data["architecture"]))
        generator.load_state_dict(data["G_ema" if weights == "ema" else "G"])
    except Exception as error:
        raise ValueError(f"{path}: cannot export ({error})") from error
    shown = int(data["images_shown"])
    held_out = _held_out_summary(Path(run_dir), config)
    return save_generator(
        out, generator.eval(), OutputAdapter(int(config.get("image_channels", 1)), "unit"),
        name=name or f"{config.get('name', 'run')}-{shown}",
        provenance={"exported_from_run": str(run_dir), "images_shown": shown,
                    "dataset_fingerprint": data.get("dataset_fingerprint", ""),
                    "seed": config.get("seed"), "config": config,
                    "weights": weights,
                    "note": f"mid-training export of the {weights} generator",
                    **({"held_out": held_out} if held_out else {})})


def _held_out_summary(run_dir: Path, config: dict) -> dict | None:
    """The hold-out an exported model's provenance carries (so that an audit of the model
    learns that real patients were kept out, and which list): from ``held_out.json`` when
    the run has one; a run configured with a hold-out but without a readable record is an
    error rather than a model that silently claims none."""
    from cxrgan_desktop.engine.training.holdout import HELD_OUT_JSON, read_held_out

    if (run_dir / HELD_OUT_JSON).exists() or float(config.get("hold_out_fraction", 0) or 0):
        return read_held_out(run_dir).summary()
    return None
