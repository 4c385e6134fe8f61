"""Fine-tuning: start from any generator file the application loads (the paper's included).

The architecture comes from the file, training runs at the model's own resolution (no
growth), the discriminator is the file's when it has one (the paper's training checkpoint
does) and otherwise a fresh one that trains alone for ``d_warmup_images`` first, so that the
generator is not pushed around by a critic that knows nothing yet. ``freeze_below`` keeps the
generator's layers that work below that resolution fixed (coarse anatomy stays, texture
adapts).
"""

from __future__ import annotations

import dataclasses
import logging

import torch

from cxrgan_desktop.engine.checkpoints import load_generator
from cxrgan_desktop.engine.checkpoints.native import mismatches_with
from cxrgan_desktop.engine.pggan import Discriminator, Generator
from cxrgan_desktop.engine.training.config import TrainConfig
from cxrgan_desktop.engine.training.state import TrainingState

log = logging.getLogger(__name__)


def freeze_low_resolutions(G: Generator, below: int) -> list[str]:
    """Stop gradients for layers that produce resolutions under ``below``; returns their names."""
    frozen = []
    if below > 4:
        for name, module in (("latent_fc", G.latent_fc), ("init_conv", G.init_conv)):
            module.requires_grad_(False)
            frozen.append(name)
    for index, block in enumerate(G.blocks):
        if 4 * 2 ** (index + 1) < below:
            block.requires_grad_(False)
            frozen.append(f"blocks.{index}")
    return frozen


def prepare_finetune(config: TrainConfig, device: torch.device,
                     rank: int = 0) -> tuple[TrainConfig, TrainingState]:
    """The effective config (architecture from the file) and a state ready to train."""
    model = load_generator(config.init_from)  # raises CheckpointError with a clear message
    arch = model.config
    effective = dataclasses.replace(config, latent_size=arch.latent_size,
                                    channels=arch.channels, image_channels=arch.image_channels,
                                    mbstd_group_size=arch.mbstd_group_size)
    G = model.generator.train().requires_grad_(True)
    G.set_depth(arch.max_depth)
    D = Discriminator(arch)
    if model.discriminator_state:
        problems = mismatches_with(D, model.discriminator_state)
        if problems:
            raise ValueError(f"{config.init_from}: its discriminator does not fit the "
                             f"generator's architecture: {'; '.join(problems[:5])}")
        D.load_state_dict(model.discriminator_state, strict=False)
        effective = dataclasses.replace(effective, d_warmup_images=0)
        log.info("fine-tuning with the file's discriminator")
    else:
        log.info("no discriminator in %s: a fresh one trains alone for %d images first",
                 config.init_from, effective.d_warmup_images)
    frozen = freeze_low_resolutions(G, config.freeze_below)
    if frozen:
        log.info("frozen generator layers: %s", ", ".join(frozen))
    return effective, TrainingState.create(effective, device, G=G, D=D, rank=rank)
