"""Finding, downloading and verifying the FID Inception weights file.

No package ships the file (about 91 MB), so every FID tool fetches it at run time. We look in
a user-set path and in our cache first; otherwise we download from the published URL into a
temporary file beside the cache, check its length and the SHA-256 prefix that the torch.hub
naming convention puts in the file name (``...-6726825d.pth``), and only then rename it into
place. A machine without internet gets an error that names the URL, the expected file name
and the two ways to provide it (``cxrgan fid-weights --install FILE``, or "Locate file" in
the GUI).
"""

from __future__ import annotations

import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cxrgan_desktop.core import paths
from cxrgan_desktop.core.download import (
    DownloadDamaged,
    DownloadFailed,
    download_file,
    temporary_beside,
)
from cxrgan_desktop.core.fileio import sha256_file
from cxrgan_desktop.core.jobs import ProgressFn, no_progress

if TYPE_CHECKING:  # torch loads only when the network does: the GUI starts without it
    import torch



@dataclass(frozen=True)
class WeightsSpec:
    """A published weights file: its name, where it is published and its hash prefix."""

    file_name: str
    url: str
    sha256_prefix: str
    description: str


STANDARD = WeightsSpec(
    file_name="pt_inception-2015-12-05-6726825d.pth",
    url=("https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
         "pt_inception-2015-12-05-6726825d.pth"),
    sha256_prefix="6726825d",
    description="the FID Inception network (TensorFlow 2015-12-05 graph, pytorch-fid port)",
)


def standard_spec() -> WeightsSpec:
    """The spec in force; a function (not a default argument) so tests can substitute one."""
    return STANDARD


class WeightsError(Exception):
    """The weights file is missing, damaged, of the wrong content, or could not be fetched."""


class WeightsMissing(WeightsError):
    def __init__(self, spec: WeightsSpec, looked_in: list[Path], reason: str = "") -> None:
        self.spec = spec
        self.looked_in = looked_in
        where = ", ".join(str(p) for p in looked_in)
        super().__init__(
            f"{spec.description} is not on this machine{f' ({reason})' if reason else ''}. "
            f"Looked in: {where}. Download {spec.url} (file {spec.file_name}, about 91 MB) "
            f"and install it with 'cxrgan fid-weights --install {spec.file_name}' (or 'Locate "
            "file' in the FID panel), or run 'cxrgan fid-weights --download' on a machine with "
            "internet access.")


def weights_cache_dir() -> Path:
    return paths.cache_dir() / "weights"


def cached_path(spec: WeightsSpec | None = None) -> Path:
    return weights_cache_dir() / (spec or standard_spec()).file_name


def find_weights(user_path: str | os.PathLike[str] | None = None,
                 spec: WeightsSpec | None = None) -> Path | None:
    """The user's file (a file, or a folder holding the expected name), else the cached one.

    Only existence is checked here (cheap, for the GUI thread); :func:`verify_weights` checks
    content before use.
    """
    spec = spec or standard_spec()
    if user_path:
        user = Path(user_path).expanduser()
        if user.is_dir():
            user = user / spec.file_name
        if user.is_file():
            return user
    cached = cached_path(spec)
    return cached if cached.is_file() else None


def require_weights(user_path: str | os.PathLike[str] | None = None,
                    spec: WeightsSpec | None = None) -> Path:
    spec = spec or standard_spec()
    found = find_weights(user_path, spec)
    if found is None:
        looked = ([Path(user_path).expanduser()] if user_path else []) + [cached_path(spec)]
        raise WeightsMissing(spec, looked)
    return found


def verify_weights(path: Path, spec: WeightsSpec | None = None) -> str:
    """The file's SHA-256 if it starts with the spec's prefix; :class:`WeightsError` if not."""
    spec = spec or standard_spec()
    digest = sha256_file(path)
    if not digest.startswith(spec.sha256_prefix):
        raise WeightsError(
            f"{path} is not the published {spec.file_name}: its SHA-256 starts {digest[:8]}, "
            f"the published file's starts {spec.sha256_prefix}. The file is damaged or a "
            "different network; FID computed with it would not be comparable. Download it "
            f"again from {spec.url}.")
    return digest


def install_weights(source: str | os.PathLike[str], spec: WeightsSpec | None = None) -> Path:
    """Verify a file the user obtained elsewhere and copy it into the cache (atomically)."""
    spec = spec or standard_spec()
    source = Path(source).expanduser()
    if not source.is_file():
        raise WeightsError(f"{source}: no such file")
    verify_weights(source, spec)
    target = cached_path(spec)
    target.parent.mkdir(parents=True, exist_ok=True)
    with temporary_beside(target) as tmp:
        shutil.copyfile(source, tmp)
        os.replace(tmp, target)
    return target


def download_weights(spec: WeightsSpec | None = None, *, url: str | None = None,
                     timeout: float = 30.0, progress: ProgressFn = no_progress,
                     cancel: threading.Event | None = None) -> Path:
    """Fetch the file into the cache; nothing appears under the final name unless the whole
    file arrived and its hash prefix matches."""
    spec = spec or standard_spec()
    url = url or spec.url
    target = cached_path(spec)
    try:
        download_file(url, target, sha256_prefix=spec.sha256_prefix, label=spec.file_name,
                      timeout=timeout, progress=progress, cancel=cancel)
    except DownloadFailed as error:
        raise WeightsMissing(spec, [target], str(error)) from error
    except DownloadDamaged as error:
        raise WeightsError(str(error)) from error
    progress(1.0, f"installed {target}")
    return target


def read_weights_state(path: Path) -> dict[str, torch.Tensor]:
    """The file's tensors, read without running code (weights-only / restricted unpickler)."""
    from cxrgan_desktop.core.model_errors import CheckpointError
    from cxrgan_desktop.core.torch_files import read_torch_file

    try:
        state = read_torch_file(path)
    except CheckpointError as error:
        raise WeightsError(str(error)) from error
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise WeightsError(f"{path}: expected a state dict of tensors, found a "
                           f"{type(state).__name__}")
    return state


@dataclass
class LoadedInception:
    net: torch.nn.Module  # FIDInception
    path: Path
    sha256: str
    verified: bool = True  # False: the user allowed a file that is not the published one


def load_inception(user_path: str | os.PathLike[str] | None = None,
                   spec: WeightsSpec | None = None, verify: bool = True) -> LoadedInception:
    """Find, verify and strictly load the network (no download: see :func:`download_weights`).

    ``verify=False`` (``--allow-unverified-weights``) accepts a file whose SHA-256 is not the
    published one, for users whose verified copy was re-saved; the layout is still loaded
    strictly, and the result says the weights were not verified."""
    from cxrgan_desktop.metrics.inception import InceptionLayoutError, build_fid_inception

    spec = spec or standard_spec()
    path = require_weights(user_path, spec)
    digest = verify_weights(path, spec) if verify else sha256_file(path)
    try:
        net = build_fid_inception(read_weights_state(path))
    except InceptionLayoutError as error:
        raise WeightsError(f"{path}: {error}") from error
    return LoadedInception(net, path, digest, verified=digest.startswith(spec.sha256_prefix))
