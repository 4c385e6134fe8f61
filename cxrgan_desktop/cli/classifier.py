"""``cxrgan classifier ...``: train, evaluate, import and list the multi-label pathology
classifiers that LCO steers with and judges by."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cxrgan_desktop.cli.common import (
    DefaultsHelpFormatter,
    UserError,
    add_device_option,
    comma_list,
    existing_path,
    load_classifier_option,
    resolve_device_option,
)


def add_parsers(sub: argparse._SubParsersAction) -> None:
    _add_classifier(sub)


def _add_classifier(sub: argparse._SubParsersAction) -> None:
    from cxrgan_desktop.engine.classifier.installed import ARCHITECTURE_NAMES

    p = sub.add_parser("classifier", help="train, evaluate, import and list pathology "
                       "classifiers", description="Multi-label pathology classifiers "
                       "(DenseNet, CheXNet style) for latent class optimisation and as judges.")
    commands = p.add_subparsers(dest="classifier_command", metavar="ACTION", required=True)

    t = commands.add_parser(
        "train", help="train a classifier on labelled images",
        description="Train on a folder of images with a ChestX-ray14 Data_Entry CSV: "
                    "class-balanced BCE, patient-wise validation split (no patient on both "
                    "sides), per-label AUROC report. The images are cached once (shared with "
                    "GAN training). Example: cxrgan classifier train --data images/ --labels "
                    "Data_Entry_2017.csv --arch densenet121 --epochs 10",
        formatter_class=DefaultsHelpFormatter)
    t.add_argument("--data", type=existing_path, required=True,
                   help="image folder (searched recursively)")
    t.add_argument("--labels", type=existing_path, required=True,
                   help="ChestX-ray14-style Data_Entry CSV")
    t.add_argument("--arch", default="densenet121", choices=sorted(ARCHITECTURE_NAMES),
                   help="densenet121: CheXNet's network, for a GPU (on a CPU an epoch of a "
                   "few thousand 256 px images takes hours); densenet-small: 13x fewer "
                   "operations, for CPUs and small images (with --input-size 128)")
    t.add_argument("--input-size", type=int, default=256, help="pixels the classifier sees")
    t.add_argument("--epochs", type=int, default=10, help="passes over the training images; "
                   "the best epoch by validation AUROC is kept")
    t.add_argument("--batch-size", type=int, default=16, help="images per step")
    t.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    t.add_argument("--val-fraction", type=float, default=0.2,
                   help="share of images (whole patients) held out for validation")
    t.add_argument("--seed", type=int, default=0, help="split, initialisation and augmentation")
    t.add_argument("--view-positions", default="", help="keep only these views, e.g. PA or PA,AP")
    t.add_argument("--max-images", type=int, help="use the first N images (sorted by path)")
    t.add_argument("--no-augment", action="store_true", help="train without augmentation")
    t.add_argument("--name", default="classifier", help="name stored in the file")
    t.add_argument("--out", type=Path, help="output .safetensors (default: your classifiers "
                   "folder, NAME.safetensors)")
    add_device_option(t)
    t.set_defaults(func=_cmd_classifier_train)

    e = commands.add_parser(
        "eval", help="per-label AUROC of a classifier on labelled images",
        description="Evaluate a classifier on a labelled folder: AUROC per label with the "
                    "positive and negative counts (n/a where a label has no positives or no "
                    "negatives). Example: cxrgan classifier eval --classifier chexnet --data "
                    "test_images/ --labels Data_Entry_2017.csv --json report.json",
        formatter_class=DefaultsHelpFormatter)
    e.add_argument("--classifier", required=True, help="classifier file or installed name")
    e.add_argument("--data", type=existing_path, required=True, help="image folder (searched "
                   "recursively)")
    e.add_argument("--labels", type=existing_path, required=True,
                   help="ChestX-ray14-style Data_Entry CSV for those images")
    e.add_argument("--view-positions", default="", help="keep only these views, e.g. PA or "
                   "PA,AP (default: all)")
    e.add_argument("--max-images", type=int, help="use the first N images (sorted by path)")
    e.add_argument("--json", type=Path, help="also write the report as JSON here")
    add_device_option(e)
    e.set_defaults(func=_cmd_classifier_eval)

    i = commands.add_parser(
        "import", help="install a classifier (native or CheXNet-style checkpoint)",
        description="Check a classifier file and install it in your classifiers folder as a "
                    "native .safetensors. CheXNet-style PyTorch checkpoints (a DenseNet-121 "
                    "with a 14-finding head, e.g. model.pth.tar) are read without running "
                    "any code from the file.")
    i.add_argument("file", type=existing_path, help="a .safetensors classifier or a CheXNet-style "
                   "checkpoint")
    i.add_argument("--name", help="installed name (default: the file's stem)")
    i.add_argument("--force", action="store_true", help="replace one of the same name")
    i.set_defaults(func=_cmd_classifier_import)

    s = commands.add_parser("list", help="list installed classifiers",
                            description="The classifiers in your classifiers folder with "
                            "their labels, input size and validation AUROC, naming the "
                            "findings each cannot read (no positive training images, or AUROC "
                            "below the floor).")
    s.set_defaults(func=_cmd_classifier_list)


def _dataset_spec(args: argparse.Namespace):
    from cxrgan_desktop.engine.training.dataset import DatasetSpec

    try:
        return DatasetSpec(args.data, args.labels, view_positions=comma_list(args.view_positions),
                           max_images=args.max_images)
    except ValueError as error:
        raise UserError(str(error)) from error


def _cmd_classifier_train(args: argparse.Namespace) -> int:
    from cxrgan_desktop.cli.progress import run_job
    from cxrgan_desktop.core.jobs import sub_progress
    from cxrgan_desktop.engine.classifier.data import labelled_images
    from cxrgan_desktop.engine.classifier.installed import SUFFIX, classifiers_dir
    from cxrgan_desktop.engine.classifier.training import ClassifierTrainConfig, train_classifier

    try:
        config = ClassifierTrainConfig(
            name=args.name, architecture=args.arch, input_size=args.input_size,
            epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
            val_fraction=args.val_fraction, seed=args.seed, augment=not args.no_augment)
    except ValueError as error:
        raise UserError(str(error)) from error
    spec = _dataset_spec(args)
    device = resolve_device_option(args.device)
    if device.type == "cpu" and config.architecture == "densenet121":
        print(f"note: densenet121 at {config.input_size} px is a GPU network; on this CPU "
              "expect hours per epoch. For a CPU: --arch densenet-small --input-size 128 "
              "(13x fewer operations)", file=sys.stderr)
    out = args.out or classifiers_dir() / f"{args.name}{SUFFIX}"
    out.parent.mkdir(parents=True, exist_ok=True)

    def job(progress, cancel):
        data = labelled_images(spec, config.labels, config.input_size,
                               progress=sub_progress(progress, 0.0, 0.1), cancel=cancel)
        return train_classifier(config, data, out, device=device,
                                progress=sub_progress(progress, 0.1, 1.0), cancel=cancel)

    try:
        report = run_job(job, None, "", "classifier", "nothing was saved (the classifier is "
                         "written when training ends)")
    except ValueError as error:
        raise UserError(str(error)) from error
    split = report.split
    print(f"split by patient: {split['train_images']} training images "
          f"({split['train_patients']} patients), {split['val_images']} validation images "
          f"({split['val_patients']} patients); best epoch {report.best_epoch}")
    print(report.validation.table())
    print(f"classifier: {report.path}")
    return 0


def _cmd_classifier_eval(args: argparse.Namespace) -> int:
    import numpy as np

    from cxrgan_desktop.cli.progress import run_job
    from cxrgan_desktop.core.fileio import atomic_write_json
    from cxrgan_desktop.core.jobs import sub_progress
    from cxrgan_desktop.engine.classifier.data import labelled_images
    from cxrgan_desktop.engine.classifier.training import evaluate
    from cxrgan_desktop.labels.chestxray14 import FINDINGS

    loaded = load_classifier_option(args.classifier)
    classifier = loaded.classifier
    spec = _dataset_spec(args)
    device = resolve_device_option(args.device)
    names = tuple(n for n in classifier.labels if n in FINDINGS)
    if not names:
        raise UserError(f"{loaded.path}: none of the classifier's labels "
                          f"({', '.join(classifier.labels)}) is a ChestX-ray14 finding")

    def job(progress, cancel):
        data = labelled_images(spec, names, classifier.input_size,
                               progress=sub_progress(progress, 0.0, 0.2), cancel=cancel)
        return evaluate(classifier.to(device), data, np.arange(len(data)), device,
                        progress=sub_progress(progress, 0.2, 1.0), cancel=cancel)

    try:
        report = run_job(job, None, "", "evaluate", "nothing was written")
    except ValueError as error:
        raise UserError(str(error)) from error
    print(f"{loaded.name} (sha256 {loaded.sha256[:16]}...) on {report.images} images")
    print(report.table())
    if args.json:
        atomic_write_json(args.json, {"classifier": {"name": loaded.name,
                                                     "sha256": loaded.sha256},
                                      "data": str(args.data), **report.to_json()})
        print(f"report: {args.json}")
    return 0


def _cmd_classifier_import(args: argparse.Namespace) -> int:
    from cxrgan_desktop.engine.classifier.files import save_classifier
    from cxrgan_desktop.engine.classifier.installed import SUFFIX, classifiers_dir

    loaded = load_classifier_option(str(args.file))
    name = args.name or args.file.name.split(".")[0]
    target = classifiers_dir() / f"{name}{SUFFIX}"
    if target.exists() and not args.force:
        raise UserError(f"a classifier named {name!r} is already installed at {target}; use "
                          "--force to replace it or --name to choose another name")
    target.parent.mkdir(parents=True, exist_ok=True)
    save_classifier(target, loaded.classifier, name, loaded.provenance)
    spec = loaded.classifier.spec
    print(f"{args.file}: {spec.architecture}, {len(spec.labels)} labels, input "
          f"{spec.input_size} px, {spec.in_channels} channel(s); sha256 {loaded.sha256}")
    print(f"installed as {name!r}: {target}")
    return 0


def _cmd_classifier_list(args: argparse.Namespace) -> int:
    from cxrgan_desktop.engine.checkpoints import CheckpointError
    from cxrgan_desktop.engine.classifier.files import load_classifier
    from cxrgan_desktop.engine.classifier.installed import (
        card_from_provenance,
        classifiers_dir,
        installed_classifiers,
        is_bundled_classifier,
    )

    print(f"Installed classifiers ({classifiers_dir()}):")
    files = installed_classifiers()
    for path in files:
        try:
            loaded = load_classifier(path)
        except CheckpointError as error:
            print(f"  {path.stem}: unusable ({error.problem})")
            continue
        spec = loaded.classifier.spec
        auc = loaded.provenance.get("validation", {}).get("mean_auroc")
        auc_text = f", validation mean AUROC {auc:.3f}" if isinstance(auc, float) else ""
        bundled = " [bundled demo: phantom data, not clinical]" \
            if is_bundled_classifier(path) else ""
        print(f"  {path.stem}: {spec.architecture}, {len(spec.labels)} labels, "
              f"{spec.input_size} px{auc_text}{bundled}")
        unreadable = card_from_provenance(spec.labels, loaded.provenance).unreadable()
        if unreadable:
            print(f"    cannot read (not offered for LCO): {', '.join(unreadable)}")
    if not files:
        print("  none yet: 'cxrgan classifier train' or 'cxrgan classifier import FILE'")
    return 0
