"""Where FID's images come from: a folder of files, arrays in memory, or a generator.

Each source yields batches of grey images ``[B, 1, H, W]`` in [0, 1] and says what identifies
its content for the feature cache (None: do not cache). A generator source renders its N
seeded samples batch by batch and never writes a file.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from cxrgan_desktop.core.jobs import check_cancel
from cxrgan_desktop.imaging.readers import (
    ImageReadError,
    LoadedImage,
    Skipped,
    display_path,
    read_image,
    sort_image_files,
)


class ImageSource(Protocol):
    label: str
    skipped: list[str]

    @property
    def count(self) -> int:
        """How many images at most (files that fail to read are skipped)."""

    def batches(self, batch_size: int, cancel: threading.Event | None = None
                ) -> Iterator[torch.Tensor]: ...

    def cache_identity(self) -> dict[str, Any] | None: ...


def _stack_runs(images: Iterable[np.ndarray], batch_size: int) -> Iterator[torch.Tensor]:
    """Batches of up to ``batch_size`` consecutive images of one shape (a batch must be one
    tensor; a folder may mix sizes)."""
    run: list[np.ndarray] = []
    for image in images:
        if run and (len(run) == batch_size or image.shape != run[0].shape):
            yield torch.from_numpy(np.stack(run)[:, None])
            run = []
        run.append(image)
    if run:
        yield torch.from_numpy(np.stack(run)[:, None])


@dataclass
class ArraySource:
    """Images already in memory: float arrays [H, W] in [0, 1]."""

    images: Sequence[np.ndarray]
    label: str = "arrays"
    skipped: list[str] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.images)

    def batches(self, batch_size: int, cancel: threading.Event | None = None
                ) -> Iterator[torch.Tensor]:
        for batch in _stack_runs((np.asarray(a, np.float32) for a in self.images), batch_size):
            check_cancel(cancel)
            yield batch

    def cache_identity(self) -> None:
        return None


def _read_or_reason(path: Path) -> LoadedImage | str:
    try:
        return read_image(path)
    except ImageReadError as error:
        return str(error)
    except Exception as error:  # read_image promises ImageReadError; never stop a batch
        return f"{display_path(path)}: {type(error).__name__}: {error}"


@dataclass
class FolderSource:
    """Every readable image below the given files or folders (any format the viewer reads).

    Files are decoded on two threads, a bounded number ahead of the network, so reading and
    the network overlap without holding a whole folder in memory. ``skipped`` lists, after a
    pass, every file that should have been an image and gave none, with the reason (empty,
    a pipe, permission denied, damaged ...); ``ignored`` lists the rest of the folder that is
    not an image by design (a CSV or manifest beside the images, hidden files), so that
    every path below the inputs is accounted for without calling a CSV "unreadable".
    """

    inputs: Sequence[str | os.PathLike[str]]
    label: str = ""
    skipped: list[str] = field(default_factory=list)
    files: list[Path] = field(init=False)
    ignored: list[Skipped] = field(init=False)
    listing_skipped: list[Skipped] = field(init=False)
    read_files: list[Path] = field(init=False, default_factory=list)  # per image yielded

    def __post_init__(self) -> None:
        self.files, listed = sort_image_files(self.inputs)
        self.ignored = [item for item in listed if item.not_an_image]
        self.listing_skipped = [item for item in listed if not item.not_an_image]
        self.skipped = [str(item) for item in self.listing_skipped]
        if not self.label:
            self.label = ", ".join(display_path(p) for p in self.inputs)

    @property
    def count(self) -> int:
        return len(self.files)

    def _images(self, lookahead: int, cancel: threading.Event | None) -> Iterator[np.ndarray]:
        self.skipped = [str(item) for item in self.listing_skipped]
        self.read_files = []
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="fid-read") as pool:
            pending: deque = deque()
            files = iter(self.files)
            for path in files:
                pending.append(pool.submit(_read_or_reason, path))
                if len(pending) >= lookahead:
                    break
            queued: deque = deque(self.files[:len(pending)])
            while pending:
                check_cancel(cancel)
                result = pending.popleft().result()
                path = queued.popleft()
                next_file = next(files, None)
                if next_file is not None:
                    pending.append(pool.submit(_read_or_reason, next_file))
                    queued.append(next_file)
                if isinstance(result, str):
                    self.skipped.append(result)
                else:
                    self.read_files.append(path)
                    yield result.pixels

    def batches(self, batch_size: int, cancel: threading.Event | None = None
                ) -> Iterator[torch.Tensor]:
        yield from _stack_runs(self._images(2 * batch_size, cancel), batch_size)

    def cache_identity(self) -> dict[str, Any]:
        """Names, sizes and modification times: any file added, removed or rewritten makes a
        new identity (and so a cache miss)."""
        listing = []
        for path in self.files:
            try:
                stat = path.stat()
                size, mtime = stat.st_size, stat.st_mtime_ns
            except OSError:  # gone since the listing: the read will say so
                size, mtime = -1, -1
            listing.append([str(path.resolve()), size, mtime])
        return {"kind": "folder", "files": listing}


@dataclass
class GeneratorSource:
    """``n`` samples of a generator, latents from the seed exactly as ``cxrgan generate``
    draws them (so sample i is the image ``generate --seed S`` writes as number i)."""

    model: Any  # engine.checkpoints.LoadedGenerator
    n: int
    seed: int = 0
    device: torch.device | str = "cpu"
    label: str = ""
    skipped: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError("the number of samples must be at least 1")
        if not self.label:
            self.label = f"model:{self.model.name}"

    @property
    def count(self) -> int:
        return self.n

    def batches(self, batch_size: int, cancel: threading.Event | None = None
                ) -> Iterator[torch.Tensor]:
        from cxrgan_desktop.engine.render import Renderer

        yield from Renderer(self.model, self.device).render_seeded(self.seed, self.n,
                                                                   batch_size, cancel)

    def cache_identity(self) -> dict[str, Any]:
        return {"kind": "model", "sha256": self.model.sha256, "n": self.n, "seed": self.seed}
