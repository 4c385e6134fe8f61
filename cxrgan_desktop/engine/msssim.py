"""SSIM and multi-scale SSIM in torch, differentiable, for images in [0, 1].

Single-scale SSIM is Wang et al. (IEEE TIP 2004) as everyone reports it: an 11-tap Gaussian
window with sigma 1.5, K1 = 0.01, K2 = 0.03, dynamic range L = 1, population (not sample)
variances, averaged over the windows that lie wholly inside the image ("valid" filtering,
which is what the reference MATLAB code and scikit-image's ``gaussian_weights=True`` with
its border crop compute).

MS-SSIM is Wang, Simoncelli and Bovik (Asilomar 2003): contrast-structure terms at each
scale, luminance only at the coarsest, 2x2 mean down-sampling between scales, and the
published weights (0.0448, 0.2856, 0.3001, 0.2363, 0.1333). Five scales need an image of
at least 16 x 11 = 176 px for the 11-px window to fit at the coarsest scale; a generator
at 64 px allows three (64, 32, 16; 8 px is smaller than the window). We keep the standard
window and use as many scales as fit (at most five), with the first weights renormalised to
sum to 1, rather than shrinking the window: the finest scales then keep the meaning SSIM has
everywhere else, and what is lost is only the coarsest (whole-image) structure, which the
pixel term of a loss already covers. An image smaller than the window (4 or 8 px) gets the
largest odd window that fits, with the same sigma.

A contrast-structure mean can be negative for anti-correlated images; raised to a
fractional weight it would be NaN, so each per-scale value is floored at ``FLOOR`` before
the product (as pytorch-msssim's ReLU does, but with a positive floor so the gradient stays
finite).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

K1, K2 = 0.01, 0.03
WINDOW_SIZE = 11
SIGMA = 1.5
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
FLOOR = 1e-6


def window_for(size: int, window_size: int = WINDOW_SIZE) -> int:
    """The window used on a ``size``-px image: the standard one, or the largest odd one that
    fits."""
    if size < 1:
        raise ValueError(f"image side must be positive, got {size}")
    window = min(window_size, size)
    return window if window % 2 else window - 1


def gaussian_window(size: int = WINDOW_SIZE, sigma: float = SIGMA,
                    dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The 1-D normalised Gaussian taps (the 2-D window is their outer product)."""
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    taps = torch.exp(-(x * x) / (2 * sigma * sigma))
    return (taps / taps.sum()).to(dtype)


def ms_ssim_scales(size: int, window_size: int = WINDOW_SIZE) -> int:
    """How many scales fit: the coarsest (size / 2^(m-1)) must hold the window; 1 to 5."""
    scales = 1
    while scales < len(MS_SSIM_WEIGHTS) and size >> scales >= window_size:
        scales += 1
    return scales


def _blur(x: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    """Separable valid filtering of [N, C, H, W] with the Gaussian taps, per channel."""
    channels = x.shape[1]
    k = taps.numel()
    horizontal = taps.view(1, 1, 1, k).expand(channels, 1, 1, k)
    vertical = taps.view(1, 1, k, 1).expand(channels, 1, k, 1)
    return F.conv2d(F.conv2d(x, horizontal, groups=channels), vertical, groups=channels)


def _check(x: torch.Tensor, y: torch.Tensor) -> None:
    if x.shape != y.shape or x.ndim != 4:
        raise ValueError(f"expected two [N, C, H, W] tensors of one shape, got "
                         f"{tuple(x.shape)} and {tuple(y.shape)}")


def ssim_terms(x: torch.Tensor, y: torch.Tensor, window_size: int = WINDOW_SIZE,
               sigma: float = SIGMA) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image: (mean SSIM, mean contrast-structure term), each ``[N]``, data range 1."""
    _check(x, y)
    window = window_for(min(x.shape[-2:]), window_size)
    taps = gaussian_window(window, sigma, x.dtype).to(x.device)
    c1, c2 = K1 ** 2, K2 ** 2
    mu_x, mu_y = _blur(x, taps), _blur(y, taps)
    var_x = _blur(x * x, taps) - mu_x * mu_x
    var_y = _blur(y * y, taps) - mu_y * mu_y
    cov = _blur(x * y, taps) - mu_x * mu_y
    cs_map = (2 * cov + c2) / (var_x + var_y + c2)
    luminance = (2 * mu_x * mu_y + c1) / (mu_x * mu_x + mu_y * mu_y + c1)
    return (luminance * cs_map).flatten(1).mean(1), cs_map.flatten(1).mean(1)


def ssim(x: torch.Tensor, y: torch.Tensor, window_size: int = WINDOW_SIZE,
         sigma: float = SIGMA) -> torch.Tensor:
    """Single-scale SSIM per image, ``[N]`` (channels averaged), images in [0, 1]."""
    return ssim_terms(x, y, window_size, sigma)[0]


def ms_ssim(x: torch.Tensor, y: torch.Tensor, scales: int | None = None,
            window_size: int = WINDOW_SIZE, sigma: float = SIGMA) -> torch.Tensor:
    """Multi-scale SSIM per image, ``[N]``; ``scales`` default: as many as fit (see module)."""
    _check(x, y)
    side = min(x.shape[-2:])
    fit = ms_ssim_scales(side, window_size)
    scales = fit if scales is None else scales
    if not 1 <= scales <= fit:
        raise ValueError(f"{scales} scales do not fit a {side}-px image with a "
                         f"{window_size}-px window (at most {fit})")
    weights = torch.tensor(MS_SSIM_WEIGHTS[:scales], dtype=x.dtype, device=x.device)
    weights = weights / weights.sum()
    values = []
    for scale in range(scales):
        whole, cs = ssim_terms(x, y, window_size, sigma)
        values.append(whole if scale == scales - 1 else cs)
        if scale < scales - 1:
            x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
    stacked = torch.stack(values).clamp_min(FLOOR)  # [scales, N]
    return torch.prod(stacked ** weights.view(-1, 1), dim=0)
