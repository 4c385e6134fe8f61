"""Deterministic random weights in the FID Inception layout, for tests and reference data.

The published weights cannot be fetched in CI, so the tests run the network on weights drawn
from numpy's PCG64 (stable across numpy versions and platforms) with He-scaled convolutions
and mild batch-norm statistics, which keep activations finite through all 94 layers. The
layout comes from the specification in ``shared/reference/fid_inception.md`` as encoded in
``LAYOUT`` below (written out independently of ``cxrgan_desktop.metrics.inception``), so
that a test comparing the two catches a layer the implementation gets wrong.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

# (name, in, out, kernel h, kernel w) for every BasicConv2d, from the specification
_A = [("branch1x1", None, 64, 1, 1), ("branch5x5_1", None, 48, 1, 1),
      ("branch5x5_2", 48, 64, 5, 5), ("branch3x3dbl_1", None, 64, 1, 1),
      ("branch3x3dbl_2", 64, 96, 3, 3), ("branch3x3dbl_3", 96, 96, 3, 3)]
_B = [("branch3x3", None, 384, 3, 3), ("branch3x3dbl_1", None, 64, 1, 1),
      ("branch3x3dbl_2", 64, 96, 3, 3), ("branch3x3dbl_3", 96, 96, 3, 3)]
_D = [("branch3x3_1", None, 192, 1, 1), ("branch3x3_2", 192, 320, 3, 3),
      ("branch7x7x3_1", None, 192, 1, 1), ("branch7x7x3_2", 192, 192, 1, 7),
      ("branch7x7x3_3", 192, 192, 7, 1), ("branch7x7x3_4", 192, 192, 3, 3)]
_E = [("branch1x1", None, 320, 1, 1), ("branch3x3_1", None, 384, 1, 1),
      ("branch3x3_2a", 384, 384, 1, 3), ("branch3x3_2b", 384, 384, 3, 1),
      ("branch3x3dbl_1", None, 448, 1, 1), ("branch3x3dbl_2", 448, 384, 3, 3),
      ("branch3x3dbl_3a", 384, 384, 1, 3), ("branch3x3dbl_3b", 384, 384, 3, 1),
      ("branch_pool", None, 192, 1, 1)]


def _c(c7: int) -> list:
    return [("branch1x1", None, 192, 1, 1), ("branch7x7_1", None, c7, 1, 1),
            ("branch7x7_2", c7, c7, 1, 7), ("branch7x7_3", c7, 192, 7, 1),
            ("branch7x7dbl_1", None, c7, 1, 1), ("branch7x7dbl_2", c7, c7, 7, 1),
            ("branch7x7dbl_3", c7, c7, 1, 7), ("branch7x7dbl_4", c7, c7, 7, 1),
            ("branch7x7dbl_5", c7, 192, 1, 7), ("branch_pool", None, 192, 1, 1)]


def layout() -> list[tuple[str, int, int, int, int]]:
    convs = [("Conv2d_1a_3x3", 3, 32, 3, 3), ("Conv2d_2a_3x3", 32, 32, 3, 3),
             ("Conv2d_2b_3x3", 32, 64, 3, 3), ("Conv2d_3b_1x1", 64, 80, 1, 1),
             ("Conv2d_4a_3x3", 80, 192, 3, 3)]
    blocks = [("Mixed_5b", 192, [*_A, ("branch_pool", None, 32, 1, 1)]),
              ("Mixed_5c", 256, [*_A, ("branch_pool", None, 64, 1, 1)]),
              ("Mixed_5d", 288, [*_A, ("branch_pool", None, 64, 1, 1)]),
              ("Mixed_6a", 288, _B), ("Mixed_6b", 768, _c(128)), ("Mixed_6c", 768, _c(160)),
              ("Mixed_6d", 768, _c(160)), ("Mixed_6e", 768, _c(192)), ("Mixed_7a", 768, _D),
              ("Mixed_7b", 1280, _E), ("Mixed_7c", 2048, _E)]
    for block, block_in, layers in blocks:
        for name, cin, cout, kh, kw in layers:
            convs.append((f"{block}.{name}", block_in if cin is None else cin, cout, kh, kw))
    return convs


def random_state(seed: int = 0) -> dict[str, torch.Tensor]:
    rng = np.random.default_rng(seed)
    state: dict[str, torch.Tensor] = {}

    def put(key: str, array: np.ndarray) -> None:
        state[key] = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))

    for name, cin, cout, kh, kw in layout():
        fan_in = cin * kh * kw
        put(f"{name}.conv.weight", rng.standard_normal((cout, cin, kh, kw)) * np.sqrt(2 / fan_in))
        put(f"{name}.bn.weight", rng.uniform(0.8, 1.2, cout))
        put(f"{name}.bn.bias", rng.uniform(-0.1, 0.1, cout))
        put(f"{name}.bn.running_mean", rng.uniform(-0.05, 0.05, cout))
        put(f"{name}.bn.running_var", rng.uniform(0.8, 1.5, cout))
    put("fc.weight", rng.standard_normal((1008, 2048)) * 0.01)
    put("fc.bias", np.zeros(1008))
    return state


def reference_inputs() -> torch.Tensor:
    """Two 299 px network inputs in [-1, 1] with structure at the borders (where padding
    handling shows) and in the middle."""
    rng = np.random.default_rng(7)
    y, x = np.mgrid[0:299, 0:299] / 298.0
    smooth = 0.5 + 0.4 * np.sin(6 * x) * np.cos(4 * y)
    images = np.stack([smooth, rng.uniform(0, 1, (299, 299))])
    grey = torch.from_numpy(images.astype(np.float32))[:, None] * 2 - 1
    return grey.expand(-1, 3, -1, -1).contiguous()


def write_weights(folder: Path, seed: int = 0) -> Path:
    path = folder / f"fid_inception_random_{seed}.pth"
    torch.save(random_state(seed), path)
    return path
