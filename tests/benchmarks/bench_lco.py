"""Latent class optimisation: cost per accepted sample against rejection sampling, and the
optimisation step at 1024 px.

Part 1 (needs a trained generator and classifier, e.g. a phantom model): for a common and a
rare combination of findings (requested present, the rest don't care), classifier
evaluations and wall time per accepted sample with LCO, against rejection sampling (draw z at
random, keep the samples the classifier accepts) timed in the same run, and their ratios.
One LCO evaluation includes a backward pass; rejection sampling's forward runs on the
rendering path without gradients. Rejection sampling stops at ``--budget`` evaluations; with
no sample accepted by then its cost is reported as more than the budget.

Part 2 (random weights, the paper's 1024 px generator and a 256 px DenseNet-121): one LCO
step (generator forward, resize, classifier forward, backward to z) timed for
- ``frozen``: the training module with its weights frozen, gradients to z only
  (autograd.grad): the baseline, what a careful user of plain PyTorch writes;
- ``frozen_fused``: frozen, and the generator as the rendering path's folded network with
  each up-sampling + 3x3 convolution fused into one transposed convolution (what LCO runs);
- with ``--with-naive``, also ``naive``: the training module with its weights requiring
  gradients, ``loss.backward()`` (weight gradients computed and thrown away);
the variants taken in turn at every step after one warm-up each, ``--steps`` (7) times: the
median, min, max and interquartile range of each, and the headline, frozen + fused against
frozen, as the ratio of the medians and per step pair (median, min, max). Whether the
speed-ups change results: the z gradients compared (frozen and fused; naive and frozen),
and a few full LCO steps run with the training module and with the fused network from the
same start, their final z and images compared.

    python tests/benchmarks/bench_lco.py --model G.safetensors --classifier C.safetensors \\
        [--common Effusion] [--rare Cardiomegaly,Pneumothorax] [--accept 16]
    python tests/benchmarks/bench_lco.py --skip-acceptance [--steps 7] [--with-naive]  # part 2
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from cxrgan_desktop.core import runtime  # noqa: E402

runtime.configure_before_torch()

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from cxrgan_desktop.engine.checkpoints import LoadedGenerator, load_generator  # noqa: E402
from cxrgan_desktop.engine.checkpoints.output import PAPER_ADAPTER  # noqa: E402
from cxrgan_desktop.engine.classifier.files import load_classifier  # noqa: E402
from cxrgan_desktop.engine.classifier.model import ClassifierSpec, PathologyClassifier  # noqa: E402
from cxrgan_desktop.engine.lco import (  # noqa: E402
    DifferentiableGenerator,
    LCORequest,
    LCOSettings,
    LCOTarget,
    frozen,
    optimise,
    start_latent,
)
from cxrgan_desktop.engine.pggan import PAPER_CHANNELS, Generator, PGGANConfig  # noqa: E402
from cxrgan_desktop.engine.render import Renderer  # noqa: E402
from cxrgan_desktop.labels.chestxray14 import FINDINGS  # noqa: E402


def acceptance(model: LoadedGenerator, classifier: PathologyClassifier, present: tuple[str, ...],
               accept: int, budget: int, settings: LCOSettings, seed: int,
               threshold: float = 0.5) -> dict:
    target = LCOTarget(present=present, threshold=threshold)
    labels = classifier.labels
    start = time.perf_counter()
    results = optimise(model, classifier, [LCORequest(k, target, seed) for k in range(accept)],
                       settings)
    lco_s = time.perf_counter() - start
    accepted = sum(r.success for r in results)
    lco_evals = sum(r.evaluations for r in results)

    renderer = Renderer(model, "cpu")
    rng = np.random.default_rng([seed, 999])
    found, evals, batch = 0, 0, 32
    start = time.perf_counter()
    while found < accept and evals < budget:
        z = rng.standard_normal((batch, model.config.latent_size)).astype(np.float32)
        with torch.no_grad():
            probs = torch.sigmoid(classifier(renderer.render(z))).numpy()
        evals += batch
        found += sum(target.passes(dict(zip(labels, row.tolist(), strict=True)))
                     for row in probs)
    rejection_s = time.perf_counter() - start
    lco_per = lco_evals / max(accepted, 1)
    rej_per = evals / found if found else None
    return {
        "target": target.describe(),
        "lco": {"samples": accept, "accepted": accepted, "evaluations": lco_evals,
                "evaluations_per_accepted": round(lco_per, 2),
                "seconds_per_accepted": round(lco_s / max(accepted, 1), 4)},
        "rejection": {"accepted": found, "evaluations": evals,
                      "acceptance_rate": round(found / evals, 5),
                      "evaluations_per_accepted": None if rej_per is None else round(rej_per, 2),
                      "seconds_per_accepted": None if not found else round(rejection_s / found,
                                                                           4),
                      "stopped_at_budget": found < accept},
        "ratio_evaluations": None if rej_per is None else round(rej_per / lco_per, 3),
        "ratio_evaluations_lower_bound": None if found else round(budget / lco_per, 3),
        "ratio_seconds": None if not found else round(
            (rejection_s / found) / (lco_s / max(accepted, 1)), 3),
    }


def paper_models(seed: int = 0) -> tuple[LoadedGenerator, PathologyClassifier]:
    torch.manual_seed(seed)
    generator = Generator(PGGANConfig(latent_size=512, channels=PAPER_CHANNELS,
                                      image_channels=3)).eval()
    model = LoadedGenerator(generator, PAPER_ADAPTER, Path("random"), "0" * 64, "random-1024",
                            "native")
    classifier = PathologyClassifier(ClassifierSpec("densenet121", FINDINGS, 256)).eval()
    return model, classifier


def _loss(classifier, images, target_rows):
    logits = classifier(images)
    return F.binary_cross_entropy_with_logits(logits, target_rows, reduction="sum")


def spread(seconds: list[float], batch: int) -> dict[str, float]:
    """Median and spread of per-step times (the machine may be shared: medians, not means)."""
    values = np.asarray(seconds)
    q25, median, q75 = np.percentile(values, [25, 50, 75])
    return {"seconds_per_step": round(float(median), 3),
            "seconds_per_image_step": round(float(median) / batch, 3),
            "min_s": round(float(values.min()), 3), "max_s": round(float(values.max()), 3),
            "iqr_s": [round(float(q25), 3), round(float(q75), 3)],
            "all_s": [round(float(v), 3) for v in values]}


def step_times(model, classifier, batch: int, steps: int, with_naive: bool) -> dict:
    """Time the variants in turn at every step (interleaved, so that a change of load on a
    shared machine falls on all of them alike) after one warm-up each; the headline is
    frozen against frozen + fused, the ratio per step pair and of the medians."""
    z0 = torch.from_numpy(np.stack([start_latent(0, k, 0, 512) for k in range(batch)]))
    wanted = torch.zeros(batch, len(FINDINGS))
    wanted[:, 1] = 1.0
    grads = {}

    def naive():
        z = z0.clone().requires_grad_(True)
        generator = DifferentiableGenerator(model, fused=False)
        loss = _loss(classifier, generator(z), wanted)
        loss.backward()
        grads["naive"] = z.grad.detach().clone()
        model.generator.zero_grad(set_to_none=True)
        classifier.zero_grad(set_to_none=True)

    def make_frozen(fused):
        generator = DifferentiableGenerator(model, fused=fused)

        def run():
            z = z0.clone().requires_grad_(True)
            with frozen(generator, classifier):
                (g,) = torch.autograd.grad(_loss(classifier, generator(z), wanted), z)
            grads["fused" if fused else "frozen"] = g
        return run

    variants = {"frozen": make_frozen(False), "frozen_fused": make_frozen(True)}
    if with_naive:
        variants["naive"] = naive
    times: dict[str, list[float]] = {name: [] for name in variants}
    for fn in variants.values():
        fn()  # warm-up
    for _ in range(steps):
        for name, fn in variants.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    out: dict = {name: spread(values, batch) for name, values in times.items()}
    pairs = np.asarray(times["frozen"]) / np.asarray(times["frozen_fused"])
    out["headline_frozen_fused_vs_frozen"] = {
        "speedup_of_medians": round(out["frozen"]["seconds_per_step"]
                                    / out["frozen_fused"]["seconds_per_step"], 3),
        "speedup_per_step_median": round(float(np.median(pairs)), 3),
        "speedup_per_step_min_max": [round(float(pairs.min()), 3),
                                     round(float(pairs.max()), 3)]}
    out["z_gradient_frozen_vs_fused_max_rel_diff"] = float(
        (grads["frozen"] - grads["fused"]).abs().max() / grads["frozen"].abs().max())
    if with_naive:
        base = out["naive"]["seconds_per_step"]
        for name in ("frozen", "frozen_fused"):
            out[name]["speedup_vs_naive"] = round(base / out[name]["seconds_per_step"], 3)
        out["z_gradient_naive_vs_frozen_max_abs_diff"] = float(
            (grads["naive"] - grads["frozen"]).abs().max())
    return out


def same_results(model, classifier, steps: int, samples: int) -> dict:
    """A few LCO steps from the same start with the training module and the fused network."""
    target = LCOTarget(present=("Cardiomegaly",), threshold=0.999999)
    settings = LCOSettings(steps=steps, restarts=0, batch_size=samples)
    requests = [LCORequest(k, target, 0) for k in range(samples)]
    plain = optimise(model, classifier, requests, settings, fused=False)
    fused = optimise(model, classifier, requests, settings, fused=True)
    return {"steps": steps, "samples": samples,
            "final_z_max_abs_diff": float(max(np.abs(a.z - b.z).max()
                                              for a, b in zip(plain, fused, strict=True))),
            "final_image_max_abs_diff": float(max(np.abs(a.image - b.image).max()
                                                  for a, b in zip(plain, fused, strict=True))),
            "final_probability_max_abs_diff": float(max(
                np.abs(a.probabilities - b.probabilities).max()
                for a, b in zip(plain, fused, strict=True)))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="trained generator (part 1)")
    parser.add_argument("--classifier", help="trained classifier (part 1)")
    parser.add_argument("--common", default="Effusion")
    parser.add_argument("--rare", default="Cardiomegaly,Pneumothorax")
    parser.add_argument("--accept", type=int, default=16, help="samples per combination")
    parser.add_argument("--threshold", type=float, default=0.5,
                        help="probability each requested finding must reach")
    parser.add_argument("--budget", type=int, default=20000,
                        help="rejection sampling's evaluation limit per combination")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch", type=int, default=2, help="part 2 batch size")
    parser.add_argument("--steps", type=int, default=7,
                        help="part 2 timed steps per variant, after one warm-up (7)")
    parser.add_argument("--with-naive", action="store_true",
                        help="part 2: also time the naive step (weight gradients computed)")
    parser.add_argument("--same-steps", type=int, default=3, help="part 2 LCO steps compared")
    parser.add_argument("--same-samples", type=int, default=1,
                        help="part 2 samples in the comparison of results (1)")
    parser.add_argument("--skip-acceptance", action="store_true")
    parser.add_argument("--skip-profile", action="store_true")
    args = parser.parse_args()
    report: dict = {"machine": platform.processor() or platform.machine(),
                    "torch": torch.__version__, "threads": torch.get_num_threads()}
    if not args.skip_acceptance:
        if not (args.model and args.classifier):
            parser.error("part 1 needs --model and --classifier (or --skip-acceptance)")
        model = load_generator(args.model)
        loaded = load_classifier(args.classifier)
        settings = LCOSettings()
        report["acceptance"] = {
            "model": model.name, "classifier": loaded.name, "settings": settings.to_json(),
            "common": acceptance(model, loaded.classifier, tuple(args.common.split(",")),
                                 args.accept, args.budget, settings, args.seed,
                                 args.threshold),
            "rare": acceptance(model, loaded.classifier, tuple(args.rare.split(",")),
                               args.accept, args.budget, settings, args.seed, args.threshold)}
    if not args.skip_profile:
        model, classifier = paper_models()
        report["step_1024"] = {"batch": args.batch, "steps": args.steps,
                               "generator": "paper layout, random weights",
                               "classifier": "densenet121 at 256 px, random weights",
                               **step_times(model, classifier, args.batch, args.steps,
                                            args.with_naive)}
        report["same_results_1024"] = same_results(model, classifier, args.same_steps,
                                                   args.same_samples)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
