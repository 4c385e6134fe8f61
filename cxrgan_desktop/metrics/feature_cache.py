"""Inception features cached per dataset, so a second FID against the same real set costs
only the new side.

The key is everything the features depend on: the source's identity (for a folder, every
file's path, size and modification time; for a generator, its weights hash, N and seed), the
preprocessing, and the SHA-256 of the network weights. The full key is stored inside the file
and compared on load, so a hash collision or a hand-copied file can never serve wrong
features. A damaged cache file is a miss, never an error.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cxrgan_desktop.core import paths
from cxrgan_desktop.core.fileio import atomic_writer

log = logging.getLogger(__name__)

CACHE_VERSION = 2  # 2: the source's name per feature row (patient-wise splits)


def default_cache_dir() -> Path:
    return paths.cache_dir() / "fid_features"


def cache_key(identity: dict[str, Any], preprocessing: dict[str, Any],
              weights_sha256: str) -> str:
    """The canonical JSON text of everything the features depend on."""
    return json.dumps({"version": CACHE_VERSION, "source": identity,
                       "preprocessing": preprocessing, "weights_sha256": weights_sha256},
                      sort_keys=True, separators=(",", ":"))


@dataclass
class CachedFeatures:
    features: np.ndarray  # float32 [N, D]
    skipped: list[str]
    names: list[str] | None = None  # the file behind each row, where the source has files


class FeatureCache:
    def __init__(self, folder: Path | None = None) -> None:
        self.folder = folder or default_cache_dir()

    def path_for(self, key: str) -> Path:
        return self.folder / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.npz"

    def load(self, key: str) -> CachedFeatures | None:
        path = self.path_for(key)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                if str(data["key"]) != key:
                    return None
                names = json.loads(str(data["names"])) if "names" in data.files else None
                return CachedFeatures(np.asarray(data["features"], np.float32),
                                      json.loads(str(data["skipped"])), names)
        except Exception as error:  # damaged or foreign file: recompute, and say so in the log
            log.warning("ignoring unreadable feature cache %s: %s", path, error)
            return None

    def store(self, key: str, features: np.ndarray, skipped: list[str],
              names: list[str] | None = None) -> Path:
        path = self.path_for(key)
        extra = {} if names is None else {"names": np.array(json.dumps(names))}
        with atomic_writer(path, "wb") as handle:
            np.savez(handle, features=np.asarray(features, np.float32), key=np.array(key),
                     skipped=np.array(json.dumps(skipped)), **extra)
        return path
