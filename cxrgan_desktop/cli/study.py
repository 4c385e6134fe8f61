"""``cxrgan study ...``: build, audit, score and analyse blinded reader studies."""

from __future__ import annotations

import argparse
import zipfile
from pathlib import Path

from cxrgan_desktop.cli.common import (
    DefaultsHelpFormatter,
    UserError,
    add_device_option,
    resolve_device_option,
)
from cxrgan_desktop.cli.generate import add_truncation_option, truncation_value

STUDY_EXAMPLES = """workflow:
  cxrgan study build --real real/ --model segal2020 --n-real 50 --n-synthetic 50 --out study/
      -> study/study.cxrstudy (give to readers) and study/study.key.json (keep)
  (readers open study.cxrstudy in cxrgan-desktop; their session files come back to you)
  cxrgan study score study/study.key.json sessions/*.session.json --out results.csv
  cxrgan study analyse results.csv --key study/study.key.json --out analysis/
"""


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("study", help="blinded real-vs-synthetic reader studies",
                       description="Build a blinded reader study, audit it for leaks, score "
                       "readers' sessions and analyse the answers.", epilog=STUDY_EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = p.add_subparsers(dest="study_command", metavar="ACTION", required=True)

    b = actions.add_parser("build", help="make a study package and its answer key",
                           description="Draw real and synthetic images, pass them all "
                           "through one pipeline (bit depth, square crop, size, contrast), "
                           "write the package for readers and the answer key for you, and "
                           "audit the package for leaks; a package that fails the audit is "
                           "not written unless --force. Example: cxrgan study build --real "
                           "real/ --model segal2020-pggan-cxr14 --n-real 50 --n-synthetic 50 "
                           "--practice 2 --out study/",
                           formatter_class=DefaultsHelpFormatter)
    b.add_argument("--real", nargs="+", required=True, help="folders or files of real images")
    source = b.add_mutually_exclusive_group(required=True)
    source.add_argument("--synthetic", nargs="+", help="folders or files of synthetic images "
                        "(an LCO archive's findings go into the key)")
    source.add_argument("--model", help="draw synthetic images from this model")
    b.add_argument("--n-real", type=int, required=True, help="real images readers rate "
                   "(practice cases come on top)")
    b.add_argument("--n-synthetic", type=int, required=True, help="synthetic images readers "
                   "rate")
    b.add_argument("--seed", type=int, default=0, help="decides which source images are "
                   "drawn and a model's latents (the same plan and seed choose the same "
                   "images); case ids, which case is which and the order come from the "
                   "operating system's randomness and are kept only in the key")
    b.add_argument("--exclude-flagged", metavar="AUDIT", default="",
                   help="a memorisation audit (its folder or audit.csv, from `cxrgan audit`): "
                   "synthetic images it flagged (recognised by their pixels, so also when "
                   "renamed or re-saved) are never drawn; the next ones of the same seeded "
                   "draw take their place. Recorded in the answer key only, never in the "
                   "package. Example: --exclude-flagged audit/")
    add_truncation_option(b, "the answer key (with --model only; the package does not say)")
    b.add_argument("--readers", type=int, default=0, help="readers you plan for (recorded "
                   "in the key; scoring warns when sessions are missing); 0: not said")
    b.add_argument("--practice", type=int, default=0,
                   help="practice cases per class (shown with feedback, never scored)")
    b.add_argument("--size", type=int, default=1024, help="image size in the package (px)")
    b.add_argument("--bit-depth", type=int, default=8, choices=[8, 10, 12, 16],
                   help="grey levels every image is quantised to (ChestX-ray14 is 8 bit)")
    b.add_argument("--lock-window", action="store_true", help="readers cannot change "
                   "window/level")
    b.add_argument("--allow-back", action="store_true", help="readers may revise answers")
    b.add_argument("--scale", help="rating labels, comma-separated, from most 'real' to most "
                   "'synthetic' (an even number; default: six points)")
    b.add_argument("--title", default="Real or synthetic?", help="shown to readers")
    b.add_argument("--no-practice-feedback", action="store_true", help="do not tell readers "
                   "the truth after each practice image")
    b.add_argument("--instructions", type=Path, help="a text file shown before the study")
    b.add_argument("--name", default="study", help="file name stem of package and key")
    b.add_argument("--force", action="store_true", help="write the package even when the "
                   "leak audit fails (it is removed otherwise); the failures stay in the "
                   "output")
    b.add_argument("--out", type=Path, required=True, help="folder for the package and the "
                   "key (created if needed)")
    add_device_option(b)
    b.set_defaults(func=cmd_build)

    a = actions.add_parser("audit", help="check a package for anything that tells the "
                           "classes apart besides the pixels",
                           description="Run the leak audit on a package with its key: names, "
                           "sizes, headers, timestamps, order, pixel statistics, source "
                           "resolution and a replay of seeded draws, plus the package's "
                           "SHA-256 against the key's. Exit 0 when it passes, 1 when it "
                           "fails. Example: cxrgan study audit study/study.cxrstudy "
                           "study/study.key.json")
    a.add_argument("package", type=Path, help="the study's .cxrstudy")
    a.add_argument("key", type=Path, help="its .key.json")
    a.set_defaults(func=cmd_audit)

    s = actions.add_parser("score", help="join readers' sessions with the key: results.csv",
                           description="Check each reader's session file against the key "
                           "(study, package hash, cases, ratings on the scale, reading times) "
                           "and write the long results table, one row per reader and case. "
                           "A file that fails names itself and the answer; nothing is "
                           "written then. Example: cxrgan study score study/study.key.json "
                           "sessions/*/*.session.json --out results.csv")
    s.add_argument("key", type=Path, help="the study's .key.json")
    s.add_argument("sessions", nargs="+", type=Path, help="readers' .session.json files")
    s.add_argument("--out", type=Path, default=Path("results.csv"), help="the results table "
                   "(default: results.csv)")
    s.set_defaults(func=cmd_score)

    n = actions.add_parser("analyse", help="statistics from results.csv (from any source)",
                           description="Per reader and pooled: accuracy with an exact "
                           "interval, a binomial test against chance, sensitivity and "
                           "specificity, ROC AUC with its interval, reading time; kappa across "
                           "readers; a per-finding breakdown with --key; exports for MRMCaov "
                           "and iMRMC. Example: cxrgan study analyse results.csv --key "
                           "study/study.key.json --out analysis/ --plots")
    n.add_argument("results", type=Path, help="results.csv: reader,case,truth,rating,"
                   "answer,seconds (from study score, or from anywhere else)")
    n.add_argument("--key", type=Path, help="the key, for a per-finding breakdown")
    n.add_argument("--out", type=Path, default=Path("analysis"), help="folder for the "
                   "summary, report and exports (default: analysis)")
    n.add_argument("--plots", action="store_true", help="also draw the ROC and accuracy "
                   "plots (PNG and PDF; needs no display)")
    n.set_defaults(func=cmd_analyse)

    m = actions.add_parser("simulate", help="sessions of simulated readers, to try the "
                           "analysis before real readers take the study",
                           description="Write session files of simulated readers (an "
                           "equal-variance signal-detection model with the given d') so that "
                           "scoring and analysis can be tried before real readers take the "
                           "study. Never mix them with real sessions. Example: cxrgan study "
                           "simulate study/study.cxrstudy study/study.key.json --readers 6 "
                           "--out sessions/",
                           formatter_class=DefaultsHelpFormatter)
    m.add_argument("package", type=Path, help="the study's .cxrstudy")
    m.add_argument("key", type=Path, help="its .key.json")
    m.add_argument("--readers", type=int, default=6, help="simulated readers")
    m.add_argument("--d-prime", type=float, default=0.9, help="how well they tell the classes "
                   "apart (0: guessing)")
    m.add_argument("--seed", type=int, default=0, help="seed of the simulated ratings")
    m.add_argument("--out", type=Path, required=True, help="folder for the session files")
    m.set_defaults(func=cmd_simulate)


def _settings(args: argparse.Namespace):
    from cxrgan_desktop.study.design import DEFAULT_INSTRUCTIONS, RatingScale, StudySettings

    try:
        scale = RatingScale(tuple(s.strip() for s in args.scale.split(","))) if args.scale \
            else RatingScale()
        instructions = (args.instructions.read_text(encoding="utf-8") if args.instructions
                        else DEFAULT_INSTRUCTIONS)
        return StudySettings(title=args.title, instructions=instructions,
                             image_size=args.size, bit_depth=args.bit_depth,
                             window_locked=args.lock_window, allow_back=args.allow_back,
                             practice_feedback=not args.no_practice_feedback, scale=scale)
    except (ValueError, OSError) as error:
        raise UserError(str(error)) from error


def cmd_build(args: argparse.Namespace) -> int:
    from cxrgan_desktop.tasks.study_build import (
        AuditFailed,
        StudyPlan,
        build_study,
        check_sources_exist,
    )

    try:
        plan = StudyPlan(args.real, args.n_real, args.n_synthetic,
                         synthetic=args.synthetic or [], model=args.model, seed=args.seed,
                         practice=args.practice, settings=_settings(args),
                         readers=args.readers, exclude_flagged=str(args.exclude_flagged),
                         truncation=truncation_value(args.truncation))
        check_sources_exist(plan)
        if plan.exclude_flagged:  # a damaged or edited audit is refused before any work
            from cxrgan_desktop.tasks.audit_file import read_flagged

            read_flagged(plan.exclude_flagged)
    except ValueError as error:  # AuditFileError is one
        raise UserError(str(error)) from error
    from cxrgan_desktop.cli.progress import run_job
    from cxrgan_desktop.engine.checkpoints import CheckpointError
    from cxrgan_desktop.store import zoo

    try:
        plan.device = str(resolve_device_option(args.device)) if plan.model else "cpu"
        result = run_job(lambda progress, cancel: build_study(
            plan, args.out, args.name, progress, cancel, force=args.force), None, "",
            "building", "nothing usable was written")
    except AuditFailed as failed:
        print(failed.report.text())
        print("the leak audit FAILED: no package was written (fix the sources, or --force "
              "to write it anyway for inspection)")
        return 1
    except (ValueError, zoo.ModelNotFoundError, CheckpointError) as error:
        raise UserError(str(error)) from error
    print(result.audit.text())
    print(f"package (give to readers): {result.package}")
    print(f"answer key (keep; never send): {result.key}")
    for problem in result.skipped:
        print(f"skipped: {problem}")
    if result.exclusion is not None:
        print(f"memorisation audit {result.exclusion['audit_csv']}: "
              f"{len(result.excluded)} flagged synthetic image(s) left out of the draw and "
              "replaced by the next unflagged ones (recorded in the answer key only)")
    if not result.audit.passed:
        print("the leak audit FAILED: do not hand out this package")
        return 1
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    from cxrgan_desktop.study.key import AnswerKeyError, read_key
    from cxrgan_desktop.study.leak_audit import audit_package, hash_check

    try:
        key = read_key(args.key)
        report = audit_package(args.package, key)
        report.checks.insert(0, hash_check(args.package, key))
    except (AnswerKeyError, OSError, ValueError, zipfile.BadZipFile, KeyError) as error:
        raise UserError(str(error)) from error
    print(report.text())
    return 0 if report.passed else 1


def cmd_score(args: argparse.Namespace) -> int:
    from cxrgan_desktop.study.key import AnswerKeyError, read_key
    from cxrgan_desktop.study.results_table import write_results
    from cxrgan_desktop.study.scoring import score_sessions
    from cxrgan_desktop.study.session import SessionError, load_session

    try:
        scored = score_sessions(read_key(args.key), [load_session(p) for p in args.sessions])
    except (AnswerKeyError, SessionError) as error:
        raise UserError(str(error)) from error
    write_results(args.out, scored.rows)
    for warning in scored.warnings:
        print(f"warning: {warning}")
    readers = len({r.reader for r in scored.rows})
    print(f"wrote {args.out}: {len(scored.rows)} answers from {readers} reader(s)")
    return 0


def cmd_analyse(args: argparse.Namespace) -> int:
    from cxrgan_desktop.study.analysis import analyse, report_text
    from cxrgan_desktop.study.analysis_export import write_analysis
    from cxrgan_desktop.study.key import AnswerKeyError, read_key
    from cxrgan_desktop.study.results_table import ResultsTableError, read_results

    try:
        rows = read_results(args.results)
        labels = ({cid: case.labels for cid, case in read_key(args.key).cases.items()}
                  if args.key else None)
    except (ResultsTableError, AnswerKeyError) as error:
        raise UserError(str(error)) from error
    analysis = analyse(rows, labels)
    written = write_analysis(rows, analysis, args.out)
    if args.plots:
        from cxrgan_desktop.figures.study import write_study_figures

        written += write_study_figures(rows, analysis, args.out)
    print(report_text(analysis), end="")
    print(f"wrote {args.out}/" + ", ".join(path.name for path in written))
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from cxrgan_desktop.study.key import AnswerKeyError, read_key
    from cxrgan_desktop.study.package import PackageError, StudyPackage
    from cxrgan_desktop.study.simulate import simulate_sessions

    try:
        package, key = StudyPackage(args.package), read_key(args.key)
    except (PackageError, AnswerKeyError) as error:
        raise UserError(str(error)) from error
    sessions = simulate_sessions(package, key, args.readers, args.out, d_prime=args.d_prime,
                                 seed=args.seed)
    for session in sessions:
        print(session.path)
    return 0
