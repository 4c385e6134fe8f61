"""``cxrgan fid`` and ``cxrgan fid-weights``: FID and KID from the command line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from cxrgan_desktop.cli.common import (
    UserError,
    add_device_option,
    path_or_name,
    resolve_device_option,
)

FID_EXAMPLES = """examples:
  cxrgan fid real_images/ generated/                     two folders
  cxrgan fid real_images/ model:segal2020 --n 10000      a model's samples, no files written
  cxrgan fid real_images/ --save-stats real.npz          statistics of one side, for reuse
  cxrgan fid real.npz model:my-run --n 5000 --seed 1     against saved statistics
"""


def add_parsers(sub: argparse._SubParsersAction) -> None:
    from cxrgan_desktop.metrics.fid_settings import DEFAULT_RESIZE, RESIZE_MODES
    from cxrgan_desktop.metrics.kid import DEFAULT_SUBSET_SIZE, DEFAULT_SUBSETS

    p = sub.add_parser(
        "fid", help="FID and KID between two image sets, statistics files or models",
        description="Frechet Inception Distance and Kernel Inception Distance with the "
                    "standard FID Inception network (downloaded once, SHA-256 checked). "
                    "A side is a folder of images (PNG, JPEG, TIFF, DICOM), a .npz "
                    "statistics file (ours or pytorch-fid's), or model:NAME (installed name "
                    "or file) with --n samples. Features are cached per folder, so a second "
                    "FID against the same real set only measures the new side.",
        epilog=FID_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("real", metavar="REAL", type=path_or_name,
                   help="reference side: folder, .npz or model:NAME")
    p.add_argument("fake", metavar="FAKE", nargs="?", type=path_or_name,
                   help="side to measure; leave out to only --save-stats of REAL")
    p.add_argument("--n", type=int, default=None,
                   help="samples to draw from a model:NAME side (2048 or more for a "
                        "comparable FID; the paper used 10,000 pairs)")
    p.add_argument("--seed", type=int, default=0,
                   help="latent seed of model sides (same latents as 'cxrgan generate')")
    p.add_argument("--resize", choices=sorted(RESIZE_MODES), default=DEFAULT_RESIZE,
                   help="antialias: antialiased bicubic to 299 px (default); pytorch-fid: "
                        "bilinear without antialiasing, to compare with published numbers")
    p.add_argument("--batch-size", type=int, default=32, help="images per Inception forward "
                   "pass (default: 32; lower it if memory runs out)")
    add_device_option(p)
    p.add_argument("--kid-subsets", type=int, default=DEFAULT_SUBSETS, help="random subsets "
                   f"KID is averaged over (default: {DEFAULT_SUBSETS}, as in Binkowski et "
                   "al.); more subsets, a steadier estimate")
    p.add_argument("--kid-subset-size", type=int, default=DEFAULT_SUBSET_SIZE,
                   help="images per KID subset (smaller sides use all their images)")
    p.add_argument("--kid-seed", type=int, default=0, help="seed of the KID subsets "
                   "(default: 0), recorded with the result")
    p.add_argument("--features", default="inception", metavar="NETWORK",
                   help="inception (the standard FID network), or classifier:NAME: the pooled "
                        "penultimate features of one of your pathology classifiers (installed "
                        "name or file), trained on radiographs; FD, KID and precision/recall "
                        "are then in its feature space (not comparable with Inception FIDs), "
                        "and statistics files record which network made them")
    p.add_argument("--prdc-k", type=int, default=5, help="neighbours of the k-NN balls of "
                   "precision/recall (Kynkaanniemi et al. 2019) and density/coverage (Naeem et "
                   "al. 2020)")
    p.add_argument("--relative", metavar="REAL_B", type=path_or_name,
                   help="a second set of real images (other patients: a folder, or a .npz "
                        "saved --with-features): also report the relative FD of Woodland et "
                        "al. 2024, FD(REAL, FAKE) / FD(REAL, REAL_B), with an interval from "
                        "half-samples")
    p.add_argument("--relative-split", action="store_true",
                   help="relative FD without a second set: split REAL (a folder) patient-wise "
                        "into halves A and B (ChestX-ray14 names give the patient; other names "
                        "count as their own patient) and report FD(A, FAKE) / FD(A, B)")
    p.add_argument("--relative-boot", type=int, default=100,
                   help="half-samples behind the relative FD's interval (each recomputes "
                        "two FDs: about 0.5 s at N = 500, 2048-d)")
    p.add_argument("--save-stats", metavar="FILE.npz", type=Path,
                   help="save REAL's statistics (mu, sigma: pytorch-fid's layout; plus N and "
                        "the settings)")
    p.add_argument("--save-fake-stats", metavar="FILE.npz", type=Path,
                   help="save FAKE's statistics")
    p.add_argument("--with-features", action="store_true",
                   help="keep the features in saved statistics (needed for KID later)")
    p.add_argument("--json", metavar="FILE", type=Path, help="write the result as JSON")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the "
                   "feature cache")
    p.add_argument("--no-history", action="store_true",
                   help="do not add the result to the history the FID panel shows")
    _add_weights_options(p)
    p.set_defaults(func=cmd_fid)

    w = sub.add_parser(
        "fid-weights", help="show, download or install the FID Inception weights",
        description="The FID Inception weights (pt_inception-2015-12-05-6726825d.pth, about "
                    "91 MB) live in the cache folder. Without options: say where they are. "
                    "--download fetches them (SHA-256 checked); --install FILE copies a file "
                    "obtained elsewhere (e.g. on a machine without internet) after checking it.")
    group = w.add_mutually_exclusive_group()
    group.add_argument("--download", action="store_true", help="fetch the weights into the "
                       "cache folder and check their SHA-256")
    group.add_argument("--install", metavar="FILE", type=Path, help="check a copy obtained "
                       "elsewhere and install it in the cache folder")
    w.set_defaults(func=cmd_fid_weights)


def _add_weights_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--inception-weights", metavar="FILE",
                   help="use this weights file (default: the file set in the app's settings, "
                        "else the cache)")
    p.add_argument("--allow-unverified-weights", action="store_true",
                   help="use --inception-weights even if its SHA-256 is not the published "
                        "file's (the result says so and is not comparable with published "
                        "FIDs)")
    p.add_argument("--offline", action="store_true",
                   help="never download the weights; fail with instructions if they are "
                        "missing")


def _user_weights(explicit: str | None = None) -> str | None:
    """``--inception-weights``, else the file located in the app, else None (the cache)."""
    if explicit:
        return explicit
    from cxrgan_desktop.core.settings import load_settings

    return load_settings().fid.inception_weights or None


def _download(progress_description: str) -> Path:
    from cxrgan_desktop.cli.progress import run_job
    from cxrgan_desktop.metrics import inception_weights as iw

    spec = iw.standard_spec()
    print(f"downloading {spec.file_name} from {spec.url}", file=sys.stderr)
    try:
        return run_job(lambda progress, cancel: iw.download_weights(
            progress=progress, cancel=cancel), None, "", progress_description,
            "nothing was installed")
    except iw.WeightsError as error:
        raise UserError(str(error)) from error


def _inception(args: argparse.Namespace):
    """The verified network, downloading it first where allowed."""
    from cxrgan_desktop.metrics import inception_weights as iw

    if args.inception_weights and not Path(args.inception_weights).expanduser().exists():
        raise UserError(f"--inception-weights {args.inception_weights}: no such file")
    user = _user_weights(args.inception_weights)
    if iw.find_weights(user) is None:
        if args.offline:
            raise UserError(str(iw.WeightsMissing(iw.standard_spec(),
                                                  [iw.cached_path()], "--offline")))
        _download("Inception weights")
    try:
        return iw.load_inception(user, verify=not args.allow_unverified_weights)
    except iw.WeightsError as error:
        raise UserError(str(error)) from error


def _options(args: argparse.Namespace):
    from cxrgan_desktop.tasks.fid import FIDOptions

    if (args.batch_size < 1 or args.kid_subsets < 1 or args.kid_subset_size < 2
            or args.prdc_k < 1 or args.relative_boot < 1):
        raise UserError("--batch-size, --kid-subsets, --prdc-k and --relative-boot must be at "
                        "least 1, --kid-subset-size at least 2")
    return FIDOptions(resize=args.resize, batch_size=args.batch_size,
                      device=resolve_device_option(args.device), kid_subsets=args.kid_subsets,
                      kid_subset_size=args.kid_subset_size, kid_seed=args.kid_seed,
                      use_cache=not args.no_cache,
                      allow_unverified_weights=args.allow_unverified_weights,
                      prdc_k=args.prdc_k, relative_boot=args.relative_boot,
                      features=args.features, relative_split=args.relative_split)


def _library_errors() -> tuple[type[Exception], ...]:
    from cxrgan_desktop.engine.checkpoints import CheckpointError
    from cxrgan_desktop.imaging.readers import ImageReadError
    from cxrgan_desktop.metrics.stats_file import StatsFileError
    from cxrgan_desktop.store import zoo

    return (ValueError, zoo.ModelNotFoundError, CheckpointError, StatsFileError,
            ImageReadError)


def cmd_fid(args: argparse.Namespace) -> int:
    from cxrgan_desktop.cli.progress import run_job
    from cxrgan_desktop.metrics.stats_file import save_stats
    from cxrgan_desktop.tasks import fid as fid_run

    try:
        real = fid_run.parse_side(args.real, args.n, args.seed)
        fake = fid_run.parse_side(args.fake, args.n, args.seed) if args.fake else None
        reference_b = fid_run.parse_side(args.relative) if args.relative else None
    except ValueError as error:
        raise UserError(str(error)) from error
    if (reference_b is not None or args.relative_split) and fake is None:
        raise UserError("--relative and --relative-split need a FAKE side to measure")
    if reference_b is not None and args.relative_split:
        raise UserError("give --relative REAL_B or --relative-split, not both")
    if fake is None and args.save_stats is None:
        raise UserError("give FAKE to compare against, or --save-stats FILE.npz to save "
                        "REAL's statistics")
    if args.save_fake_stats and fake is None:
        raise UserError("--save-fake-stats needs a FAKE side")
    options = _options(args)
    # two statistics files are compared without the network: nothing to load or download
    # statistics files alone, or another feature network: nothing to load or download here
    uses_inception = fid_run.needs_inception(args.features, real, fake, reference_b) or (
        fake is None and args.features == "inception")
    inception = _inception(args) if uses_inception else None
    kept = "nothing was saved; features already extracted for a finished side are cached"
    try:
        if fake is None:
            measurer = fid_run.FIDMeasurer(options, inception)
            side = run_job(lambda progress, cancel: measurer.side(real, progress, cancel),
                           None, "", "features", kept)
            save_stats(args.save_stats, side.stats, args.with_features)
            print(f"saved statistics of {real.label} (N={side.n}) to {args.save_stats}")
            _print_settings(measurer.settings())
            return 0
        result = run_job(lambda progress, cancel: fid_run.compute_fid(
            real, fake, options, progress, cancel, inception, reference_b), None, "", "FID",
            kept)
    except _library_errors() as error:
        raise UserError(str(error)) from error
    for path, side in ((args.save_stats, result.real), (args.save_fake_stats, result.fake)):
        if path is not None:
            save_stats(path, side.stats, args.with_features)
    record = result.to_record()
    if args.json:
        from cxrgan_desktop.core.fileio import atomic_write_json

        atomic_write_json(args.json, record)
    if not args.no_history:
        from cxrgan_desktop.metrics.fid_history import append_history

        append_history(record)
    _print_result(record)
    return 0


def _print_result(record: dict[str, Any]) -> None:
    print(f"FID   {record['fid']:.4f}")
    kid = record["kid"]
    if kid:
        print(f"KID   {kid['mean']:.6f} +- {kid['std']:.6f}  ({kid['subsets']} subsets of "
              f"{kid['subset_size']}, seed {kid['seed']})")
    prdc = record.get("prdc")
    if prdc:
        print(f"precision {prdc['precision']:.4f}  recall {prdc['recall']:.4f}  density "
              f"{prdc['density']:.4f}  coverage {prdc['coverage']:.4f}  (k = {prdc['k']}, "
              f"{prdc['feature_dim']}-d features, N {prdc['n_real']} / {prdc['n_fake']})")
    relative = record.get("relative")
    if relative:
        print(f"relative FD {relative['ratio']:.3f}  ({100 * relative['level']:.0f} % "
              f"half-sampling {relative['ratio_low']:.3f} - {relative['ratio_high']:.3f}, "
              f"{relative['n_boot']} half-samples): FD(real, synthetic) {relative['fd_model']:.4f}"
              f" / FD(real, real B) {relative['fd_real']:.4f}, "
              + (f"{relative['split']}: N {relative['n_real_a']} / {relative['n_real_b']}"
                 if relative.get("split") else
                 f"real B {relative['real_b']['label']} N={relative['real_b']['n']}"))
    for name in ("real", "fake"):
        side = record[name]
        cached = ", features from cache" if side["from_cache"] else ""
        print(f"{name:5} {side['label']}  N={side['n'] if side['n'] is not None else '?'}"
              f"{cached}")
    _print_settings(record["settings"])
    for warning in record["warnings"]:
        print(f"warning: {warning}")
    print(f"took {record['seconds']:.1f} s")


def _print_settings(settings: dict[str, Any]) -> None:
    if "network" not in settings:  # two pytorch-fid files: nothing recorded
        print(f"settings: {settings.get('computed_from', 'not recorded')}")
        return
    print(f"settings: {settings['network']} (sha256 {settings['weights_sha256'][:12]}...), "
          f"resize {settings['resize']} to {settings['input_size']} px "
          f"({settings.get('resize_method', '?')}), device {settings.get('device', '?')}")
    if "computed_from" in settings:
        print(f"          {settings['computed_from']}")


def cmd_fid_weights(args: argparse.Namespace) -> int:
    from cxrgan_desktop.metrics import inception_weights as iw

    spec = iw.standard_spec()
    try:
        if args.install:
            target = iw.install_weights(args.install)
            print(f"installed {target} (SHA-256 checked)")
            return 0
        if args.download:
            print(f"installed {_download('Inception weights')} (SHA-256 checked)")
            return 0
        found = iw.find_weights(_user_weights())
        if found is None:
            print(str(iw.WeightsMissing(spec, [iw.cached_path()])))
            return 1
        digest = iw.verify_weights(found)
        print(f"{found}: {spec.file_name}, SHA-256 {digest} (checked)")
        return 0
    except iw.WeightsError as error:
        raise UserError(str(error)) from error
