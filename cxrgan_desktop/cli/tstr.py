"""``cxrgan tstr``: train on synthetic, test on real, as one resumable command."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from cxrgan_desktop.cli.common import (
    UserError,
    add_device_option,
    existing_path,
    resolve_device_option,
)

TSTR_EPILOG = """example:
  cxrgan tstr --example > experiment.toml     # edit the paths and labels
  cxrgan tstr experiment.toml                 # -> experiment-results/ (results.json,
                                              #    results.txt, auroc.png/pdf, ...)
Run the same command again after an interruption: finished arms are not trained again.
"""


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "tstr", help="train on synthetic, test on real: does synthetic data help?",
        description="Train one classifier recipe on real images, on synthetic ones, on both, "
        "and optionally on growing subsets of the real patients with and without a fixed "
        "synthetic set; evaluate every arm on the same held-out real patients (per-label "
        "AUROC with patient-bootstrap intervals, paired DeLong and bootstrap tests against "
        "the real arm).", epilog=TSTR_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", nargs="?", type=existing_path, help="the experiment, TOML or JSON "
                   "(see --example)")
    p.add_argument("--example", action="store_true", help="print an example experiment "
                   "file and exit")
    p.add_argument("--out", type=Path, help="results folder (default: CONFIG's folder / "
                   "<config name>-results); an existing one is resumed")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG/PDF figures")
    p.add_argument("--json", action="store_true", help="print results.json instead of the "
                   "table")
    add_device_option(p)
    p.set_defaults(func=cmd_tstr)


def default_out(config_path: Path) -> Path:
    return config_path.parent / f"{config_path.stem}-results"


def cmd_tstr(args: argparse.Namespace) -> int:
    from cxrgan_desktop.engine.tstr.config import EXAMPLE, load_config

    if args.example:
        print(EXAMPLE, end="")
        return 0
    if args.config is None:
        raise UserError("give an experiment file (cxrgan tstr --example prints one)")
    try:
        config = load_config(args.config)
    except ValueError as error:
        raise UserError(str(error)) from error
    out = args.out or default_out(args.config)
    device = str(resolve_device_option(args.device))
    results = run_tstr_command(config, out, device)
    written = [out / "results.json", out / "results.txt"]
    if not args.no_plots:
        from cxrgan_desktop.figures.tstr import write_tstr_figures

        written += write_tstr_figures(results, out)
    if args.json:
        print(json.dumps(results, indent=1))
    else:
        from cxrgan_desktop.engine.tstr.results import results_table

        print(results_table(results), end="")
        print("wrote " + ", ".join(str(p) for p in written))
    return 0


def run_tstr_command(config, out: Path, device: str):
    from cxrgan_desktop.cli.progress import run_job
    from cxrgan_desktop.tasks.tstr import run_tstr

    try:
        return run_job(lambda progress, cancel: run_tstr(config, out, device, progress,
                                                         cancel),
                       None, "", "tstr", f"finished arms are kept in {out / 'arms'}; run "
                       "the same command to continue")
    except (ValueError, OSError) as error:
        raise UserError(str(error)) from error
