"""Planted-copy recall and false-flag rate of the memorisation audit, on phantom patients.

The scene (``tests/reference/planted_copies.py``): phantom patients with 3 images each; the
first ``--train-patients`` patients' follow-ups 0 and 1 are the training folder (follow-up 2
is never trained on), the next ``--held-patients`` patients are the held-out calibration set.
The synthetic folder holds ``--generates`` images of the bundled demo model plus
``--per-kind`` planted copies of each kind (exact, noise 2 %, window/level, 4 px shift, 3
degree rotation, JPEG 75, half resize and back, and a training patient's follow-up never
trained on), each of a different training patient. A re-identification model is trained on
the training folder (``cxrgan reid train`` with ``--reid-epochs``), then ``cxrgan audit`` runs
with pixels and reid at the default alpha (0.1 %).

Prints the recall per kind (flagged, with the nearest training image of the right patient)
per space and for the audit as a whole, the false-flag rate on the unplanted generates, the
re-identification model's held-out verification AUROC and precision@1, and the times; then
the same as one JSON object. Everything lives in a temporary folder (``--keep`` keeps it).

    OMP_NUM_THREADS=2 .venv/bin/python tests/benchmarks/audit_planted.py
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train-patients", type=int, default=200)
    parser.add_argument("--held-patients", type=int, default=150)
    parser.add_argument("--generates", type=int, default=500)
    parser.add_argument("--per-kind", type=int, default=10)
    parser.add_argument("--reid-epochs", type=int, default=30)
    parser.add_argument("--size", type=int, default=256,
                        help="phantom size in px (the copies' shift and rotation are in these "
                             "pixels; the audit works at its own smaller size)")
    parser.add_argument("--reid-size", type=int, default=128, help="re-identification input px")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--keep", type=Path, default=None, help="work in this folder and keep it")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    import torch

    torch.set_num_threads(args.threads)
    work = args.keep or Path(tempfile.mkdtemp(prefix="audit_planted_"))
    os.environ.setdefault("CXRGAN_CACHE_DIR", str(work / "cache"))
    os.environ.setdefault("CXRGAN_DATA_DIR", str(work / "data"))

    from cxrgan_desktop.engine.reid.training import ReidTrainConfig
    from cxrgan_desktop.engine.training.dataset import DatasetSpec
    from cxrgan_desktop.tasks.audit import AuditOptions, run_audit
    from cxrgan_desktop.tasks.reid import train_reid
    from tests.reference.planted_copies import KINDS, build_scene, recall
    from tests.test_audit import _generates

    times = {}
    start = time.perf_counter()
    scene = build_scene(work / "scene", _generates(args.generates),
                        train_patients=args.train_patients, held_patients=args.held_patients,
                        per_kind=args.per_kind, size=args.size)
    times["scene_s"] = time.perf_counter() - start
    start = time.perf_counter()
    reid_path = work / "reid.safetensors"
    report = train_reid(DatasetSpec(scene.train_dir, scene.labels_csv), reid_path,
                        ReidTrainConfig(epochs=args.reid_epochs, input_size=args.reid_size))
    times["reid_train_s"] = time.perf_counter() - start
    start = time.perf_counter()
    audit = run_audit(AuditOptions(
        train_dir=scene.train_dir, out_dir=work / "audit", synthetic=str(scene.synthetic_dir),
        held_out=scene.held_dir, labels_csv=scene.labels_csv, spaces=("pixels", "reid"),
        reid_model=str(reid_path)))
    times["audit_s"] = time.perf_counter() - start
    start = time.perf_counter()
    run_audit(AuditOptions(
        train_dir=scene.train_dir, out_dir=work / "audit_again",
        synthetic=str(scene.synthetic_dir), held_out=scene.held_dir,
        labels_csv=scene.labels_csv, spaces=("pixels", "reid"), reid_model=str(reid_path)))
    times["audit_rerun_s"] = time.perf_counter() - start

    tables = {"pixels": recall(audit, scene, "pixels"), "reid": recall(audit, scene, "reid"),
              "any": recall(audit, scene)}
    validation = report.validation.to_json()
    print(f"scene: {args.train_patients} training patients x 2 images, {args.held_patients} "
          f"held-out patients x 3, {args.generates} generates + {args.per_kind} per kind; "
          f"torch threads {args.threads}")
    print(f"reid (compact, {args.reid_size} px, {args.reid_epochs} epochs): held-out "
          "verification AUROC "
          f"{validation.get('verification_auroc')}, precision@1 "
          f"{validation.get('precision_at_1')}")
    for space, info in audit.summary["spaces"].items():
        print(f"{space}: threshold similarity {info['threshold_similarity']:.4f}, held-out "
              f"nearest similarity median {info['heldout_similarity']['median']:.4f}, max "
              f"{info['heldout_similarity']['max']:.4f}")
    print(f"{'kind':<14}{'pixels':>10}{'reid':>10}{'any':>10}")
    for kind in (*KINDS, "false_flags"):
        cells = [f"{tables[s][kind][0]}/{tables[s][kind][1]}" for s in ("pixels", "reid", "any")]
        print(f"{kind:<14}{cells[0]:>10}{cells[1]:>10}{cells[2]:>10}")
    print("recall at other alphas (held-out fraction <= alpha, nearest image of the right "
          "patient), and false flags among the generates:")
    alphas = (0.001, 0.01, 0.05)
    print(f"{'kind':<14}" + "".join(f"{s + ' ' + str(a):>16}" for s in ("pixels", "reid", "any")
                                   for a in alphas))
    curve = {}
    for kind in (*KINDS, "false_flags"):
        cells = []
        for space in ("pixels", "reid", "any"):
            for alpha in alphas:
                found, total = at_alpha(audit, scene, space, alpha, kind)
                curve[f"{kind}/{space}/{alpha}"] = [found, total]
                cells.append(f"{found}/{total}")
        print(f"{kind:<14}" + "".join(f"{c:>16}" for c in cells))
    print("times: " + ", ".join(f"{k} {v:.1f}" for k, v in times.items()))
    print(json.dumps({"recall": tables, "curve": curve, "size": args.size,
                      "reid_size": args.reid_size, "reid_validation": validation, "times": times,
                      "thresholds": {s: i["threshold_similarity"]
                                     for s, i in audit.summary["spaces"].items()}},
                     indent=1))


def at_alpha(audit, scene, space: str, alpha: float, kind: str) -> tuple[int, int]:
    """(found, total) for a planted kind, or (flagged, unplanted) for "false_flags", had the
    audit used ``alpha``: a row counts when its held-out fraction is at most alpha (in
    ``space``, or in either space for "any") with the nearest image of the right patient."""
    spaces = ("pixels", "reid") if space == "any" else (space,)
    found = total = 0
    for row in audit.rows:
        planted = scene.planted.get(row.synthetic_file)
        if (planted is None) != (kind == "false_flags") or (planted and planted[0] != kind):
            continue
        total += 1
        hits = [s for s in spaces if row.matches[s].heldout_fraction <= alpha + 1e-12
                and (planted is None or row.matches[s].patient == planted[1])]
        found += bool(hits)
    return found, total


if __name__ == "__main__":
    main()
