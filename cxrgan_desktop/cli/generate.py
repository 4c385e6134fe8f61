"""``cxrgan generate``: render synthetic radiographs with a model into PNG or DICOM files."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cxrgan_desktop.cli.common import (
    DefaultsHelpFormatter,
    UserError,
    add_device_option,
    existing_path,
    load_model,
    resolve_device_option,
)

EXIT_ERROR, EXIT_CANCELLED = 2, 130
KEPT_ON_DISK_ERROR = "files written before are whole; none is left half-written"


def add_truncation_option(p: argparse.ArgumentParser, recorded: str) -> None:
    """``--truncation PSI``, shared by every command that renders from a model."""
    p.add_argument("--truncation", type=float, default=1.0, metavar="PSI",
                   help="truncation psi between 0 and 1: pulls the generator's first feature "
                   "map towards its average over the latent prior (the truncation trick, in "
                   "the place it works for a PGGAN: z is pixel-normalised, so scaling z does "
                   "nothing). 1: none, the model's full variety (the images a seed always "
                   "gave); lower: more typical images, less diverse; 0: one average image "
                   f"for every latent. Recorded in {recorded}")


def truncation_value(value: float) -> float:
    """The option's psi, or a :class:`UserError` saying why it cannot be used."""
    if not 0.0 <= value <= 1.0:  # NaN too
        raise UserError(f"--truncation must be between 0 and 1 (1: no truncation), got "
                        f"{value}; values above 1 would extrapolate beyond what the "
                        "generator was trained on")
    return float(value)


def add_parsers(sub: argparse._SubParsersAction) -> None:
    _add_generate(sub)


def _add_generate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "generate", help="render synthetic radiographs with a model",
        description="Render images from a generator into a folder of 16-bit PNGs (or DICOM "
                    "files marked synthetic) plus manifest.json and latents.npy. Example: "
                    "cxrgan generate --model segal2020-pggan-cxr14 --n 8 --seed 1 --out synth/",
        formatter_class=DefaultsHelpFormatter)
    p.add_argument("--model", help="model file (.safetensors, or the paper's .pth) or the name "
                   "of an installed model; default: the first installed model, else the bundled "
                   "demo-phantom-64 (phantom data, 64 px, not clinical)")
    p.add_argument("--n", type=int, default=8, help="number of images (ignored with --latents)")
    p.add_argument("--seed", type=int, default=0, help="seed of the latent vectors: image i "
                   "depends only on (seed, i)")
    p.add_argument("--latents", type=existing_path, help="render these vectors instead: a "
                   ".npy array of shape N x latent_size, used exactly as given")
    p.add_argument("--batch-size", type=int, default=4, help="images per forward pass")
    add_device_option(p)
    p.add_argument("--precision", default="float32", choices=["float32", "float16", "bfloat16"],
                   help="arithmetic precision; float16 is for CUDA GPUs (the error bound is "
                   "measured by tests/benchmarks/bench_generate.py)")
    p.add_argument("--format", default="png16", choices=["png16", "dicom"], dest="image_format",
                   help="png16: 16-bit greyscale PNG, value round(65535 * pixel); dicom: "
                   "Secondary Capture .dcm files with the same 16-bit values, one study and "
                   "series per run, marked SYNTHETIC (Conversion Type SYN, patient "
                   "SYNTHETIC^CXRGAN) with the model, its SHA-256 and the latent seed/index")
    p.add_argument("--window", metavar="CENTER,WIDTH", help="DICOM only: Window Center and "
                   "Width stored in the files, in stored units 0..65535 (default: the full "
                   "range, 32768,65536)")
    add_truncation_option(p, "manifest.json (psi and how the mean was estimated); part of "
                          "what --resume compares")
    p.add_argument("--out", type=Path, required=True, help="output folder (created if needed)")
    p.add_argument("--exclude-flagged", metavar="AUDIT", help="a memorisation audit (its "
                   "folder or audit.csv, from `cxrgan audit`): an image whose pixels it "
                   "flagged is not written, and is not replaced (a replacement would not have "
                   "been audited); the manifest records the audit and the indices left out. "
                   "Example: --exclude-flagged audit/")
    used = p.add_mutually_exclusive_group()
    used.add_argument("--overwrite", action="store_true", help="the output folder holds an "
                      "earlier run: remove its images, latents and manifest first (other "
                      "files are left alone)")
    used.add_argument("--resume", action="store_true", help="continue an unfinished run in "
                      "the output folder; only with the same model, seed or latents, --n, "
                      "--format, --window, --precision and --truncation")
    p.set_defaults(func=_cmd_generate)


def _cmd_generate(args: argparse.Namespace) -> int:
    from cxrgan_desktop.cli.progress import run_job
    from cxrgan_desktop.imaging.windowing import Window
    from cxrgan_desktop.tasks.generate import generate_to_folder, load_latents_file

    window = None
    if args.window is not None:
        if args.image_format != "dicom":
            raise UserError("--window is stored in DICOM files only; add --format dicom")
        try:
            center, width = (float(part) for part in args.window.split(","))
            window = Window(center, width)
        except ValueError as error:
            raise UserError(f"--window expects CENTER,WIDTH in stored units with width >= 1, "
                            f"got {args.window!r}") from error
    truncation = truncation_value(args.truncation)
    model = load_model(args.model)
    device = resolve_device_option(args.device)
    latents = None
    if args.latents is not None:
        try:
            latents = load_latents_file(args.latents, model.config.latent_size)
        except ValueError as error:
            raise UserError(str(error)) from error
    elif args.n < 1:
        raise UserError("--n must be at least 1")
    count = len(latents) if latents is not None else args.n
    flagged = None
    if args.exclude_flagged:
        from cxrgan_desktop.tasks.audit_file import AuditFileError, read_flagged

        try:
            flagged = read_flagged(args.exclude_flagged)
        except AuditFileError as error:
            raise UserError(str(error)) from error
    psi = "" if truncation == 1.0 else f", truncation psi {truncation:g}"
    print(f"model {model.name} ({model.resolution}x{model.resolution}, sha256 "
          f"{model.sha256[:16]}...) on {device}{psi}", file=sys.stderr)
    result = run_job(lambda progress, cancel: generate_to_folder(
        model, args.out, n=args.n, seed=None if latents is not None else args.seed,
        latents=latents, latents_source=args.latents, batch_size=args.batch_size,
        device=str(device), precision=args.precision, image_format=args.image_format,
        window=window, overwrite=args.overwrite, resume=args.resume, progress=progress,
        cancel=cancel, exclude=flagged, truncation=truncation), count, "img", "generate",
        f"the finished images and manifest.json are in {args.out}; add --resume to finish "
        "them")
    print(f"wrote {len(result.files)} images and {result.manifest}")
    if flagged is not None or result.excluded:
        indices = ", ".join(str(i) for i in sorted(result.excluded)) or "none"
        print(f"left out {len(result.excluded)} image(s) flagged by the memorisation audit "
              f"(indices: {indices}); no replacements were generated (they would not have "
              "been audited)")
    return 0
