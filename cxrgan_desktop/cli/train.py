"""``cxrgan train`` and ``export-run``: progressive training (also under torchrun) and
saving a run's generator as a model."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from cxrgan_desktop.cli.common import (
    DefaultsHelpFormatter,
    UserError,
    add_device_option,
    existing_path,
    load_model,
    path_or_name,
)

EXIT_ERROR, EXIT_CANCELLED = 2, 130
KEPT_ON_DISK_ERROR = "files written before are whole; none is left half-written"


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be at least 0 and below 1, got {text}")
    return value


def add_parsers(sub: argparse._SubParsersAction) -> None:
    _add_train(sub)


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
    p.add_argument("--hold-out-patients", type=_fraction, metavar="FRACTION",
                   help="keep this fraction of the training folder's images out of training, "
                   "as whole patients (from the labels CSV's Patient ID, else from "
                   "ChestX-ray14 file names), and list them in the run folder's "
                   "held_out.json. Why: the memorisation audit (cxrgan audit --held-out "
                   "RUN_DIR) calibrates how close a generated image may come to a training "
                   "image by how close real patients the generator never saw come; 0.1 is a "
                   "usual choice. A resumed run needs the same value. Default: the config's "
                   "hold_out_fraction (0: train on every image)")
    p.add_argument("--hold-out-seed", type=int, metavar="S",
                   help="seed of the choice of held-out patients (same seed and folder: same "
                   "patients). Default: the config's hold_out_seed (0)")
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


def _cmd_train(args: argparse.Namespace) -> int:
    from cxrgan_desktop.cli.progress import run_job
    from cxrgan_desktop.core.jobs import no_progress
    from cxrgan_desktop.engine.checkpoints import CheckpointError
    from cxrgan_desktop.engine.devices import DeviceError
    from cxrgan_desktop.engine.training import distributed
    from cxrgan_desktop.engine.training.config import load_config, total_images
    from cxrgan_desktop.tasks.train import new_run_dir, run_training

    try:
        config = load_config(args.config)
        overrides = {}
        if args.data or args.labels:
            overrides["data"] = dataclasses.replace(
                config.data, image_dir=str(args.data or config.data.image_dir),
                labels_csv=str(args.labels or config.data.labels_csv))
        if args.init_from:
            overrides["init_from"] = str(args.init_from)
        if args.hold_out_patients is not None:
            overrides["hold_out_fraction"] = args.hold_out_patients
        if args.hold_out_seed is not None:
            overrides["hold_out_seed"] = args.hold_out_seed
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
    from cxrgan_desktop.tasks.train import export_checkpoint

    try:
        path = export_checkpoint(args.run_dir, args.out, args.name, args.weights)
    except ValueError as error:
        raise UserError(str(error)) from error
    model = load_model(str(path))
    print(f"{path}: {model.name}, {model.resolution}x{model.resolution}"
          + (" (mid fade-in)" if model.generator.fading else ""))
    return 0
