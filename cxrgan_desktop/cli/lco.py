"""``cxrgan lco`` and ``cxrgan archive``: labelled sampling by latent class optimisation, from
the command line (one image set with chosen findings, or an archive filling a label
distribution)."""

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
    comma_list,
    load_classifier_option,
    load_model,
    resolve_device_option,
)
from cxrgan_desktop.cli.generate import add_truncation_option, truncation_value


def add_parsers(sub: argparse._SubParsersAction) -> None:
    _add_lco(sub)


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
    p.add_argument("--exclude-flagged", metavar="AUDIT", help="a memorisation audit (its "
                   "folder or audit.csv, from `cxrgan audit`): accepted images whose pixels it "
                   "flagged are excluded, those already in the archive and new ones: their "
                   "files are deleted (their records keep the latent, and say "
                   "excluded_by_audit), they leave the CSV, and they are not replaced (a "
                   "replacement would not have been audited). Run it on the finished archive: "
                   "same command, same --out, plus this option")
    add_truncation_option(p, "archive.json, every item's record and manifest.json; applied "
                          "inside the optimisation, so the classifier reads the truncated "
                          "images; part of what a continued archive must repeat")
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


def _thresholds(text: str) -> tuple[tuple[str, float], ...]:
    pairs = []
    for part in comma_list(text):
        name, _, value = part.partition("=")
        try:
            pairs.append((name.strip(), float(value)))
        except ValueError:
            raise UserError(f"--thresholds expects LABEL=P pairs, got {part!r}") from None
    return tuple(pairs)


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
    truncation = truncation_value(args.truncation)
    if args.n < 1:
        raise UserError("--n must be at least 1")
    flagged = None
    if args.exclude_flagged:  # a damaged or edited audit is refused before any work
        from cxrgan_desktop.tasks.audit_file import AuditFileError, read_flagged

        try:
            flagged = read_flagged(args.exclude_flagged)
        except AuditFileError as error:
            raise UserError(str(error)) from error
    model = load_model(args.model)
    classifier = load_classifier_option(args.classifier)
    judge = load_classifier_option(args.judge) if args.judge else None
    device = resolve_device_option(args.device)
    try:
        plan = make_plan(classifier.labels)
    except ValueError as error:
        raise UserError(str(error)) from error
    _refuse_unreliable(args, classifier, plan)
    print(f"model {model.name} ({model.resolution} px), classifier {classifier.name}"
          + (f", judge {judge.name}" if judge else "") + f" on {device}: {plan.description}"
          + ("" if truncation == 1.0 else f", truncation psi {truncation:g}"),
          file=sys.stderr)
    try:
        summary = run_job(lambda progress, cancel: build_archive(
            model, classifier, plan, args.out, settings=settings, judge_classifier=judge,
            image_format=args.image_format, device=str(device), progress=progress,
            cancel=cancel, exclude=flagged, truncation=truncation), None, "", "lco",
            f"finished images are in {args.out}; run the same command again to continue")
    except ValueError as error:
        raise UserError(str(error)) from error
    manifest = json.loads((args.out / MANIFEST_NAME).read_text(encoding="utf-8"))
    print(f"{summary.accepted} of {summary.requested} accepted, {summary.failed} failed after "
          f"{settings.restarts + 1} attempts; classifier evaluations per accepted image: "
          f"{manifest['classifier_evaluations_per_accepted']}; mean image change "
          f"{manifest['mean_image_change']}")
    section = manifest.get("exclude_flagged")
    if section:
        print(f"excluded by the memorisation audit: {section['excluded']} accepted image(s) "
              f"(items {', '.join(map(str, section['excluded_items'])) or 'none'}); "
              f"replacements: {section['replacements']}")
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
        target = LCOTarget(comma_list(args.labels), comma_list(args.absent), present,
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
