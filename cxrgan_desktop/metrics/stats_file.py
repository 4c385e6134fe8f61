"""FID statistics files: ``.npz`` with pytorch-fid's layout (``mu``, ``sigma``) plus ours.

pytorch-fid reads ``mu`` and ``sigma`` and ignores the rest, so our files work there; we add
``n``, the ``settings`` (JSON text) that produced them and, optionally, the ``features`` that
KID needs. A pytorch-fid file has no settings: it loads with settings None, and a comparison
says that its preprocessing is unknown. Loading never unpickles.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cxrgan_desktop.core.fileio import atomic_writer
from cxrgan_desktop.metrics.inception import FEATURE_DIM


class StatsFileError(Exception):
    """A statistics file that cannot be used; the message names the file and the problem."""


@dataclass
class FeatureStats:
    mu: np.ndarray  # float64 [D]
    sigma: np.ndarray  # float64 [D, D]
    n: int | None  # None: not recorded (a pytorch-fid file)
    settings: dict[str, Any] | None  # None: not recorded
    features: np.ndarray | None = None  # float32 [N, D], for KID


def save_stats(path: str | os.PathLike[str], stats: FeatureStats,
               with_features: bool = False) -> None:
    arrays: dict[str, np.ndarray] = {"mu": np.asarray(stats.mu, np.float64),
                                     "sigma": np.asarray(stats.sigma, np.float64)}
    if stats.n is not None:
        arrays["n"] = np.array(stats.n, dtype=np.int64)
    if stats.settings is not None:
        arrays["settings"] = np.array(json.dumps(stats.settings, sort_keys=True))
    if with_features and stats.features is not None:
        arrays["features"] = np.asarray(stats.features, np.float32)
    with atomic_writer(path, "wb") as handle:
        np.savez(handle, **arrays)


def load_stats(path: str | os.PathLike[str]) -> FeatureStats:
    file = Path(path)
    try:
        with np.load(file, allow_pickle=False) as data:
            names = set(data.files)
            if not {"mu", "sigma"} <= names:
                raise StatsFileError(f"{file}: not FID statistics: it holds {sorted(names)}, "
                                     "expected 'mu' and 'sigma' (pytorch-fid layout)")
            mu = np.asarray(data["mu"], np.float64)
            sigma = np.asarray(data["sigma"], np.float64)
            n = int(data["n"]) if "n" in names else None
            settings = json.loads(str(data["settings"])) if "settings" in names else None
            features = np.asarray(data["features"], np.float32) if "features" in names else None
    except StatsFileError:
        raise
    except FileNotFoundError as error:
        raise StatsFileError(f"{file}: no such file") from error
    except Exception as error:  # zip, npy or JSON damage: all one problem for the user
        raise StatsFileError(f"{file}: not a readable .npz statistics file ({error})") from error
    # a file that records its settings says its feature size (another feature network); a
    # file that does not (pytorch-fid's) must be Inception's
    dim = int((settings or {}).get("feature_dim", FEATURE_DIM))
    if mu.shape != (dim,) or sigma.shape != (dim, dim):
        raise StatsFileError(f"{file}: statistics of shape mu {list(mu.shape)}, sigma "
                             f"{list(sigma.shape)}; expected [{dim}] and [{dim}, {dim}]"
                             + (" (FID Inception statistics)" if dim == FEATURE_DIM else ""))
    if features is not None and (features.ndim != 2 or features.shape[1] != dim):
        raise StatsFileError(f"{file}: features of shape {list(features.shape)} do not match "
                             f"the statistics' {dim} dimensions")
    if not (np.all(np.isfinite(mu)) and np.all(np.isfinite(sigma))):
        raise StatsFileError(f"{file}: the statistics contain NaN or infinite values")
    return FeatureStats(mu, sigma, n, settings, features)
