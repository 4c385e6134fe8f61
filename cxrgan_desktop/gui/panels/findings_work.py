"""The Findings tab's work in workers, without widgets: preparing an image (its slider
directions and start render), rendering slider positions, each finding's path for the plot,
a morph's path.

One lock is held around torch work: the slider loaders and the exports run in different
threads and share one model, and LCO's ``frozen`` (which the engine uses) saves and restores
the weights' flags, which two threads at once would scramble.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cxrgan_desktop.gui.viewer.gallery import GalleryEntry

TORCH_LOCK = threading.Lock()  # see the module: one torch user of the shared model at a time
AUTO_PREVIEW_FULL_UP_TO = 256  # px: below this a full render is quick (2.4 ms at 64 px)


@dataclass(frozen=True)
class Subject:
    """A gallery image with a known latent: where sliders and morphs start."""

    entry: GalleryEntry
    latent: np.ndarray  # [latent_size] float32
    model_path: str
    truncation: float = 1.0  # the image's psi: its sliders, paths and exports use it too

    @property
    def title(self) -> str:
        return self.entry.title


def subject_of(entry: GalleryEntry | None) -> Subject | None:
    """The entry as a start for sliders, or None when its latent is unknown (an opened
    radiograph: project it first)."""
    if entry is None:
        return None
    latent, model_path = entry.details.get("latent"), entry.details.get("model_path")
    if latent is None or not model_path:
        return None
    return Subject(entry, np.asarray(latent, dtype=np.float32).reshape(-1), str(model_path),
                   float(entry.details.get("truncation", 1.0)))


@dataclass
class Prepared:
    """One image made ready for its sliders (built in a worker)."""

    subject: Subject
    classifier_path: str
    model: Any  # LoadedGenerator
    classifier: Any  # LoadedClassifier
    directions: dict[str, np.ndarray] = field(repr=False)
    start: np.ndarray = field(repr=False)  # [R, R] float32: the start latent rendered
    renderer: Any = field(repr=False)
    preview_renderer: Any = field(default=None, repr=False)  # None: previews at full size
    device: str = "cpu"

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self.classifier.labels)


def wants_half_preview(preview: str, resolution: int) -> bool:
    return preview == "half" or (preview == "auto" and resolution > AUTO_PREVIEW_FULL_UP_TO)


def prepare(subject: Subject, classifier_path: str, load_model: Callable[[str], Any],
            preview: str, device: str = "auto") -> Prepared:
    """Load the model and classifier, take every finding's direction at the start latent,
    render the start, all at the image's truncation psi (so the start is the gallery image
    itself). Raises ValueError for a latent of another model's size, or psi 0 (every latent
    is the mean image there: nothing to slide)."""
    from cxrgan_desktop.engine.classifier.files import load_classifier
    from cxrgan_desktop.engine.devices import resolve_device
    from cxrgan_desktop.engine.latent_shift import finding_directions, preview_model
    from cxrgan_desktop.engine.render import Renderer

    model = load_model(subject.model_path)
    classifier = load_classifier(classifier_path)
    if subject.latent.size != model.config.latent_size:
        raise ValueError(f"{subject.title}: its latent has {subject.latent.size} values, the "
                         f"model {model.name} takes {model.config.latent_size}")
    where = str(resolve_device(device))
    psi = subject.truncation
    with TORCH_LOCK:
        directions = finding_directions(model, classifier, classifier.labels, subject.latent,
                                        device=where, truncation=psi)
        renderer = Renderer(model, where, truncation=psi)
        start = renderer.render(subject.latent[None])[0, 0].numpy()
        small = None
        if wants_half_preview(preview, model.resolution):
            try:
                small = Renderer(preview_model(model, 1), where, truncation=psi)
            except ValueError:  # a 4 px model, or one in a fade-in: preview at full size
                small = None
    return Prepared(subject, classifier_path, model, classifier, directions, start, renderer,
                    small, where)


def enlarge(small: np.ndarray, size: int) -> np.ndarray:
    """A preview on the full image's grid, each pixel repeated (blocky on purpose: it says
    'preview', and the window and zoom stay those of the full image)."""
    factor = size // small.shape[0]
    return np.kron(small, np.ones((factor, factor), dtype=small.dtype)) if factor > 1 else small


def render_shift(prepared: Prepared, lambdas: dict[str, float], quick: bool) -> np.ndarray:
    """The start latent turned by every slider's angle (degrees), rendered: [R, R] in [0, 1];
    ``quick`` with a half-size preview renderer: that stage, enlarged to R."""
    from cxrgan_desktop.engine.latent_shift import combine_shifts

    z = combine_shifts(prepared.subject.latent, prepared.directions, lambdas)
    with TORCH_LOCK:
        if quick and prepared.preview_renderer is not None:
            small = prepared.preview_renderer.render(z[None])[0, 0].numpy()
            return enlarge(small, prepared.model.resolution)
        return prepared.renderer.render(z[None])[0, 0].numpy()


def path_lambdas(range_deg: float, frames: int) -> np.ndarray:
    """Evenly spaced angles from -range to +range (an odd count includes 0)."""
    return np.linspace(-range_deg, range_deg, frames)


def shift_curve(prepared: Prepared, finding: str, range_deg: float, frames: int) -> Any:
    """The finding's single-direction path over the slider range, every label's
    probability on each frame (the plot's data)."""
    from cxrgan_desktop.engine.latent_shift import shift_path

    with TORCH_LOCK:
        return shift_path(prepared.model, prepared.classifier, finding,
                          prepared.subject.latent, path_lambdas(range_deg, frames),
                          device=prepared.device, truncation=prepared.subject.truncation)


def morph_path(prepared: Prepared, end: np.ndarray, frames: int) -> Any:
    """Spherical interpolation from the start latent to ``end``, read by the classifier, at
    the start image's psi (the end's own psi may differ: the controller says so)."""
    from cxrgan_desktop.engine.interpolation import interpolation_path

    with TORCH_LOCK:
        return interpolation_path(prepared.model, prepared.subject.latent, end, frames,
                                  prepared.classifier, device=prepared.device,
                                  truncation=prepared.subject.truncation)
