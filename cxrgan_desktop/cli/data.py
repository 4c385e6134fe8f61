"""``cxrgan phantom`` and ``convert``: make and prepare image folders (labelled phantoms,
real radiographs normalised to 16-bit PNG)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cxrgan_desktop.cli.common import (
    DefaultsHelpFormatter,
    UserError,
)

EXIT_ERROR, EXIT_CANCELLED = 2, 130
KEPT_ON_DISK_ERROR = "files written before are whole; none is left half-written"




def add_parsers(sub: argparse._SubParsersAction) -> None:
    _add_phantom(sub)
    _add_convert(sub)


def _add_phantom(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "phantom", help="write procedural chest radiographs with exact labels",
        description="Write synthetic PA chest radiographs (16-bit PNG) of synthetic patients, "
                    "several films each (same anatomy; position, breath, exposure and "
                    "findings vary), with exact ChestX-ray14 labels in a Data_Entry CSV "
                    "(Patient ID, Follow-up #; files named like ChestX-ray14's, "
                    "00900000_000.png), for tests, demos and training experiments. Not "
                    "clinical data. Example: cxrgan phantom --n 100 --size 256 --seed 0 "
                    "--out phantoms/",
        formatter_class=DefaultsHelpFormatter)
    p.add_argument("--n", type=int, default=16, help="number of images (the last patient "
                   "may have fewer than its follow-ups)")
    p.add_argument("--size", type=int, default=1024, help="width and height in pixels")
    p.add_argument("--seed", type=int, default=0, help="image (patient p, follow-up f) "
                   "depends only on (seed, p, f), so --n 100 gives the first 100 images of "
                   "--n 1000")
    p.add_argument("--images-per-patient", default="chestxray14", metavar="chestxray14|K",
                   type=_images_per_patient_option,
                   help="images per patient: 'chestxray14' (like ChestX-ray14: mean 3.64, "
                        "57%% of patients one image, a few up to 50) or a whole number K "
                        "(every patient K images; 1: one image per patient), e.g. "
                        "--images-per-patient 4")
    p.add_argument("--prevalence", metavar="FINDING=P,...", help="draw each finding "
                   "independently with its own probability, e.g. Cardiomegaly=0.4,"
                   "Effusion=0.4 (others never); default: ChestX-ray14's label combinations")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.set_defaults(func=_cmd_phantom)


def _add_convert(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "convert", help="convert DICOM/PNG/JPEG/TIFF radiographs to normalised 16-bit PNG",
        description="Read images and folders of them (recursively; DICOM files are found by "
                    "content, with or without a .dcm suffix), normalise each to [0, 1] "
                    "(DICOM: Modality LUT, the file's VOI window or LUT, else robust "
                    "percentiles; MONOCHROME1 inverted) and write 16-bit PNGs plus "
                    "conversion_report.csv: what was read and how, and what was skipped and "
                    "why. Example: cxrgan convert pacs_export/ extra.dcm --out converted/")
    p.add_argument("inputs", nargs="+", type=Path, help="image files and/or folders")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--overwrite", action="store_true", help="the output folder holds a "
                   "finished conversion: remove the PNGs its report lists first (an "
                   "unfinished one is replaced without asking)")
    p.set_defaults(func=_cmd_convert)


def _cmd_phantom(args: argparse.Namespace) -> int:
    from cxrgan_desktop.cli.progress import run_job
    from cxrgan_desktop.tasks.phantom import set_counts, write_phantoms

    if args.n < 1 or not 16 <= args.size <= 1024:
        raise UserError("--n must be at least 1 and --size between 16 and 1024")
    distribution = _prevalence_option(args.prevalence) if args.prevalence else None
    out_dir = run_job(lambda progress, cancel: write_phantoms(
        args.out, args.n, args.size, args.seed, distribution, progress=progress,
        cancel=cancel, images_per_patient=args.images_per_patient),
        args.n, "img", "phantom", f"the finished images are listed in {args.out}")
    images, patients = set_counts(out_dir)
    print(f"wrote {images} phantom images of {patients} patients to {out_dir} "
          "(labels: Data_Entry_phantom.csv)")
    return 0


def _images_per_patient_option(text: str) -> str | int:
    from cxrgan_desktop.tasks.phantom_patients import check_images_per_patient

    try:
        return check_images_per_patient(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _prevalence_option(text: str):
    from cxrgan_desktop.labels.distribution import LabelDistribution

    prevalences = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, value = part.partition("=")
        try:
            prevalences[name.strip()] = float(value)
        except ValueError:
            raise UserError(f"--prevalence: {part!r} is not FINDING=P") from None
    try:
        return LabelDistribution.independent(prevalences)
    except ValueError as error:
        raise UserError(f"--prevalence: {error}") from error


def _cmd_convert(args: argparse.Namespace) -> int:
    from cxrgan_desktop.cli.progress import run_job
    from cxrgan_desktop.imaging.readers import display_path, missing_inputs
    from cxrgan_desktop.tasks.convert import convert_images

    # only a mistyped input stops here; any other problem is listed per file by convert
    missing = missing_inputs(args.inputs)
    if missing:
        raise UserError(f"no such file or folder: {', '.join(missing)}")
    report = run_job(lambda progress, cancel: convert_images(
        args.inputs, args.out, progress=progress, cancel=cancel, overwrite=args.overwrite),
        None, "", "convert",
        f"what was converted is listed in {args.out / 'conversion_report.csv'}")
    if report.skipped:
        print(f"skipped {len(report.skipped)} file(s):", file=sys.stderr)
        for skipped in report.skipped:
            print(f"  {skipped.shown}: {skipped.reason}", file=sys.stderr)
    for image, _ in report.converted:
        for warning in image.warnings:
            print(f"warning {display_path(image.source)}: {warning}", file=sys.stderr)
    print(f"converted {len(report.converted)} image(s), skipped {len(report.skipped)}; "
          f"report: {display_path(report.report_path)}")
    return 0
