"""The figures on the bundled demo models' cards, measured on held-out phantoms.

    OMP_NUM_THREADS=1 python scripts/demo_model_card.py --generator G.safetensors \
        --classifier C.safetensors --heldout heldout/ --train phantoms/ --json card.json

Prints (and writes) JSON:
- the classifier's AUROC per finding on the held-out phantoms' exact labels;
- label agreement: per finding, the share of images the classifier calls positive
  (p >= 0.5) on N generated samples, on the held-out phantoms, and the held-out phantoms'
  true prevalence; a generator that draws the phantom's findings at their real rates scores
  close to the classifier's own reading of real phantoms;
- a Fréchet distance on the classifier's pooled penultimate features between the generated
  samples and the held-out phantoms, with the same distance between as many training
  phantoms and the held-out ones as the floor two real sets reach (Inception's weights,
  and so FID and KID, are not assumed: this runs offline).
Not clinical data: phantoms only.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from cxrgan_desktop.engine.checkpoints import load_generator
from cxrgan_desktop.engine.classifier.data import labelled_images
from cxrgan_desktop.engine.classifier.files import load_classifier
from cxrgan_desktop.engine.classifier.training import evaluate
from cxrgan_desktop.engine.render import Renderer
from cxrgan_desktop.engine.training.dataset import DatasetSpec
from cxrgan_desktop.labels.chestxray14 import FINDINGS
from cxrgan_desktop.metrics.classifier_distance import (
    classifier_features,
    classifier_frechet_distance,
)

CSV = "Data_Entry_phantom.csv"


def _batches(data, count: int, size: int = 100):
    for start in range(0, count, size):
        yield data.batch(np.arange(start, min(start + size, count)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--generator", type=Path, required=True)
    parser.add_argument("--classifier", type=Path, required=True)
    parser.add_argument("--heldout", type=Path, required=True, help="phantoms the models never saw")
    parser.add_argument("--train", type=Path, help="training phantoms: the real-vs-real floor")
    parser.add_argument("--n", type=int, default=500, help="generated samples")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    started = time.perf_counter()
    torch.manual_seed(0)

    loaded = load_classifier(args.classifier)
    classifier = loaded.classifier.eval()
    names = tuple(n for n in classifier.labels if n in FINDINGS)
    columns = [classifier.label_index(n) for n in names]
    heldout = labelled_images(DatasetSpec(args.heldout, args.heldout / CSV), names,
                              classifier.input_size)
    device = torch.device("cpu")
    report = evaluate(classifier, heldout, np.arange(len(heldout)), device)
    real_called = (report.probabilities >= 0.5).mean(axis=0)
    truth = heldout.targets.mean(axis=0)

    model = load_generator(args.generator)
    renderer = Renderer(model, "cpu")
    generated = torch.cat(list(renderer.render_seeded(args.seed, args.n, 50)))
    with torch.no_grad():
        probabilities = torch.cat([classifier.probabilities(b) for b in generated.split(100)])
    fake_p = probabilities.numpy()[:, columns]
    fake_called = (fake_p >= 0.5).mean(axis=0)

    real_features = classifier_features(classifier, _batches(heldout, len(heldout)))
    fake_features = classifier_features(classifier, generated.split(100))
    out = {
        "classifier": {"name": loaded.name, "sha256": loaded.sha256},
        "generator": {"name": model.name, "sha256": model.sha256,
                      "resolution": model.resolution},
        "heldout_images": len(heldout),
        # null where the held-out set has no positive (or no negative) image of a finding
        "classifier_auroc": {r.label: (round(r.auroc, 4) if r.auroc is not None
                                       and np.isfinite(r.auroc) else None)
                             for r in report.labels},
        "classifier_mean_auroc": round(float(np.nanmean(
            [r.auroc for r in report.labels if r.auroc is not None])), 4),
        "label_agreement": {
            "generated_samples": args.n, "seed": args.seed, "threshold": 0.5,
            "per_finding": {n: {"generated_called": round(float(fake_called[j]), 4),
                                "heldout_called": round(float(real_called[j]), 4),
                                "heldout_true": round(float(truth[j]), 4),
                                "generated_mean_p": round(float(fake_p[:, j].mean()), 4),
                                "heldout_mean_p": round(float(
                                    report.probabilities[:, j].mean()), 4)}
                            for j, n in enumerate(names)},
            "mean_abs_difference_generated_vs_heldout_called": round(float(
                np.abs(fake_called - real_called).mean()), 4)},
        "feature_frechet_distance": {
            "features": f"{loaded.name}'s pooled penultimate DenseNet features "
                        f"({real_features.shape[1]}-d, images at {classifier.input_size} px); "
                        "not Inception's, so not comparable with any published FID",
            "generated_vs_heldout": round(classifier_frechet_distance(fake_features,
                                                                      real_features), 3),
        },
    }
    if args.train is not None:
        train = labelled_images(DatasetSpec(args.train, args.train / CSV), names,
                                classifier.input_size)
        count = min(len(train), len(heldout))
        train_features = classifier_features(classifier, _batches(train, count))
        out["feature_frechet_distance"]["training_vs_heldout_phantoms"] = round(
            classifier_frechet_distance(train_features, real_features), 3)
        out["feature_frechet_distance"]["training_phantoms_used"] = count
    out["seconds"] = round(time.perf_counter() - started, 1)
    text = json.dumps(out, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
