"""A memorisation-audit scene with known answers: phantom patients with follow-ups, split
into training patients and held-out patients, and a folder of a model's generates with
copies of training images planted among them, each kind of copy from a different patient.

Kinds (issue 23): an exact copy; copies with Gaussian noise (sigma 2 % of the range), another
window/level, a shift of 4 px, a 3 degree rotation, JPEG quality 75, a resize to half and
back; and another image of a training patient that was never trained on (a follow-up). The
transformations use scipy and Pillow, not the project's code, so the audit meets them as
foreign images.
"""

from __future__ import annotations

import csv
import io
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

KINDS = ("exact", "noise", "window_level", "shift", "rotation", "jpeg", "half_resize",
         "follow_up")


def _to_png16(path: Path, image: np.ndarray) -> None:
    Image.fromarray(np.round(np.clip(image, 0, 1) * 65535).astype(np.uint16)).save(path)


def _read(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im, dtype=np.float64) / (65535.0 if im.mode.startswith("I") else 255.0)


def transformed(kind: str, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``image`` [H, W] in [0, 1] after one of the pixel-level kinds."""
    size = image.shape[0]
    if kind == "noise":
        return np.clip(image + rng.normal(0.0, 0.02, image.shape), 0, 1)
    if kind == "window_level":  # a narrower window centred a little higher
        return np.clip((image - 0.55) / 0.8 + 0.5, 0, 1)
    if kind == "shift":
        return ndimage.shift(image, (4, 4), order=0, mode="nearest")
    if kind == "rotation":
        return np.clip(ndimage.rotate(image, 3.0, reshape=False, order=1, mode="nearest"), 0, 1)
    if kind == "half_resize":
        im = Image.fromarray(image.astype(np.float32), mode="F")
        small = im.resize((size // 2, size // 2), Image.BICUBIC)
        return np.clip(np.asarray(small.resize((size, size), Image.BICUBIC)), 0, 1)
    raise ValueError(kind)


@dataclass
class Scene:
    train_dir: Path
    labels_csv: Path
    held_dir: Path
    synthetic_dir: Path
    planted: dict[str, tuple[str, str, str]] = field(default_factory=dict)
    """synthetic file name -> (kind, training patient id, source file name)"""
    generated: list[str] = field(default_factory=list)


def _rows(labels: Path) -> tuple[list[str], list[dict[str, str]]]:
    with labels.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)


def _write_rows(path: Path, header: list[str], rows: list[dict[str, str]]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=header, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    path.write_text(buffer.getvalue(), encoding="utf-8")


def build_scene(root: Path, generates: np.ndarray, *, train_patients: int = 100,
                held_patients: int = 60, per_kind: int = 3, size: int = 64, seed: int = 5
                ) -> Scene:
    """Phantoms with 3 images per patient: the first ``train_patients`` patients' follow-ups
    0 and 1 are the training set (follow-up 2 is never trained on), the next
    ``held_patients`` patients are held out. ``generates`` [N, H, W] become the unplanted
    synthetic images; ``per_kind`` copies of each kind are planted, each of its own patient."""
    from cxrgan_desktop.tasks.phantom import CSV_NAME, write_phantoms

    everything = write_phantoms(root / "phantoms", n=3 * (train_patients + held_patients),
                                size=size, seed=seed, images_per_patient=3)
    header, rows = _rows(everything / CSV_NAME)
    patients = sorted({r["Patient ID"] for r in rows}, key=int)
    train_ids, held_ids = patients[:train_patients], patients[train_patients:]
    scene = Scene(root / "train", root / "train" / "Data_Entry_train.csv", root / "held_out",
                  root / "synthetic")
    for folder in (scene.train_dir, scene.held_dir, scene.synthetic_dir):
        folder.mkdir(parents=True)
    train_rows, held_rows, unseen = [], [], {}
    for r in rows:
        name, follow_up = r["Image Index"], int(r["Follow-up #"])
        if r["Patient ID"] in held_ids:
            shutil.copy2(everything / name, scene.held_dir / name)
            held_rows.append(r)
        elif follow_up < 2:
            shutil.copy2(everything / name, scene.train_dir / name)
            train_rows.append(r)
        else:
            unseen[r["Patient ID"]] = name
    _write_rows(scene.labels_csv, header, train_rows)
    _write_rows(scene.held_dir / "Data_Entry_held_out.csv", header, held_rows)

    for i, image in enumerate(generates):
        name = f"syn_{i:04d}.png"
        _to_png16(scene.synthetic_dir / name, image)
        scene.generated.append(name)
    rng = np.random.default_rng(seed)
    donors = [p for p in train_ids if p in unseen]
    order = rng.permutation(len(donors))
    donor = iter(donors[j] for j in order)
    count = len(scene.generated)
    for kind in KINDS:
        for _ in range(per_kind):
            patient = next(donor)
            source = f"{int(patient):08d}_000.png"
            name = f"syn_{count:04d}.{'jpg' if kind == 'jpeg' else 'png'}"
            count += 1
            target = scene.synthetic_dir / name
            if kind == "exact":
                shutil.copyfile(scene.train_dir / source, target)
            elif kind == "follow_up":
                source = unseen[patient]
                shutil.copyfile(everything / source, target)
            elif kind == "jpeg":
                pixels = _read(scene.train_dir / source)
                Image.fromarray(np.round(pixels * 255).astype(np.uint8)).save(
                    target, quality=75)
            else:
                _to_png16(target, transformed(kind, _read(scene.train_dir / source), rng))
            scene.planted[name] = (kind, patient, source)
    return scene


def recall(report, scene: Scene, space: str | None = None) -> dict[str, tuple[int, int]]:
    """Per kind (found, planted): flagged (in ``space``, or in any space) with the nearest
    training image of the right patient; and ``"false_flags"``: (flagged, unplanted)."""
    out = {kind: [0, 0] for kind in KINDS}
    false = [0, 0]
    for row in report.rows:
        if space is None:
            flagged = row.flagged
            right = any(m.patient == scene.planted.get(row.synthetic_file, ("", ""))[1]
                        for m in row.matches.values() if m.flagged)
        else:
            flagged = row.matches[space].flagged
            right = row.matches[space].patient == scene.planted.get(
                row.synthetic_file, ("", ""))[1]
        if row.synthetic_file in scene.planted:
            kind = scene.planted[row.synthetic_file][0]
            out[kind][1] += 1
            out[kind][0] += int(flagged and right)
        else:
            false[1] += 1
            false[0] += int(flagged)
    result = {k: (v[0], v[1]) for k, v in out.items()}
    result["false_flags"] = (false[0], false[1])
    return result
