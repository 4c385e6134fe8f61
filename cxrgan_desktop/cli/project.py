"""``cxrgan project``: find the latent whose image reproduces a real radiograph."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cxrgan_desktop.cli.common import (
    DefaultsHelpFormatter,
    UserError,
    add_device_option,
    existing_path,
    load_classifier_option,
    load_model,
    resolve_device_option,
)

# engine.projection's defaults, repeated so that building the parser imports no torch
DEFAULT_RESTARTS, DEFAULT_STEPS, DEFAULT_LEARNING_RATE = 4, 300, 0.1


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "project", help="find the latent of a real radiograph (GAN inversion)",
        description="Fit a latent vector so that the generator reproduces IMAGE (PNG, JPEG, "
                    "TIFF or DICOM; centre-cropped and resized as the training data were): "
                    "Adam from several random starts, loss L1 + (1 - MS-SSIM) (+ classifier "
                    "feature distance). Writes latent.npy (a latent like any other: cxrgan "
                    "generate --latents latent.npy renders the reconstruction), original, "
                    "reconstruction, difference and side-by-side 16-bit PNGs, and "
                    "projection.json with PSNR, SSIM and the loss curve. Everything made "
                    "from the latent is synthetic and derived from the radiograph. Example: "
                    "cxrgan project chest.dcm --model segal2020-pggan-cxr14 --out proj/",
        formatter_class=DefaultsHelpFormatter)
    p.add_argument("image", type=existing_path, metavar="IMAGE", help="the radiograph")
    p.add_argument("--model", help="model file or installed name (default: the first "
                   "installed model, else the bundled demo-phantom-64)")
    p.add_argument("--out", type=Path, required=True, help="output folder (created if needed)")
    p.add_argument("--restarts", type=int, default=DEFAULT_RESTARTS,
                   help="random starts optimised together; the best final loss is kept")
    p.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="Adam steps per start")
    p.add_argument("--lr", type=float, default=DEFAULT_LEARNING_RATE,
                   help="Adam's learning rate (on the latent sphere of rms 1)")
    p.add_argument("--classifier", help="classifier file or installed name whose pooled "
                   "features also enter the loss (needs --classifier-weight > 0)")
    p.add_argument("--classifier-weight", type=float, default=0.0,
                   help="weight of the classifier's feature distance (1 - cosine)")
    p.add_argument("--seed", type=int, default=0, help="start r is image r of cxrgan "
                   "generate --seed SEED")
    add_device_option(p)
    p.add_argument("--overwrite", action="store_true",
                   help="replace a projection already in the output folder")
    p.set_defaults(func=_cmd_project)


def _cmd_project(args: argparse.Namespace) -> int:
    from cxrgan_desktop.cli.progress import run_job
    from cxrgan_desktop.imaging.image_file import ImageReadError
    from cxrgan_desktop.tasks.project import ProjectOptions, project_image

    if args.restarts < 1 or args.steps < 0 or not args.lr > 0:
        raise UserError("--restarts must be at least 1, --steps at least 0 and --lr positive")
    if args.classifier_weight < 0:
        raise UserError("--classifier-weight must not be negative")
    if args.classifier_weight > 0 and not args.classifier:
        raise UserError("--classifier-weight needs --classifier")
    model = load_model(args.model)
    device = resolve_device_option(args.device)
    classifier = load_classifier_option(args.classifier) if args.classifier else None
    options = ProjectOptions(restarts=args.restarts, steps=args.steps,
                             learning_rate=args.lr, classifier=classifier,
                             classifier_weight=args.classifier_weight, seed=args.seed,
                             device=str(device), overwrite=args.overwrite)
    print(f"model {model.name} ({model.resolution}x{model.resolution}, sha256 "
          f"{model.sha256[:16]}...) on {device}", file=sys.stderr)
    try:
        result = run_job(lambda progress, cancel: project_image(
            args.image, model, args.out, options, progress, cancel), None, "step", "project",
            "nothing was written")
    except ImageReadError as error:
        raise UserError(str(error)) from error
    p = result.projection
    print(f"reconstruction PSNR {p.psnr:.2f} dB, SSIM {p.ssim:.4f} (start {p.best_restart} "
          f"of {args.restarts}); typicality: {p.typicality.prior_fraction_as_far:.2f} of prior "
          f"draws as far from N(0, 1)")
    print(f"wrote {result.latent_path} and {result.record_path}; everything made from this "
          "latent is synthetic and derived from the radiograph")
    return 0
