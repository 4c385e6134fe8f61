"""``cxrgan shift`` and ``cxrgan interpolate``: frames along a path in the latent space (the
same chest with a finding growing in or fading out; a morph between two images), written as
16-bit PNG frames, a strip, GIF/APNG animations, a synthetic DICOM series, frames.csv and
path.json (see :mod:`cxrgan_desktop.tasks.latent_frames`)."""

from __future__ import annotations

import argparse
import math
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
from cxrgan_desktop.cli.generate import add_truncation_option, truncation_value

DEFAULT_RANGE = "-10,10"

STEP_HELP = (
    "Pixel norm makes only the direction of z matter, so a frame is z0 turned by lambda "
    "degrees on the sphere |z| = |z0|: the |z| percentile is the same for every frame and "
    "cannot describe the step. Each frame reports instead its angle from z0 and that angle's "
    "percentile among the angles between z0 and random prior draws (0: still this image; "
    "about 50: as far as an unrelated sample).")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    _add_shift(sub)
    _add_interpolate(sub)


def _add_output_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, required=True, help="output folder (locked while "
                   "written; files appear only when the whole set is written)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an earlier frame set in --out (only its files)")
    p.add_argument("--ping-pong", action="store_true",
                   help="animations run forwards, then back (without repeating the ends)")
    p.add_argument("--frame-ms", type=int, default=150, help="animation frame duration in ms")
    add_truncation_option(p, "path.json and every DICOM instance; every frame (and, for "
                          "shift, the gradient) goes through the truncated generator, so "
                          "frame 0 is 'cxrgan generate --truncation PSI' of the latent. psi 0 "
                          "has no shift: every latent is the mean image")
    add_device_option(p)


def _add_start_options(p: argparse.ArgumentParser, prefix: str = "", what: str = "start"
                       ) -> None:
    dash = f"--{prefix}" if prefix else "--"
    p.add_argument(f"{dash}seed", type=int, help=f"{what}: image --{prefix}index of "
                   f"'cxrgan generate --seed {prefix.upper()}SEED'")
    p.add_argument(f"{dash}index", type=int, help=f"{what}: the image number within that seed")
    p.add_argument(f"{dash}latents", type=existing_path, help=f"{what}: a .npy file of "
                   "latents (N x latent size, or one vector), e.g. latents.npy of 'cxrgan "
                   "generate' or a projection's latent")
    p.add_argument(f"{dash}row", type=int, default=0, help=f"row of --{prefix}latents to use")


def _add_shift(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "shift", help="a finding grows in or fades out: latent shift along the classifier's "
                      "gradient (Cohen et al., MIDL 2021)",
        description="Turn a latent along the gradient of the classifier's logit for one "
                    "finding and render the frames; every frame records every finding's "
                    "probability, so what else changes is visible. " + STEP_HELP + " The "
                    "frame at lambda 0 is the plain generate of the latent, exactly (an odd "
                    "--frames with a symmetric range includes it). Example: cxrgan shift "
                    "--finding Effusion --seed 0 --index 3 --range=-10,10 --frames 9 "
                    "--out shift/",
        formatter_class=DefaultsHelpFormatter)
    p.add_argument("--model", help="generator file or installed name (default: the first "
                   "installed model, else the bundled demo-phantom-64)")
    p.add_argument("--classifier", help="classifier file or installed name (default: the "
                   "first installed classifier, else the bundled demo-phantom-64-classifier)")
    p.add_argument("--finding", required=True, help="the classifier's label to shift along, "
                   "e.g. Effusion")
    _add_start_options(p)
    p.add_argument("--range", default=DEFAULT_RANGE, dest="lambda_range", metavar="LO,HI",
                   help="lambda range in degrees of arc (positive: towards the finding, "
                   "negative: away from it); 'L' means -L,L; write a negative start as "
                   "--range=-10,10. The demo model's classifier gradient turns within a few "
                   "degrees: a single direction stays monotonic to about +-5 degrees there, "
                   "--recompute-gradient to +-20")
    p.add_argument("--frames", type=int, default=9, help="number of frames, evenly spaced "
                   "over the range")
    p.add_argument("--recompute-gradient", action="store_true",
                   help="take the gradient again at every step (a path that bends with the "
                   "classifier; lambda is then the arc walked). Default: one direction, the "
                   "gradient at the start latent (Cohen et al.'s method)")
    p.add_argument("--max-step", type=float, default=2.0, metavar="DEGREES",
                   help="largest step between gradients with --recompute-gradient")
    _add_output_options(p)
    p.set_defaults(func=_cmd_shift)


def _add_interpolate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "interpolate", help="a morph between two latents (spherical interpolation)",
        description="Spherical interpolation (slerp) from one latent to another, with the "
                    "frames' probabilities when a classifier is given. The first and last "
                    "frames are the plain generates of the two latents, exactly. Each frame "
                    "reports its angle from the start and that angle's percentile among "
                    "angles to random prior draws. Example: cxrgan interpolate --seed 0 "
                    "--index 1 --to-index 5 --frames 16 --out morph/",
        formatter_class=DefaultsHelpFormatter)
    p.add_argument("--model", help="generator file or installed name (default: the first "
                   "installed model, else the bundled demo-phantom-64)")
    p.add_argument("--classifier", help="a classifier file or installed name: record every "
                   "finding's probability per frame (default: none)")
    _add_start_options(p)
    _add_start_options(p, "to-", "end")
    p.add_argument("--frames", type=int, default=16, help="number of frames, ends included")
    _add_output_options(p)
    p.set_defaults(func=_cmd_interpolate)


def parse_range(text: str) -> tuple[float, float]:
    """``"-10,10"`` -> (-10.0, 10.0); ``"10"`` -> (-10.0, 10.0)."""
    parts = [part.strip() for part in text.split(",")]
    try:
        values = [float(part) for part in parts]
    except ValueError:
        raise UserError(f"--range expects LO,HI or L in degrees, got {text!r}") from None
    if len(values) == 1:
        values = [-abs(values[0]), abs(values[0])]
    if len(values) != 2 or not all(math.isfinite(v) for v in values):
        raise UserError(f"--range expects LO,HI or L in degrees, got {text!r}")
    lo, hi = values
    if lo > hi:
        raise UserError(f"--range: LO must not exceed HI, got {text!r}")
    if max(abs(lo), abs(hi)) > 180.0:
        raise UserError(f"--range: a turn beyond 180 degrees comes back around, got {text!r}")
    return lo, hi


def _latent(args: argparse.Namespace, prefix: str, latent_size: int, fallback_seed=None):
    """(z, LatentSource) from --seed/--index or --latents/--row (with ``prefix``)."""
    import numpy as np

    from cxrgan_desktop.engine.render import latents_for_seed
    from cxrgan_desktop.tasks.latent_frames import LatentSource

    key = prefix.replace("-", "_")
    seed, index = getattr(args, f"{key}seed"), getattr(args, f"{key}index")
    file, row = getattr(args, f"{key}latents"), getattr(args, f"{key}row")
    if seed is None and index is not None:
        seed = fallback_seed
    if file is not None:
        if seed is not None or index is not None:
            raise UserError(f"give --{prefix}latents or --{prefix}seed/--{prefix}index, "
                            "not both")
        try:
            array = np.load(file, allow_pickle=False)
        except (OSError, ValueError) as error:
            raise UserError(f"{file}: not a readable .npy array ({error})") from error
        if array.ndim == 1:
            array = array[None]
        if array.ndim != 2 or array.shape[1] != latent_size or not np.issubdtype(
                array.dtype, np.floating):
            raise UserError(f"{file}: latents must be N x {latent_size} floats for this model, "
                            f"got {array.dtype} {array.shape}")
        if not 0 <= row < len(array):
            raise UserError(f"--{prefix}row {row} is outside {file}'s {len(array)} rows")
        z = np.asarray(array[row], dtype=np.float32)
        if not np.isfinite(z).all() or not np.any(z):
            raise UserError(f"{file}: row {row} is not a usable latent (zero or not finite)")
        from cxrgan_desktop.tasks.project import projection_source

        return z, LatentSource(latents_file=Path(file), row=row,
                               derived_from=projection_source(file))
    if seed is None or index is None:
        raise UserError(f"give --{prefix}seed and --{prefix}index, or --{prefix}latents")
    if index < 0:
        raise UserError(f"--{prefix}index must not be negative")
    return (latents_for_seed(seed, 1, latent_size, start=index)[0],
            LatentSource(seed=seed, index=index))


def _check_frames(frames: int, least: int) -> None:
    if not least <= frames <= 1000:
        raise UserError(f"--frames must be between {least} and 1000, got {frames}")


def _cmd_shift(args: argparse.Namespace) -> int:
    import numpy as np

    from cxrgan_desktop.cli.progress import run_job
    from cxrgan_desktop.tasks.latent_frames import shift_to_folder

    lo, hi = parse_range(args.lambda_range)
    _check_frames(args.frames, 1)
    truncation = truncation_value(args.truncation)
    if truncation == 0.0:
        raise UserError("--truncation 0 renders the same mean image for every latent: there is "
                        "nothing to shift (use a psi above 0)")
    if not args.max_step > 0:
        raise UserError("--max-step must be positive")
    model = load_model(args.model)
    classifier = load_classifier_option(args.classifier)
    if args.finding not in classifier.labels:
        raise UserError(f"classifier {classifier.name} has no label {args.finding!r}; its "
                        f"labels are {', '.join(classifier.labels)}")
    z0, source = _latent(args, "", model.config.latent_size)
    device = resolve_device_option(args.device)
    lambdas = np.linspace(lo, hi, args.frames) if args.frames > 1 else np.array([lo])
    print(f"model {model.name} ({model.resolution} px), classifier {classifier.name} on "
          f"{device}: {args.finding} from {source.describe()}, lambda {lo:g} to {hi:g} "
          f"degrees, {args.frames} frames{_psi_note(truncation)}", file=sys.stderr)
    try:
        result = run_job(lambda progress, cancel: shift_to_folder(
            model, classifier, args.finding, z0, lambdas, args.out, source=source,
            recompute_gradient=args.recompute_gradient, max_step_deg=args.max_step,
            device=str(device), truncation=truncation, ping_pong=args.ping_pong,
            frame_ms=args.frame_ms, overwrite=args.overwrite, progress=progress, cancel=cancel),
            None, "", "shift", f"nothing was written to {args.out}")
    except ValueError as error:
        raise UserError(str(error)) from error
    _report(result.path_json, args.finding)
    return 0


def _cmd_interpolate(args: argparse.Namespace) -> int:
    from cxrgan_desktop.cli.progress import run_job
    from cxrgan_desktop.tasks.latent_frames import interpolate_to_folder

    _check_frames(args.frames, 2)
    truncation = truncation_value(args.truncation)
    model = load_model(args.model)
    classifier = load_classifier_option(args.classifier) if args.classifier else None
    size = model.config.latent_size
    z_a, start = _latent(args, "", size)
    z_b, end = _latent(args, "to-", size, fallback_seed=args.seed)
    device = resolve_device_option(args.device)
    print(f"model {model.name} ({model.resolution} px) on {device}: from {start.describe()} "
          f"to {end.describe()}, {args.frames} frames{_psi_note(truncation)}", file=sys.stderr)
    try:
        result = run_job(lambda progress, cancel: interpolate_to_folder(
            model, z_a, z_b, args.frames, args.out, source=start, end=end,
            classifier=classifier, device=str(device), truncation=truncation,
            ping_pong=args.ping_pong, frame_ms=args.frame_ms, overwrite=args.overwrite,
            progress=progress, cancel=cancel), None, "", "interpolate",
            f"nothing was written to {args.out}")
    except ValueError as error:
        raise UserError(str(error)) from error
    _report(result.path_json, None)
    return 0


def _psi_note(psi: float) -> str:
    return "" if psi == 1.0 else f", truncation psi {psi:g}"


def _report(path_json: Path, finding: str | None) -> None:
    """A table of the frames: position, angle, its percentile, the finding's probability."""
    import json

    record = json.loads(path_json.read_text(encoding="utf-8"))
    name = record["positions"]["name"]
    header = f"{'frame':>5}  {name:>10}  {'angle_deg':>9}  {'angle_pct':>9}"
    if finding:
        header += f"  {'p(' + finding + ')':>16}"
    print(header)
    for frame in record["frames"]:
        line = (f"{frame['frame']:>5}  {frame[name]:>10.4g}  {frame['angle_deg']:>9.3f}  "
                f"{frame['angle_percentile']:>9.3g}")
        if finding:
            line += f"  {frame['probabilities'][finding]:>16.4f}"
        print(line)
    print(f"frame set: {path_json.parent} (frames.csv has every finding's probability; "
          f"DICOM series in {path_json.parent / 'dicom'})")
