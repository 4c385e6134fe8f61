"""Images -> Inception pool features: the preprocessing FID depends on, done in batches.

Features are extracted in float32 with TF32 switched off on CUDA, so that a GPU and a CPU
give the same statistics to float32 precision.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from cxrgan_desktop.core.jobs import ProgressFn, check_cancel, no_progress
from cxrgan_desktop.metrics.fid_settings import Preprocessing
from cxrgan_desktop.metrics.inception import FEATURE_DIM, fold_batch_norm


def resize_batch(images: torch.Tensor, preprocessing: Preprocessing) -> torch.Tensor:
    """[N, 1, H, W] in [0, 1] -> [N, 1, size, size] by the chosen mode (grey stays one channel
    until the last moment: a third of the work)."""
    size = (preprocessing.size, preprocessing.size)
    if tuple(images.shape[-2:]) == size:
        return images
    if preprocessing.resize == "antialias":
        out = F.interpolate(images, size=size, mode="bicubic", align_corners=False,
                            antialias=True)
        return out.clamp_(0.0, 1.0)
    return F.interpolate(images, size=size, mode="bilinear", align_corners=False)


def network_input(images: torch.Tensor, preprocessing: Preprocessing) -> torch.Tensor:
    """[N, 1, H, W] in [0, 1] -> [N, 3, 299, 299] in [-1, 1], what the network was fed."""
    if images.ndim != 4 or images.shape[1] != 1:
        raise ValueError(f"expected grey images [N, 1, H, W], got {tuple(images.shape)}")
    resized = resize_batch(images, preprocessing)
    return (resized * 2.0 - 1.0).expand(-1, 3, -1, -1)


@contextlib.contextmanager
def full_float32(device: torch.device) -> Iterator[None]:
    """Switch TF32 off for the duration (cuDNN allows it for convolutions by default)."""
    if device.type != "cuda":
        yield
        return
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


class FeatureExtractor:
    """The network on one device with one preprocessing; feeds it batches of images.

    The network is prepared for inference in place (batch norm folded): hand it a freshly
    loaded one.
    """

    feature_dim = FEATURE_DIM

    def __init__(self, net: torch.nn.Module, device: torch.device | str = "cpu",
                 preprocessing: Preprocessing | None = None) -> None:
        self.device = torch.device(device)
        self.preprocessing = preprocessing or Preprocessing()
        # channels-last is 1.6x faster than contiguous on CPU too (oneDNN), measured
        self.net = fold_batch_norm(net).to(self.device, memory_format=torch.channels_last)

    def batch_features(self, images: torch.Tensor) -> np.ndarray:
        """[N, 1, H, W] in [0, 1] (any device) -> float32 [N, 2048] on the host."""
        with torch.inference_mode(), full_float32(self.device):
            x = network_input(images.to(self.device, torch.float32), self.preprocessing)
            x = x.contiguous(memory_format=torch.channels_last)
            return self.net(x).float().cpu().numpy()

    def features(self, batches: Iterable[torch.Tensor], total: int,
                 progress: ProgressFn = no_progress,
                 cancel: threading.Event | None = None) -> np.ndarray:
        """Features of every image in ``batches``; ``total`` is the most there can be (a folder
        announces its files; unreadable ones are skipped, so fewer may arrive)."""
        out = np.empty((total, self.feature_dim), dtype=np.float32)
        done = 0
        for batch in batches:
            check_cancel(cancel)
            if done + len(batch) > total:
                raise ValueError(f"more images than announced ({total})")
            out[done:done + len(batch)] = self.batch_features(batch)
            done += len(batch)
            progress(done / max(total, 1), f"features: {done} of {total} images")
        return out[:done]
