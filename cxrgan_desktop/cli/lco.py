"""``cxrgan classifier ...``, ``cxrgan lco`` and ``cxrgan archive``: pathology classifiers and
labelled sampling by latent class optimisation, from the command line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from cxrgan_desktop.cli.common import (
    DefaultsHelpFormatter,
    UserError,
    add_device_option,
    existing_path,
    load_model,
    resolve_device_option,
)


def add_parsers(sub: argparse._SubParsersAction) -> None:
    _add_classifier(sub)
    _add_lco(sub)


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


def _add_lco_options(p: argparse.ArgumentParser) -> None:
    from cxrgan_desktop.engine.classifier.installed import AUROC_FLOOR

    p.add_argument("--model", help="generator file or installed name (default: the first "
                   "installed model, else the bundled demo-phantom-64)")
    p.add_argument("--classifier", help="classifier file or installed name (default: the "
                   "first installed classifier, else the bundled demo-phantom-64-classifier)")
    p.add_argument("--judge", help="a second, independently trained classifier: reports "
                   "whether it agrees (a guard against images that fool only the first)")
    p.add_argument("--threshold", type=float, default=0.5, help="probability a present label "
                   "must reach and an absent one must stay below, unless one of the next two "
                   "sets that side")
    p.add_argument("--present-threshold", type=float, metavar="P",
                   help="probability a present label must reach (e.g. 0.9: clearly there; "
                   "default: --threshold)")
    p.add_argument("--absent-threshold", type=float, metavar="P",
                   help="probability an absent label must stay below (e.g. 0.3: clearly not "
                   "there; default: --threshold)")
    p.add_argument("--thresholds", default="", metavar="LABEL=P,...",
                   help="per-label thresholds, e.g. Pneumothorax=0.7 (default: none)")
    p.add_argument("--allow-unreliable", action="store_true",
                   help="ask for findings the classifier's card says it cannot read (no "
                   f"positive training images, or validation AUROC below {AUROC_FLOOR}); refused "
                   "without this")
    p.add_argument("--n", type=int, default=16, help="number of samples")
    p.add_argument("--seed", type=int, default=0, help="sample k's first latent is image k of "
                   "'cxrgan generate --seed SEED'")
    p.add_argument("--steps", type=int, default=200, help="Adam steps per attempt")
    p.add_argument("--lr", type=float, default=0.03, help="Adam learning rate on z")
    p.add_argument("--prior-weight", type=float, default=1.0,
                   help="weight of the prior keeping |z| typical for N(0, I)")
    p.add_argument("--restarts", type=int, default=2, help="new latents tried after a failure")
    p.add_argument("--batch-size", type=int, default=8, help="samples optimised together")
    p.add_argument("--format", default="png16", choices=["png16", "dicom"], dest="image_format",
                   help="png16: 16-bit PNG with a JSON record beside each image; dicom: "
                   "Secondary Capture marked synthetic, with the same record")
    p.add_argument("--out", type=Path, required=True, help="archive folder; an existing one "
                   "made with the same settings is continued")
    add_device_option(p)


def _add_lco(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "lco", help="synthesise images with chosen findings (latent class optimisation)",
        description="Optimise latent vectors so that the classifier reads the requested "
                    "findings; write accepted images, a per-image JSON (z, seed, target, "
                    "probabilities, judge) and a Data_Entry CSV. Resumable. Example: cxrgan "
                    "lco --model G --classifier C --labels Cardiomegaly,Effusion --absent "
                    "Pneumothorax --n 100 --out lco/",
        formatter_class=DefaultsHelpFormatter)
    p.add_argument("--labels", default="", help="findings requested present, comma-separated")
    p.add_argument("--absent", default="", help="findings requested absent, comma-separated")
    _add_lco_options(p)
    p.set_defaults(func=_cmd_lco)

    a = sub.add_parser(
        "archive", help="fill a label distribution with LCO images",
        description="Draw each image's label set from a distribution (a Data_Entry CSV's own "
                    "prevalence and co-occurrence, or 'chestxray14' for the statistics that "
                    "ship with this program), and ask LCO for those findings present and all "
                    "others absent. Resumable. Example: cxrgan archive --model G --classifier "
                    "C --distribution Data_Entry_2017.csv --n 1000 --out archive/",
        formatter_class=DefaultsHelpFormatter)
    a.add_argument("--distribution", required=True, help="a Data_Entry CSV, or 'chestxray14'")
    _add_lco_options(a)
    a.set_defaults(func=_cmd_archive)


def _names(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _thresholds(text: str) -> tuple[tuple[str, float], ...]:
    pairs = []
    for part in _names(text):
        name, _, value = part.partition("=")
        try:
            pairs.append((name.strip(), float(value)))
        except ValueError:
            raise UserError(f"--thresholds expects LABEL=P pairs, got {part!r}") from None
    return tuple(pairs)


def _load_classifier(name_or_path: str | None):
    """A classifier by file or installed name; None means the default (the first installed,
    else the bundled demo), so that LCO runs offline on a fresh install."""
    from cxrgan_desktop.engine.checkpoints import CheckpointError
    from cxrgan_desktop.engine.classifier.files import load_classifier
    from cxrgan_desktop.engine.classifier.installed import default_classifier, resolve_classifier

    if name_or_path is None:
        path = default_classifier()
        if path is None:
            raise UserError("no --classifier given and none is installed: train one with "
                            "'cxrgan classifier train' or install one with 'cxrgan "
                            "classifier import FILE'")
    else:
        try:
            path = resolve_classifier(name_or_path)
        except FileNotFoundError as error:
            raise UserError(str(error)) from error
    try:
        return load_classifier(path)
    except (CheckpointError, FileNotFoundError) as error:
        raise UserError(str(error)) from error


def _dataset_spec(args: argparse.Namespace):
    from cxrgan_desktop.engine.training.dataset import DatasetSpec

    try:
        return DatasetSpec(args.data, args.labels, view_positions=_names(args.view_positions),
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

    loaded = _load_classifier(args.classifier)
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

    loaded = _load_classifier(str(args.file))
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


def _side_thresholds(args: argparse.Namespace) -> tuple[float, float]:
    """(present threshold, absent threshold): each side's option, else --threshold (an
    LCOTarget with the two equal records as before they were separated)."""
    present = args.threshold if args.present_threshold is None else args.present_threshold
    absent = args.threshold if args.absent_threshold is None else args.absent_threshold
    return present, absent


def _refuse_unreliable(args: argparse.Namespace, classifier: Any, plan: Any) -> None:
    """Refuse (or, with --allow-unreliable, warn about) requested findings the classifier's
    card says it cannot read: their labels on the images would be unchecked guesses."""
    from cxrgan_desktop.engine.classifier.installed import AUROC_FLOOR, card_from_provenance

    reasons = card_from_provenance(classifier.labels, classifier.provenance).unreadable()
    asked = [n for n in classifier.labels if n in reasons
             and any(n in t.specified for t in dict.fromkeys(plan.targets))]
    if not asked:
        return
    listed = "; ".join(f"{n}: {reasons[n]}" for n in asked)
    if not args.allow_unreliable:
        raise UserError(f"classifier {classifier.name} cannot read {', '.join(asked)} ({listed}; "
                        f"AUROC floor {AUROC_FLOOR}). Leave them out, or pass "
                        "--allow-unreliable to ask anyway")
    print(f"warning: classifier {classifier.name} cannot read {listed}; asked anyway "
          "(--allow-unreliable)", file=sys.stderr)


def _settings(args: argparse.Namespace):
    from cxrgan_desktop.engine.lco import LCOSettings

    try:
        return LCOSettings(steps=args.steps, learning_rate=args.lr,
                           prior_weight=args.prior_weight, restarts=args.restarts,
                           batch_size=args.batch_size)
    except ValueError as error:
        raise UserError(str(error)) from error


def _run_archive(args: argparse.Namespace, make_plan: Any) -> int:
    from cxrgan_desktop.cli.progress import run_job
    from cxrgan_desktop.tasks.archive import MANIFEST_NAME, build_archive

    settings = _settings(args)
    if args.n < 1:
        raise UserError("--n must be at least 1")
    model = load_model(args.model)
    classifier = _load_classifier(args.classifier)
    judge = _load_classifier(args.judge) if args.judge else None
    device = resolve_device_option(args.device)
    try:
        plan = make_plan(classifier.labels)
    except ValueError as error:
        raise UserError(str(error)) from error
    _refuse_unreliable(args, classifier, plan)
    print(f"model {model.name} ({model.resolution} px), classifier {classifier.name}"
          + (f", judge {judge.name}" if judge else "") + f" on {device}: {plan.description}",
          file=sys.stderr)
    try:
        summary = run_job(lambda progress, cancel: build_archive(
            model, classifier, plan, args.out, settings=settings, judge_classifier=judge,
            image_format=args.image_format, device=str(device), progress=progress,
            cancel=cancel), None, "", "lco",
            f"finished images are in {args.out}; run the same command again to continue")
    except ValueError as error:
        raise UserError(str(error)) from error
    manifest = json.loads((args.out / MANIFEST_NAME).read_text(encoding="utf-8"))
    print(f"{summary.accepted} of {summary.requested} accepted, {summary.failed} failed after "
          f"{settings.restarts + 1} attempts; classifier evaluations per accepted image: "
          f"{manifest['classifier_evaluations_per_accepted']}; mean image change "
          f"{manifest['mean_image_change']}")
    if summary.judge_agreement is not None:
        print(f"judge agrees on {100 * summary.judge_agreement:.1f} % of accepted images")
    for remark in summary.advice.remarks if summary.advice else ():
        print(f"advice: {remark}")
    print(f"archive: {args.out} (labels: {manifest['labels_csv']})")
    return 0


def _cmd_lco(args: argparse.Namespace) -> int:
    from cxrgan_desktop.engine.lco import LCOTarget
    from cxrgan_desktop.tasks.archive import repeated_target

    def plan(labels: tuple[str, ...]):
        present, absent = _side_thresholds(args)
        target = LCOTarget(_names(args.labels), _names(args.absent), present,
                           _thresholds(args.thresholds), absent)
        target.check_labels(labels)
        return repeated_target(target, args.n, args.seed)

    return _run_archive(args, plan)


def _cmd_archive(args: argparse.Namespace) -> int:
    from cxrgan_desktop.labels.chestxray14 import read_data_entry_csv
    from cxrgan_desktop.labels.distribution import LabelDistribution
    from cxrgan_desktop.tasks.archive import distribution_plan

    if args.thresholds:
        raise UserError("--thresholds applies to 'cxrgan lco'; an archive uses --threshold "
                        "(or --present-threshold and --absent-threshold)")

    def plan(labels: tuple[str, ...]):
        if args.distribution == "chestxray14":
            distribution = LabelDistribution.chestxray14()
            source = "ChestX-ray14 (statistics shipped with cxrgan-desktop)"
        else:
            path = Path(args.distribution)
            if not path.is_file():
                raise ValueError(f"{path}: no such label file (give a Data_Entry CSV or "
                                 "'chestxray14')")
            entries = read_data_entry_csv(path)
            distribution = LabelDistribution.from_label_sets(
                [e.findings for e in entries], source=path.name)
            source = f"{path.name} ({len(entries)} rows)"
        present, absent = _side_thresholds(args)
        return distribution_plan(distribution, args.n, args.seed, labels, present, source,
                                 absent)

    return _run_archive(args, plan)
