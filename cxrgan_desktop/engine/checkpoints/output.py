"""Output adapters: from a network's raw output to the library's image convention.

Library images are [N, 1, H, W] in [0, 1]. The paper's generator emits three identical
channels trained on [0, 1] data; other models emit one channel, or [-1, 1] (Karras et al.).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Literal

import torch

from cxrgan_desktop.core.model_errors import NonFiniteOutputError


@dataclass(frozen=True)
class OutputAdapter:
    channels: int = 1
    value_range: Literal["unit", "signed"] = "unit"  # [0, 1] or [-1, 1]

    def __post_init__(self) -> None:
        if isinstance(self.channels, bool) or self.channels not in (1, 3):
            raise ValueError(f"output adapter: channels must be 1 or 3, got {self.channels}")
        if self.value_range not in ("unit", "signed"):
            raise ValueError(f"output adapter: value_range must be 'unit' or 'signed', "
                             f"got {self.value_range!r}")

    def apply(self, raw: torch.Tensor) -> torch.Tensor:
        """[N, channels, H, W] raw -> [N, 1, H, W] in [0, 1]: rescale, clamp, average channels.

        Raw output with NaN or infinity raises :class:`NonFiniteOutputError` (``indices``:
        the images of the batch affected): the clamp would otherwise turn infinities into
        black or white and NaN into pixels a PNG writer stores as 0, an image that looks like a
        result. Every consumer (generate, LCO, the study builder, FID) goes through here."""
        if raw.ndim != 4 or raw.shape[1] != self.channels:
            raise ValueError(f"expected [N, {self.channels}, H, W], got {tuple(raw.shape)}")
        finite = torch.isfinite(raw.detach()).flatten(1).all(dim=1)
        if not bool(finite.all()):
            bad = [int(i) for i in torch.nonzero(~finite).flatten()]
            raise NonFiniteOutputError(
                "generator", f"the generator produced non-finite pixels (NaN or infinity) for "
                f"image(s) {bad} of this batch; its weights may be damaged", bad)
        image = (raw + 1.0) * 0.5 if self.value_range == "signed" else raw
        return image.clamp(0.0, 1.0).mean(dim=1, keepdim=True)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> OutputAdapter:
        return cls(**json.loads(text))


PAPER_ADAPTER = OutputAdapter(channels=3, value_range="unit")
