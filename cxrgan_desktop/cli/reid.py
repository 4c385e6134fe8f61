"""``cxrgan reid ...``: train and inspect the patient re-identification embedding that the
memorisation audit uses to ask whether a generated image shows a training patient."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from cxrgan_desktop.cli.common import (
    DefaultsHelpFormatter,
    UserError,
    add_device_option,
    comma_list,
    existing_path,
    path_or_name,
    resolve_device_option,
)


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("reid", help="train and inspect patient re-identification embeddings",
                       description="A network that maps a radiograph to a 128-d vector close "
                       "to those of the same patient's other radiographs (after Packhaeuser "
                       "et al., Sci Rep 2022); the memorisation audit searches training "
                       "images with it.")
    commands = p.add_subparsers(dest="reid_command", metavar="ACTION", required=True)

    t = commands.add_parser(
        "train", help="train a re-identification embedding on images with patient ids",
        description="Train on a folder of images with a ChestX-ray14 Data_Entry CSV (its "
                    "'Patient ID' column; patients need follow-up images): supervised "
                    "contrastive loss over batches of patients, copy-like augmentation, "
                    "patient-wise held-out split. Reports the held-out verification AUROC "
                    "(same patient or not, by cosine similarity) and precision@1, and records "
                    "them in the file. Example: cxrgan reid train --data images/ --labels "
                    "Data_Entry_2017.csv --size 64 --epochs 30 --install reid-64",
        formatter_class=DefaultsHelpFormatter)
    t.add_argument("--data", type=existing_path, required=True,
                   help="image folder (searched recursively)")
    t.add_argument("--labels", type=existing_path,
                   help="ChestX-ray14-style Data_Entry CSV naming each image's patient "
                   "(needed)")
    t.add_argument("--out", type=Path, help="output .safetensors file (with --install and "
                   "without --out: written straight into your re-identification folder)")
    t.add_argument("--install", metavar="NAME", help="also install it under this name, for "
                   "'cxrgan audit --reid NAME'")
    t.add_argument("--force", action="store_true", help="replace an installed model of the "
                   "same name")
    t.add_argument("--size", type=int, default=64, help="pixels the network sees (64 trains "
                   "on a CPU; Packhaeuser et al. used 256 with ResNet-50)")
    t.add_argument("--backbone", default="compact", choices=["compact", "resnet18", "resnet50"],
                   help="compact: a small residual CNN for CPUs; resnet18/resnet50: He et "
                   "al.'s networks, for a GPU")
    t.add_argument("--epochs", type=int, default=30, help="passes over the training patients; "
                   "the last epoch's weights are kept")
    t.add_argument("--patients-per-batch", type=int, default=16, help="patients in a batch")
    t.add_argument("--images-per-patient", type=int, default=4,
                   help="images of each patient in a batch (repeated, augmented, for a "
                   "patient with fewer)")
    t.add_argument("--lr", type=float, default=1e-3, help="AdamW learning rate (cosine decay)")
    t.add_argument("--val-fraction", type=float, default=0.2,
                   help="share of images (whole patients) held out for the figures")
    t.add_argument("--seed", type=int, default=0, help="split, initialisation, sampling and "
                   "augmentation")
    t.add_argument("--view-positions", default="", help="keep only these views, e.g. PA or "
                   "PA,AP (default: all)")
    t.add_argument("--max-images", type=int, help="use the first N images (sorted by path)")
    t.add_argument("--no-augment", action="store_true", help="train without augmentation")
    add_device_option(t)
    t.set_defaults(func=_cmd_train)

    i = commands.add_parser("info", help="what a re-identification file holds",
                            description="Architecture, SHA-256, training data and the held-out "
                            "verification AUROC and precision@1 of a re-identification file "
                            "(a path or an installed name).")
    i.add_argument("file", type=path_or_name, help="a .safetensors file or an installed name")
    i.set_defaults(func=_cmd_info)


def _installed_target(name: str, force: bool) -> Path:
    from cxrgan_desktop.core.names import check_model_name
    from cxrgan_desktop.engine.reid.installed import SUFFIX, reid_dir

    try:
        check_model_name(name)
    except ValueError as error:
        raise UserError(str(error)) from error
    target = reid_dir() / f"{name}{SUFFIX}"
    if target.exists() and not force:
        raise UserError(f"a re-identification model named {name!r} is already installed at "
                        f"{target}; use --force to replace it or choose another name")
    return target


def _figure(value: object) -> str:
    return f"{value:.4f}" if isinstance(value, float) and math.isfinite(value) else "n/a"


def _cmd_train(args: argparse.Namespace) -> int:
    import shutil

    from cxrgan_desktop.cli.progress import run_job
    from cxrgan_desktop.engine.training.dataset import DatasetSpec
    from cxrgan_desktop.tasks.reid import ReidTrainConfig, train_reid

    if args.out is None and args.install is None:
        raise UserError("say where the model goes: --out FILE.safetensors, --install NAME, "
                        "or both")
    target = _installed_target(args.install, args.force) if args.install else None
    try:
        config = ReidTrainConfig(
            input_size=args.size, backbone=args.backbone, epochs=args.epochs,
            patients_per_batch=args.patients_per_batch,
            images_per_patient=args.images_per_patient, lr=args.lr,
            val_fraction=args.val_fraction, seed=args.seed, augment=not args.no_augment)
        spec = DatasetSpec(args.data, args.labels, view_positions=comma_list(args.view_positions),
                           max_images=args.max_images)
    except ValueError as error:
        raise UserError(str(error)) from error
    device = resolve_device_option(args.device)
    out = args.out or target
    assert out is not None
    out.parent.mkdir(parents=True, exist_ok=True)

    def job(progress, cancel):
        return train_reid(spec, out, config, device=device, progress=progress, cancel=cancel)

    try:
        report = run_job(job, None, "", "reid", "nothing was saved (the model is written when "
                         "training ends)")
    except ValueError as error:
        raise UserError(str(error)) from error
    if target is not None and target != out:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(out, target)
    split, held = report.split, report.validation
    print(f"split by patient: {split['train_images']} training images "
          f"({split['train_patients']} patients), {split['val_images']} held-out images "
          f"({split['val_patients']} patients)")
    print(f"model: {report.path}" + (f"; installed as {args.install!r}: {target}"
                                     if target is not None else ""))
    print(f"held-out verification AUROC: {_figure(held.verification_auroc)} "
          f"({held.positive_pairs} same-patient, {held.negative_pairs} different-patient "
          f"pairs; untrained {_figure(report.untrained.verification_auroc)})")
    print(f"held-out precision@1: {_figure(held.precision_at_1)} "
          f"({held.retrieval_queries} images; untrained "
          f"{_figure(report.untrained.precision_at_1)})")
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from cxrgan_desktop.core.names import printable
    from cxrgan_desktop.engine.reid.files import load_reid
    from cxrgan_desktop.engine.reid.installed import resolve_reid

    try:
        path = resolve_reid(args.file)
    except FileNotFoundError as error:
        raise UserError(str(error)) from error
    loaded = load_reid(path)
    spec = loaded.spec

    def record(key: str, default: object = "not recorded") -> str:
        return printable(loaded.provenance.get(key, default))  # the file's words: escaped

    widths = f", widths {list(spec.widths)}" if spec.widths else ""
    print(f"{loaded.path}: re-identification, {spec.backbone}{widths}, {spec.input_size} px, "
          f"{spec.embedding_dim}-d embedding")
    print(f"sha256 {loaded.sha256}")
    print(f"trained on: {record('training_data')} ({record('images')} images of "
          f"{record('patients')} patients, {record('epochs')} epochs)")
    print(f"training data fingerprint: {record('training_data_fingerprint')}")
    held = loaded.provenance.get("validation")
    held = held if isinstance(held, dict) else {}
    print(f"held-out verification AUROC: {_figure(held.get('verification_auroc'))}, "
          f"precision@1: {_figure(held.get('precision_at_1'))} "
          f"({printable(held.get('patients'))} patients, {printable(held.get('images'))} "
          "images)")
    print(f"saved {record('saved')} by cxrgan-desktop {record('code_version')}")
    return 0
