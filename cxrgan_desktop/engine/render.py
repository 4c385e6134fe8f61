"""Latent vectors -> library images, on a chosen device and precision."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence

import numpy as np
import torch

from cxrgan_desktop.core.jobs import check_cancel
from cxrgan_desktop.core.model_errors import NonFiniteOutputError
from cxrgan_desktop.core.names import printable
from cxrgan_desktop.engine.checkpoints import LoadedGenerator
from cxrgan_desktop.engine.inference import InferenceGenerator
from cxrgan_desktop.engine.truncation import check_psi, truncated

PRECISIONS = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def latents_for_seed(seed: int, count: int, latent_size: int, start: int = 0) -> np.ndarray:
    """N(0, I) latents where vector i depends only on (seed, start + i).

    Independence from batch size, device and count means image 7 of seed 42 is the same image
    whether 8 or 800 were asked for, and a run can be extended without re-rendering.
    """
    out = np.empty((count, latent_size), dtype=np.float32)
    for row in range(count):
        out[row] = np.random.default_rng([seed, start + row]).standard_normal(latent_size)
    return out


class Renderer:
    """Holds a model prepared for fast inference on one device.

    A model stored mid fade-in is rendered by its training module (the fast path needs a
    finished resolution). ``truncation`` is psi of :mod:`cxrgan_desktop.engine.truncation`,
    applied to every image this renderer makes; psi = 1 (the default) is today's network,
    untouched.
    """

    def __init__(self, model: LoadedGenerator, device: torch.device | str = "cpu",
                 precision: str = "float32", truncation: float = 1.0) -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {sorted(PRECISIONS)}, got {precision!r}")
        self.model = model
        self.device = torch.device(device)
        self.dtype = PRECISIONS[precision]
        self.truncation = check_psi(truncation)
        net = model.generator if model.generator.fading else InferenceGenerator(model.generator)
        net = truncated(net.to(self.device, self.dtype), model, self.truncation)
        self.net = net.to(self.device, self.dtype).eval()

    @property
    def latent_size(self) -> int:
        return self.model.config.latent_size

    def render_seeded(self, seed: int, count: int, batch_size: int,
                      cancel: threading.Event | None = None) -> Iterator[torch.Tensor]:
        """Samples 0..count-1 of ``seed``, ``batch_size`` at a time (the images
        ``cxrgan generate --seed`` writes), for consumers that never write files."""
        for start in range(0, count, batch_size):
            check_cancel(cancel)
            batch = min(batch_size, count - start)
            yield self.render(latents_for_seed(seed, batch, self.latent_size, start=start),
                              indices=range(start, start + batch), seed=seed)

    def render(self, latents: np.ndarray | torch.Tensor, *,
               indices: Sequence[int] | None = None, seed: int | None = None) -> torch.Tensor:
        """[N, latent_size] -> [N, 1, R, R] float32 in [0, 1], on the CPU.

        Raises :class:`NonFiniteOutputError` naming the model, the images (``indices``: the
        image number of each row, default 0..N-1; ``seed`` when given) and the likely cause
        when the network's output holds NaN or infinity, so that no caller writes such a
        batch as black images."""
        z = torch.as_tensor(np.asarray(latents, dtype=np.float32))
        if z.ndim != 2 or z.shape[1] != self.latent_size:
            raise ValueError(f"latents must be [N, {self.latent_size}], got {tuple(z.shape)}")
        with torch.inference_mode():
            raw = self.net(z.to(self.device, self.dtype))
            try:
                return self.model.adapter.apply(raw.float()).cpu()
            except NonFiniteOutputError as error:
                raise self._non_finite(error, indices, seed) from None

    def _non_finite(self, error: NonFiniteOutputError, rows: Sequence[int] | None,
                    seed: int | None) -> NonFiniteOutputError:
        indices = [int(rows[i]) if rows is not None else i for i in error.indices]
        which = f"seed {seed} index {indices}" if seed is not None else f"image(s) {indices}"
        cause = "its weights may be damaged"
        if self.dtype != torch.float32:
            precision = str(self.dtype).removeprefix("torch.")
            cause = (f"{precision} arithmetic may have overflowed (try --precision float32), "
                     f"or {cause}")
        return NonFiniteOutputError(
            self.model.path, f"the model {printable(self.model.name)} produced non-finite pixels "
            f"(NaN or infinity) for {which}; {cause}. Nothing was written for these images.",
            indices)
