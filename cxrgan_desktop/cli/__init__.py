"""``cxrgan``: the command-line twin of every GUI action, for headless GPU servers.

Each subcommand parses, calls the library, and reports. Heavy imports (torch) happen inside the
commands, after :func:`runtime.configure_before_torch`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from cxrgan_desktop import __version__
from cxrgan_desktop.cli import fid as cli_fid
from cxrgan_desktop.cli import lco as cli_lco
from cxrgan_desktop.cli import study as cli_study
from cxrgan_desktop.cli import tstr as cli_tstr
from cxrgan_desktop.cli.common import (
    DefaultsHelpFormatter,
    UserError,
    add_device_option,
    existing_path,
    load_model,
    path_or_name,
    resolve_device_option,
)
from cxrgan_desktop.core import runtime
from cxrgan_desktop.core.names import printable

EXIT_ERROR, EXIT_CANCELLED = 2, 130
KEPT_ON_DISK_ERROR = "files written before are whole; none is left half-written"


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
    p.add_argument("--out", type=Path, required=True, help="output folder (created if needed)")
    used = p.add_mutually_exclusive_group()
    used.add_argument("--overwrite", action="store_true", help="the output folder holds an "
                      "earlier run: remove its images, latents and manifest first (other "
                      "files are left alone)")
    used.add_argument("--resume", action="store_true", help="continue an unfinished run in "
                      "the output folder; only with the same model, seed or latents, --n, "
                      "--format, --window and --precision")
    p.set_defaults(func=_cmd_generate)


def _add_models(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list known and installed models",
                       description="List the models this version knows (with where to get "
                       "them) and the ones installed in your models folder.")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd_models)

    p = sub.add_parser(
        "import-model", help="check a weights file (or download a known model) and install it",
        description="Load a generator file (the paper's released .pth in any of its "
                    "containers, or a native .safetensors), verify it, and install it in your "
                    "models folder as a native .safetensors. Nothing in the file is executed. "
                    "With --download, fetch a known model's published archive first (see "
                    "'cxrgan models'). Examples: cxrgan import-model Final_Full_Model.pth "
                    "--name segal2020-pggan-cxr14; cxrgan import-model --download "
                    "segal2020-pggan-cxr14")
    p.add_argument("file", type=existing_path, nargs="?", help="the weights file")
    p.add_argument("--download", metavar="MODEL_ID", help="download and install this known "
                   "model (its SHA-256 is printed and recorded: none is published)")
    p.add_argument("--url", help="with --download: fetch from this mirror instead")
    p.add_argument("--name", help="installed model name (default: the file's stem, or the "
                   "known model's id)")
    p.add_argument("--force", action="store_true", help="replace an installed model of that name")
    p.set_defaults(func=_cmd_import_model)

    p = sub.add_parser("info", help="describe a model file: architecture, provenance, SHA-256",
                       description="Describe a generator or classifier file, or an installed "
                       "model, without installing it: architecture, output adapter, labels, "
                       "provenance and the file's SHA-256, as JSON. Nothing in the file is "
                       "executed. Example: cxrgan info segal2020-pggan-cxr14")
    p.add_argument("model", help="model file or installed model name")
    p.set_defaults(func=_cmd_info)


def _add_phantom(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "phantom", help="write procedural chest radiographs with exact labels",
        description="Write synthetic PA chest radiographs (16-bit PNG) with exact "
                    "ChestX-ray14 labels in a Data_Entry CSV, for tests, demos and training "
                    "experiments. Not clinical data. Example: cxrgan phantom --n 100 "
                    "--size 256 --seed 0 --out phantoms/",
        formatter_class=DefaultsHelpFormatter)
    p.add_argument("--n", type=int, default=16, help="number of images")
    p.add_argument("--size", type=int, default=1024, help="width and height in pixels")
    p.add_argument("--seed", type=int, default=0, help="image k depends only on (seed, k)")
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


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train", help="train or fine-tune a PGGAN from a config file",
        description="Train a progressive GAN as the config (TOML or JSON) describes: the "
                    "paper's recipe unless it says otherwise. The images are preprocessed once "
                    "into a multi-resolution cache; the run folder gets config.json, "
                    "log.jsonl, sample grids, checkpoints and final.safetensors. Ctrl-C saves "
                    "a checkpoint; run again with --run-dir to resume. A preset is named "
                    "as it is: tiny64 (a CPU demo, minutes: cxrgan phantom --n 2000 --size 64 "
                    "--out phantoms/, then cxrgan train tiny64 --data phantoms/), "
                    "demo-phantom-64 (the bundled demo model's recipe, 2 CPU cores, about an "
                    "hour), quick256, paper1024, finetune; or give your own file, e.g. "
                    "cxrgan train my_run.toml. On a CPU, tiny networks use one torch thread "
                    "per process (faster and steadier than several); set cpu_threads in the "
                    "config or OMP_NUM_THREADS to change it.",
        formatter_class=DefaultsHelpFormatter)
    p.add_argument("config", type=path_or_name, help="training config (.toml or .json), or a "
                   "preset: tiny64, demo-phantom-64, quick256, paper1024, finetune")
    p.add_argument("--data", type=existing_path, help="training images folder (overrides the "
                   "config)")
    p.add_argument("--labels", type=existing_path, help="ChestX-ray14-style labels CSV "
                   "(overrides)")
    p.add_argument("--init-from", type=Path, help="fine-tune from this generator file")
    p.add_argument("--run-dir", type=Path, help="run folder; an existing one is resumed "
                   "(default: a new numbered folder under your data folder's runs/)")
    add_device_option(p)
    p.add_argument("--stop-at", type=int, help="stop after this many images (resume later)")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser(
        "export-run", help="save a run's current generator as a model",
        description="Write the EMA generator of a training run's latest checkpoint as a "
                    "native .safetensors model (at the resolution the run has reached), e.g. "
                    "to sample or run LCO while training goes on. Example: cxrgan export-run "
                    "runs/00003-quick256 --out quick256-now.safetensors")
    p.add_argument("run_dir", type=Path, help="the run folder")
    p.add_argument("--out", type=Path, required=True, help="model file to write")
    p.add_argument("--name", help="model name (default: run name and images shown)")
    p.add_argument("--weights", choices=["ema", "live"], default="ema",
                   help="the EMA generator (what a finished run saves) or the live one (for "
                   "short runs, where the EMA lags behind a new resolution)")
    p.set_defaults(func=_cmd_export_run)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cxrgan", description="Synthetic chest radiographs with Progressive Growing GANs "
        "(after Segal et al., 2020): the command-line twin of cxrgan-desktop.")
    parser.add_argument("--version", action="version", version=f"cxrgan-desktop {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_generate(sub)
    _add_models(sub)
    _add_phantom(sub)
    _add_convert(sub)
    _add_train(sub)
    cli_lco.add_parsers(sub)
    cli_fid.add_parsers(sub)
    cli_study.add_parsers(sub)
    cli_tstr.add_parsers(sub)
    return parser


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
    print(f"model {model.name} ({model.resolution}x{model.resolution}, sha256 "
          f"{model.sha256[:16]}...) on {device}", file=sys.stderr)
    result = run_job(lambda progress, cancel: generate_to_folder(
        model, args.out, n=args.n, seed=None if latents is not None else args.seed,
        latents=latents, latents_source=args.latents, batch_size=args.batch_size,
        device=str(device), precision=args.precision, image_format=args.image_format,
        window=window, overwrite=args.overwrite, resume=args.resume, progress=progress,
        cancel=cancel), count, "img", "generate",
        f"the finished images and manifest.json are in {args.out}; add --resume to finish "
        "them")
    print(f"wrote {len(result.files)} images and {result.manifest}")
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    from cxrgan_desktop.core import paths
    from cxrgan_desktop.engine.classifier.installed import bundled_classifiers
    from cxrgan_desktop.store import zoo

    cards, installed = zoo.known_cards(), zoo.installed_models()
    bundled_classifier_names = {p.stem for p in bundled_classifiers()}
    if args.json:
        print(json.dumps({
            "known": [card.__dict__ for card in cards],
            "installed": [{"name": m.name, "path": str(m.path), "bytes": m.size_bytes,
                           "bundled": m.bundled} for m in installed],
            "bundled_classifiers": [str(p) for p in bundled_classifiers()],
            "models_dir": str(paths.models_dir())}, indent=2))
        return 0
    states = {m.name: "bundled" if m.bundled else "installed" for m in installed}
    states.update(dict.fromkeys(bundled_classifier_names, "bundled classifier"))
    print("Known models:")
    for card in cards:
        state = states.get(card.id, "not installed")
        source = (f"source: {card.source.get('record', '')} {card.source.get('archive', '')}"
                  if card.source.get("record") else
                  f"{card.kind} shipped in the package; its card: 'cxrgan models --json'")
        print(f"  {card.id}  [{state}]\n    {card.name}\n    licence {card.licence}; {source}")
        if card.limitations:
            print(f"    {card.limitations}")
    print(f"\nInstalled models ({paths.models_dir()}):")
    for model in installed:  # file names in a user folder: escaped (printable)
        where = "  [bundled, read-only]" if model.bundled else ""
        print(f"  {printable(model.name)}  {model.size_bytes / 1e6:.1f} MB  "
              f"{printable(model.path)}{where}")
    if not installed:
        print("  none yet: 'cxrgan import-model FILE' installs one")
    return 0


def _cmd_import_model(args: argparse.Namespace) -> int:
    from cxrgan_desktop.cli.progress import run_job
    from cxrgan_desktop.core.download import DownloadDamaged, DownloadFailed
    from cxrgan_desktop.engine.checkpoints import CheckpointError
    from cxrgan_desktop.store.install import InstallError, fetch_known_model, install_model

    if bool(args.file) == bool(args.download):
        raise UserError("give a weights file or --download MODEL_ID (one of them)")
    try:
        if args.download:
            if args.name and args.name != args.download:
                raise UserError("--download installs under the known model's id; --name "
                                "does not apply")
            installed = run_job(lambda progress, cancel: fetch_known_model(
                args.download, url=args.url, force=args.force, progress=progress,
                cancel=cancel), None, "", "download", "nothing was installed")
        else:
            installed = install_model(args.file, args.name, args.force)
    except (InstallError, CheckpointError, DownloadFailed, DownloadDamaged) as error:
        raise UserError(str(error)) from error
    print(f"{printable(args.file or args.download)}: {installed.description}")
    print(f"SHA-256 of the source file: {installed.sha256}")
    print(f"installed as {installed.name!r}: {printable(installed.path)}")
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    model = load_model(args.model)
    config = model.config
    print(json.dumps({
        "name": model.name, "file": str(model.path), "sha256": model.sha256,
        "format": model.source_format, "resolution": model.resolution,
        "latent_size": config.latent_size, "channels": list(config.channels),
        "image_channels": config.image_channels, "output_adapter": model.adapter.__dict__,
        "fading": model.generator.fading,
        "has_discriminator": model.discriminator_state is not None,
        "provenance": model.provenance}, indent=2))
    return 0


def _cmd_phantom(args: argparse.Namespace) -> int:
    from cxrgan_desktop.cli.progress import run_job
    from cxrgan_desktop.tasks.phantom import write_phantoms

    if args.n < 1 or not 16 <= args.size <= 1024:
        raise UserError("--n must be at least 1 and --size between 16 and 1024")
    distribution = _prevalence_option(args.prevalence) if args.prevalence else None
    out_dir = run_job(lambda progress, cancel: write_phantoms(
        args.out, args.n, args.size, args.seed, distribution, progress=progress,
        cancel=cancel),
        args.n, "img", "phantom", f"the finished images are listed in {args.out}")
    print(f"wrote {args.n} phantoms to {out_dir} (labels: Data_Entry_phantom.csv)")
    return 0


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


def _cmd_train(args: argparse.Namespace) -> int:
    from cxrgan_desktop.cli.progress import run_job
    from cxrgan_desktop.core.jobs import no_progress
    from cxrgan_desktop.engine.checkpoints import CheckpointError
    from cxrgan_desktop.engine.devices import DeviceError
    from cxrgan_desktop.engine.training import distributed
    from cxrgan_desktop.engine.training.config import load_config, total_images
    from cxrgan_desktop.engine.training.run import new_run_dir, run_training

    try:
        config = load_config(args.config)
        overrides = {}
        if args.data or args.labels:
            overrides["data"] = dataclasses.replace(
                config.data, image_dir=str(args.data or config.data.image_dir),
                labels_csv=str(args.labels or config.data.labels_csv))
        if args.init_from:
            overrides["init_from"] = str(args.init_from)
        config = dataclasses.replace(config, **overrides)
    except ValueError as error:
        raise UserError(str(error)) from error
    device = args.device
    context = distributed.DistributedContext()
    if distributed.launched_by_torchrun():
        context, device = distributed.initialise(args.device)
    run_dir = distributed.broadcast_object(
        args.run_dir or (new_run_dir(config.name) if context.is_main else None), context)
    if context.is_main:
        print(f"run folder: {run_dir}" + (f" ({context.world} processes)"
                                          if context.active else ""), file=sys.stderr)

    def job(progress, cancel):
        return run_training(config, run_dir, device=device, stop_at=args.stop_at,
                            progress=progress, cancel=cancel)

    try:
        if context.is_main:
            result = run_job(job, None, "", "train", f"checkpoint saved; resume with: cxrgan "
                             f"train {args.config} --run-dir {run_dir}",
                             kept_on_error=f"checkpoints saved before are kept; resume with: "
                             f"cxrgan train {args.config} --run-dir {run_dir}")
        else:
            result = job(no_progress, None)
    except (ValueError, CheckpointError, DeviceError) as error:
        raise UserError(str(error)) from error
    finally:
        if context.active:
            distributed.finish()
    if not context.is_main:
        return 0
    last, scheduled = result.last, total_images(config)
    state = "finished" if result.finished else f"stopped; resume with --run-dir {run_dir}"
    losses = (f"last logged losses: D {last['loss_d']:.3f}, G {last['loss_g']:.3f}"
              if "loss_d" in last and "loss_g" in last else "no losses logged yet")
    print(f"{result.images_shown:,} of {scheduled:,} scheduled images shown ({state}); "
          f"{losses}")
    if result.final_model:
        print(f"model: {result.final_model}")
    return 0


def _cmd_export_run(args: argparse.Namespace) -> int:
    from cxrgan_desktop.engine.training.run import export_checkpoint

    try:
        path = export_checkpoint(args.run_dir, args.out, args.name, args.weights)
    except ValueError as error:
        raise UserError(str(error)) from error
    model = load_model(str(path))
    print(f"{path}: {model.name}, {model.resolution}x{model.resolution}"
          + (" (mid fade-in)" if model.generator.fading else ""))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    runtime.configure_before_torch()
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # argparse's own exit (a bad argument, --help): its code
        return int(stop.code or 0)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_ERROR
    from cxrgan_desktop.cli.progress import JobCancelled
    from cxrgan_desktop.core.fileio import disk_error_message
    from cxrgan_desktop.core.output_lock import OutputFolderError

    try:
        return int(args.func(args))
    except (UserError, OutputFolderError) as error:
        print(f"cxrgan: error: {error}", file=sys.stderr)
        return EXIT_ERROR
    except JobCancelled as stopped:
        print(stopped, file=sys.stderr)
        return EXIT_CANCELLED
    except OSError as error:  # a full or read-only disk: one line, not a traceback
        message = disk_error_message(error)
        if message is None:
            raise
        kept = getattr(error, "cxrgan_kept", None) or KEPT_ON_DISK_ERROR
        print(f"cxrgan: {message} (stopped; {kept})", file=sys.stderr)
        return EXIT_ERROR
    except Exception as error:  # a model failing mid-job (non-finite output): no traceback
        from cxrgan_desktop.core.model_errors import CheckpointError

        if not isinstance(error, CheckpointError):
            raise
        print(f"cxrgan: error: {error}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
