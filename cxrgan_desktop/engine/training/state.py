"""Everything a training run is, at one moment, and its atomic checkpoint.

The checkpoint is a plain torch file of tensors, numbers and strings, readable with
``torch.load(weights_only=True)``: the networks (G, D and the EMA generator), both Adam
states, images shown, the position in the data order, and the state of the one random
generator that draws latents, penalty mixing weights and the data order. Restoring all of it
continues a run exactly where it stopped, also in the middle of a fade-in.
"""

from __future__ import annotations

import copy
import io
import json
from dataclasses import dataclass
from pathlib import Path

import torch

from cxrgan_desktop.core.fileio import atomic_write_bytes
from cxrgan_desktop.engine.pggan import Discriminator, Generator
from cxrgan_desktop.engine.training import distributed
from cxrgan_desktop.engine.training.config import TrainConfig

CHECKPOINT_FORMAT = "cxrgan-desktop/pggan-training"
CHECKPOINT_VERSION = 1


@dataclass
class TrainingState:
    config: TrainConfig
    G: Generator
    D: Discriminator
    G_ema: Generator
    opt_G: torch.optim.Adam
    opt_D: torch.optim.Adam
    rng: torch.Generator  # CPU: every random draw of the loop comes from it
    images_shown: int = 0
    epoch: int = 0
    epoch_position: int = 0  # samples of the current epoch's order already used
    elapsed_s: float = 0.0
    dataset_fingerprint: str = ""

    @classmethod
    def create(cls, config: TrainConfig, device: torch.device,
               G: Generator | None = None, D: Discriminator | None = None,
               rank: int = 0) -> TrainingState:
        torch.manual_seed(config.seed)  # parameter initialisation
        arch = G.config if G is not None else config.architecture
        G = (G or Generator(arch, depth=0)).to(device)
        D = (D or Discriminator(arch, depth=0)).to(device)
        G_ema = copy.deepcopy(G).eval().requires_grad_(False)
        trainable = [p for p in G.parameters() if p.requires_grad]
        betas = (config.beta1, config.beta2)
        opt_G = torch.optim.Adam(trainable, lr=config.lr, betas=betas, eps=config.adam_eps)
        opt_D = torch.optim.Adam(D.parameters(), lr=config.lr, betas=betas, eps=config.adam_eps)
        rng = torch.Generator().manual_seed(config.seed + 7919 * rank)  # own draws per rank
        return cls(config, G, D, G_ema, opt_G, opt_D, rng)

    def update_ema(self, batch: int) -> None:
        """G_ema <- beta * G_ema + (1 - beta) * G after a step on ``batch`` images (global),
        beta from :meth:`TrainConfig.ema_beta` at the images shown before the step; buffers
        (growth state) copied."""
        beta = self.config.ema_beta(self.images_shown, batch)
        with torch.no_grad():
            for ema, live in zip(self.G_ema.parameters(), self.G.parameters(), strict=True):
                ema.lerp_(live, 1.0 - beta)
            for ema, live in zip(self.G_ema.buffers(), self.G.buffers(), strict=True):
                ema.copy_(live)

    def to_checkpoint(self) -> dict:
        return {
            "format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION,
            "config": json.dumps(self.config.to_dict(), sort_keys=True),
            "architecture": self.G.config.to_json(),
            "images_shown": self.images_shown, "epoch": self.epoch,
            "epoch_position": self.epoch_position, "elapsed_s": self.elapsed_s,
            "dataset_fingerprint": self.dataset_fingerprint,
            "G": self.G.state_dict(), "D": self.D.state_dict(), "G_ema": self.G_ema.state_dict(),
            "opt_G": self.opt_G.state_dict(), "opt_D": self.opt_D.state_dict(),
            "rng": self.rng.get_state(),
        }

    def save(self, path: Path) -> None:
        """Every rank calls this (their generators are gathered); rank 0 writes the file."""
        context = distributed.current()
        states = distributed.gather_states(self.rng.get_state(), context)
        if not context.is_main:
            return
        data = self.to_checkpoint()
        data["rng_all_ranks"] = states
        buffer = io.BytesIO()
        torch.save(data, buffer)
        atomic_write_bytes(path, buffer.getvalue())

    def restore(self, path: Path) -> None:
        """Load a checkpoint written by :meth:`save` into this (freshly created) state."""
        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:
            raise ValueError(f"{path}: not a readable training checkpoint ({error})") from error
        if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"{path}: not a cxrgan-desktop training checkpoint")
        if data["architecture"] != self.G.config.to_json():
            raise ValueError(f"{path}: the checkpoint's architecture {data['architecture']} "
                             f"differs from the configuration's {self.G.config.to_json()}")
        self.G.load_state_dict(data["G"])
        self.D.load_state_dict(data["D"])
        self.G_ema.load_state_dict(data["G_ema"])
        self.opt_G.load_state_dict(data["opt_G"])
        self.opt_D.load_state_dict(data["opt_D"])
        context = distributed.current()
        ranks = data.get("rng_all_ranks") or [data["rng"]]
        if len(ranks) != context.world:
            raise ValueError(f"{path}: written by {len(ranks)} process(es), resumed with "
                             f"{context.world}; resume with the same number to continue "
                             "exactly")
        self.rng.set_state(ranks[context.rank])
        self.images_shown = int(data["images_shown"])
        self.epoch, self.epoch_position = int(data["epoch"]), int(data["epoch_position"])
        self.elapsed_s = float(data["elapsed_s"])
        self.dataset_fingerprint = str(data["dataset_fingerprint"])
