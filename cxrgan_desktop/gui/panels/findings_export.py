"""Frame-set exports of the Findings tab: the job functions (run in the window's job slot)
and where their start and end latents came from (path.json, the DICOM series)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cxrgan_desktop.gui.panels.findings_work import TORCH_LOCK

if TYPE_CHECKING:
    from cxrgan_desktop.gui.panels.findings_work import Prepared, Subject


def latent_source(subject: Subject, folder: Path, name: str = "start_latent.npy") -> Any:
    """Where a path's start (or end) latent came from, for path.json and the DICOM series:
    the seed and index of a plain generate, the projection's latent file (derived from a
    radiograph), or else the latent itself written beside the frames as ``name``."""
    from cxrgan_desktop.core.fileio import atomic_writer
    from cxrgan_desktop.tasks.latent_frames import LatentSource

    details = subject.entry.details
    if details.get("latents_file"):
        return LatentSource(latents_file=Path(details["latents_file"]), row=0,
                            note=subject.title, derived_from=details.get("derived_from"))
    if "seed" in details and "lco" not in details:
        return LatentSource(seed=int(details["seed"]), index=int(details["index"]))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    with atomic_writer(path) as handle:
        np.save(handle, subject.latent[None].astype(np.float32), allow_pickle=False)
    return LatentSource(latents_file=path, row=0, note=f"the latent of {subject.title}")


def shift_export_job(state: Prepared, finding: str, lambdas: np.ndarray, folder: Path,
                     overwrite: bool):
    """``fn(progress, cancel)``: :func:`~cxrgan_desktop.tasks.latent_frames.shift_to_folder`
    of the explored latent at its image's psi (recomputed there, so the files stand on their
    own)."""

    def job(progress, cancel):
        from cxrgan_desktop.tasks.latent_frames import shift_to_folder

        source = latent_source(state.subject, folder)
        with TORCH_LOCK:
            return shift_to_folder(state.model, state.classifier, finding,
                                   state.subject.latent, lambdas, folder, source=source,
                                   device=state.device, truncation=state.subject.truncation,
                                   overwrite=overwrite,
                                   progress=progress, cancel=cancel)

    return job


def morph_export_job(state: Prepared, end: Subject, frames: int, folder: Path,
                     overwrite: bool):
    """``fn(progress, cancel)``: the morph from the explored latent to ``end``'s through
    :func:`~cxrgan_desktop.tasks.latent_frames.interpolate_to_folder`, at the explored
    image's psi (as the morph on screen)."""

    def job(progress, cancel):
        from cxrgan_desktop.tasks.latent_frames import interpolate_to_folder

        source = latent_source(state.subject, folder)
        end_source = latent_source(end, folder, "end_latent.npy")
        with TORCH_LOCK:
            return interpolate_to_folder(state.model, state.subject.latent, end.latent,
                                         frames, folder, source=source, end=end_source,
                                         classifier=state.classifier, device=state.device,
                                         truncation=state.subject.truncation,
                                         overwrite=overwrite, progress=progress,
                                         cancel=cancel)

    return job
