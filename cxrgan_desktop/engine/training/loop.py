"""The progressive training job: ``train(config, data, run_dir, progress, cancel)``.

One run folder holds everything about a run (STYLE 7): ``config.json``, ``manifest.json``
(software version, seed, dataset fingerprint, device), ``log.jsonl`` (losses, gradient
penalty, images/s, resolution, alpha), ``samples/`` (fixed-latent grids of the EMA generator),
``checkpoints/latest.pt`` (written atomically every ``checkpoint_every`` images and on stop)
and, at the end, ``final.safetensors`` (the EMA generator and the discriminator, native
format). Calling ``train`` again on the same folder resumes from the checkpoint.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from cxrgan_desktop import __version__
from cxrgan_desktop.core.fileio import atomic_write_json, atomic_write_text
from cxrgan_desktop.core.jobs import Cancelled, ProgressFn, no_progress
from cxrgan_desktop.engine.checkpoints import OutputAdapter, save_generator
from cxrgan_desktop.engine.devices import describe_device, resolve_device
from cxrgan_desktop.engine.training import distributed
from cxrgan_desktop.engine.training.batches import next_indices
from cxrgan_desktop.engine.training.config import TrainConfig, phase_at, total_images
from cxrgan_desktop.engine.training.losses import discriminator_loss, generator_loss
from cxrgan_desktop.engine.training.state import TrainingState
from cxrgan_desktop.engine.training.threads import cpu_threads
from cxrgan_desktop.imaging.png16 import write_png8

log = logging.getLogger(__name__)


@dataclass
class TrainingData:
    """What the loop needs from a dataset: a size, an identity and batches by index."""

    count: int
    fingerprint: str
    description: str
    batch: Callable[[int, Sequence[int]], torch.Tensor]  # (resolution, indices) -> [B,1,R,R]
    held_out: dict | None = None  # HeldOut.summary() when patients are kept out of training


@dataclass
class TrainResult:
    run_dir: Path
    images_shown: int
    finished: bool
    final_model: Path | None = None
    log_rows: int = 0
    last: dict = field(default_factory=dict)


def _fade_real(real: torch.Tensor, alpha: float) -> torch.Tensor:
    """During a fade-in the generator blends its previous resolution, so the real images
    shown to D are blended the same way (Karras et al.)."""
    low = F.interpolate(F.avg_pool2d(real, 2), scale_factor=2.0, mode="nearest")
    return torch.lerp(low, real, alpha)


def _save_grid(path: Path, images: torch.Tensor) -> None:
    """[N, C, R, R] in [0, 1] -> one 8-bit PNG grid, at least 256 px per tile side."""
    n, _, r, _ = images.shape
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    scale = max(1, 256 // r)
    grid = np.zeros((rows * r * scale, cols * r * scale), np.uint8)
    tiles = images.mean(dim=1).clamp(0, 1).mul(255).round().byte().cpu().numpy()
    for i, tile in enumerate(tiles):
        tile = tile.repeat(scale, axis=0).repeat(scale, axis=1)
        y, x = (i // cols) * r * scale, (i % cols) * r * scale
        grid[y:y + r * scale, x:x + r * scale] = tile
    write_png8(path, grid)


class _Meter:
    """Averages of the logged quantities since the last log line."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.steps = 0
        self.images = 0
        self.started = time.monotonic()

    def add(self, images: int, **values: float) -> None:
        self.steps += 1
        self.images += images
        for key, value in values.items():
            self.sums[key] = self.sums.get(key, 0.0) + value

    def row(self) -> dict[str, float]:
        seconds = max(time.monotonic() - self.started, 1e-9)
        out = {k: v / max(self.steps, 1) for k, v in self.sums.items()}
        out["images_per_s"] = self.images / seconds
        return out


def train(config: TrainConfig, data: TrainingData, run_dir: str | Path, *,
          device: str = "auto", state: TrainingState | None = None, stop_at: int | None = None,
          progress: ProgressFn = no_progress, cancel: threading.Event | None = None
          ) -> TrainResult:
    """Train (or resume) until the schedule ends or ``stop_at`` images have been shown.

    ``state`` lets fine-tuning start from prepared networks. Raises :class:`Cancelled` after
    saving a checkpoint when ``cancel`` is set. Under torchrun every rank calls this; rank 0
    writes the run folder.
    """
    torch_device = resolve_device(device)
    local = int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)
    with cpu_threads(config, torch_device, local) as threads:
        return _train(config, data, Path(run_dir), torch_device, state, stop_at, progress,
                      cancel, threads)


def _train(config: TrainConfig, data: TrainingData, run: Path, torch_device: torch.device,
           state: TrainingState | None, stop_at: int | None, progress: ProgressFn,
           cancel: threading.Event | None, threads: tuple[int, str]) -> TrainResult:
    context = distributed.current()
    if context.is_main:
        (run / "samples").mkdir(parents=True, exist_ok=True)
    else:
        progress = no_progress
    checkpoint = run / "checkpoints" / "latest.pt"
    if state is None:
        state = TrainingState.create(config, torch_device, rank=context.rank)
    distributed.barrier(context)
    if checkpoint.exists():
        state.restore(checkpoint)
        if state.dataset_fingerprint and state.dataset_fingerprint != data.fingerprint:
            log.warning("resuming %s with a dataset that changed since the checkpoint", run)
        log.info("resumed %s at %d images", run, state.images_shown)
    state.dataset_fingerprint = data.fingerprint
    last_logged = _reconcile_log(run / "log.jsonl", state.images_shown) \
        if context.is_main else None
    if context.is_main:
        atomic_write_json(run / "config.json", config.to_dict())
        _write_manifest(run, config, data, torch_device, context.world, threads)
    G_train, D_train = distributed.wrap(state.G, context), distributed.wrap(state.D, context)

    end = min(total_images(config), stop_at) if stop_at else total_images(config)
    amp = config.mixed_precision and torch_device.type == "cuda"
    fixed_z = torch.randn(config.sample_count, config.latent_size,
                          generator=torch.Generator().manual_seed(config.seed + 1))
    meter, result = _Meter(), TrainResult(run, state.images_shown, finished=False,
                                          last=last_logged or {})
    started = time.monotonic() - state.elapsed_s
    G, D = state.G, state.D
    try:
        while state.images_shown < end:
            stopping = cancel is not None and cancel.is_set()
            if distributed.any_rank_stopping(stopping, context, torch_device):
                raise Cancelled("cancelled by the user")
            phase = phase_at(config, state.images_shown)
            for net in (G, D, state.G_ema):
                if net.current_depth != phase.depth:
                    net.set_depth(phase.depth)
                net.set_alpha(phase.alpha)
            batch = config.batch_sizes[phase.resolution]  # global, over all ranks
            if batch % context.world:
                raise ValueError(f"batch size {batch} at {phase.resolution} px does not divide "
                                 f"among {context.world} processes")
            indices, state.epoch, state.epoch_position = next_indices(
                config.seed, data.count, state.epoch, state.epoch_position,
                batch // context.world, context.rank, context.world)
            real = data.batch(phase.resolution, indices).to(torch_device)
            if G.config.image_channels == 3:
                real = real.expand(-1, 3, -1, -1)
            if phase.fading:
                real = _fade_real(real, phase.alpha)
            values = _step(state, G_train, D_train, real, amp,
                           warmup=state.images_shown < _warmup(config), batch=batch)
            state.images_shown += batch
            meter.add(batch, **values)
            crossed = _crossed(state.images_shown - batch, state.images_shown)
            if context.is_main and (crossed(config.log_every) or state.images_shown >= end):
                row = {"images": state.images_shown, "resolution": phase.resolution,
                       "alpha": round(phase.alpha, 6), "fading": phase.fading,
                       **meter.row(), "elapsed_s": time.monotonic() - started,
                       "threads": threads[0], "processes": context.world}
                with open(run / "log.jsonl", "a", encoding="utf-8") as handle:
                    handle.write(json.dumps(row) + "\n")
                result.log_rows += 1
                result.last = row
                meter = _Meter()
            if context.is_main and (crossed(config.sample_every) or state.images_shown >= end):
                _sample(state, fixed_z, torch_device, run)
            state.elapsed_s = time.monotonic() - started
            if crossed(config.checkpoint_every):
                state.save(checkpoint)
            progress(min(state.images_shown / end, 1.0), f"{phase.resolution}px "
                     f"{'fade ' + format(phase.alpha, '.2f') if phase.fading else 'stable'} "
                     f"{state.images_shown:,}/{end:,} images")
    except Cancelled:
        state.elapsed_s = time.monotonic() - started
        state.save(checkpoint)
        raise
    state.save(checkpoint)
    result.images_shown = state.images_shown
    if state.images_shown >= total_images(config):
        result.finished = True
        if context.is_main:
            result.final_model = _export(state, data, run)
    return result


def _reconcile_log(path: Path, images_shown: int) -> dict | None:
    """Make the log agree with the checkpoint a run resumes from, and return its last row.

    A run killed after logging but before its next checkpoint resumes from an earlier
    point and would log those images again: rows past the checkpoint are dropped (they
    are trained again), and so is a line torn by the kill. Rewritten atomically, and only
    when something changes."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return None
    kept, rows = [], []
    for line in lines:
        try:
            row = json.loads(line)
        except ValueError:
            continue  # torn by a kill mid-write
        if isinstance(row, dict) and isinstance(row.get("images"), int) \
                and row["images"] <= images_shown:
            kept.append(line)
            rows.append(row)
    if kept != lines:
        atomic_write_text(path, "".join(f"{line}\n" for line in kept))
    return rows[-1] if rows else None


def _warmup(config: TrainConfig) -> int:
    return config.d_warmup_images if config.init_from else 0


def _crossed(before: int, after: int) -> Callable[[int], bool]:
    return lambda every: before // every != after // every


def _step(state: TrainingState, G: torch.nn.Module, D: torch.nn.Module, real: torch.Tensor,
          amp: bool, warmup: bool, batch: int | None = None) -> dict[str, float]:
    """One D step and (after any warm-up) one G step, then the EMA update. ``G`` and ``D`` are
    the networks to run: the state's own, or their DDP wrappers; ``batch`` is the global
    batch (over all ranks; default: this rank's), which sets the EMA weight."""
    config = state.config
    device = real.device
    n = real.shape[0]
    autocast = torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp)
    z = torch.randn(n, config.latent_size, generator=state.rng).to(device)
    with torch.no_grad(), autocast:
        fake = G(z)
    D.requires_grad_(True)
    with autocast:
        d_loss = discriminator_loss(D, real, fake.float(), config.gp_lambda, config.drift,
                                    generator=state.rng)
    state.opt_D.zero_grad(set_to_none=True)
    d_loss.total.backward()
    state.opt_D.step()
    values = {"loss_d": float(d_loss.total.detach()), "wasserstein": d_loss.wasserstein,
              "gradient_penalty": d_loss.gradient_penalty, "drift": d_loss.drift}
    z = torch.randn(n, config.latent_size, generator=state.rng).to(device)
    if not warmup:
        D.requires_grad_(False)
        with autocast:
            g_loss = generator_loss(D, G(z).float())
        state.opt_G.zero_grad(set_to_none=True)
        g_loss.backward()
        state.opt_G.step()
        values["loss_g"] = float(g_loss.detach())
    state.update_ema(batch or n)
    return values


def _sample(state: TrainingState, fixed_z: torch.Tensor, device: torch.device, run: Path
            ) -> None:
    with torch.no_grad():
        images = state.G_ema(fixed_z.to(device)).float().clamp(0, 1)
    name = f"{state.images_shown:010d}.png"
    _save_grid(run / "samples" / name, images)
    _save_grid(run / "samples" / "latest.png", images)


def _write_manifest(run: Path, config: TrainConfig, data: TrainingData,
                    device: torch.device, processes: int, threads: tuple[int, str]) -> None:
    atomic_write_json(run / "manifest.json", {
        "software": {"name": "cxrgan-desktop", "version": __version__,
                     "torch": torch.__version__},
        "run": config.name, "seed": config.seed, "device": describe_device(device),
        "processes": processes, "threads_per_process": threads[0], "threads_why": threads[1],
        "dataset": {"fingerprint": data.fingerprint, "images": data.count,
                    "description": data.description},
        "total_images": total_images(config),
        **({"held_out": data.held_out} if data.held_out else {}),
        "updated": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    })


def _export(state: TrainingState, data: TrainingData, run: Path) -> Path:
    config = state.config
    return save_generator(
        run / "final.safetensors", state.G_ema, OutputAdapter(config.image_channels, "unit"),
        name=config.name, discriminator=state.D,
        provenance={"training_data": data.description, "dataset_fingerprint": data.fingerprint,
                    "images_shown": state.images_shown, "seed": config.seed,
                    "training_seconds": round(state.elapsed_s, 1),
                    "config": config.to_dict(),
                    **({"held_out": data.held_out} if data.held_out else {})})
