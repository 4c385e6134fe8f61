"""``cxrgan``: the command-line twin of every GUI action, for headless GPU servers.

Each subcommand parses, calls the library (the long jobs in ``tasks/``), and reports. Heavy
imports (torch) happen inside the commands, after :func:`runtime.configure_before_torch`.
One module per command family: ``generate``, ``models`` (models, import-model, info), ``data``
(phantom, convert), ``train`` (train, export-run), ``classifier``, ``lco`` (lco, archive),
``fid`` (fid, fid-weights), ``study``, ``tstr``, ``audit``, ``reid`` (reid train, info);
``common`` and ``progress`` serve them all.
This module builds the parser and runs the chosen command.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from cxrgan_desktop import __version__
from cxrgan_desktop.cli import audit as cli_audit
from cxrgan_desktop.cli import classifier as cli_classifier
from cxrgan_desktop.cli import data as cli_data
from cxrgan_desktop.cli import fid as cli_fid
from cxrgan_desktop.cli import generate as cli_generate
from cxrgan_desktop.cli import latent as cli_latent
from cxrgan_desktop.cli import lco as cli_lco
from cxrgan_desktop.cli import models as cli_models
from cxrgan_desktop.cli import project as cli_project
from cxrgan_desktop.cli import reid as cli_reid
from cxrgan_desktop.cli import study as cli_study
from cxrgan_desktop.cli import train as cli_train
from cxrgan_desktop.cli import tstr as cli_tstr
from cxrgan_desktop.cli.common import UserError
from cxrgan_desktop.core import runtime

EXIT_ERROR, EXIT_CANCELLED = 2, 130
KEPT_ON_DISK_ERROR = "files written before are whole; none is left half-written"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cxrgan", description="Synthetic chest radiographs with Progressive Growing GANs "
        "(after Segal et al., 2020): the command-line twin of cxrgan-desktop.")
    parser.add_argument("--version", action="version", version=f"cxrgan-desktop {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    cli_generate.add_parsers(sub)
    cli_models.add_parsers(sub)
    cli_data.add_parsers(sub)
    cli_train.add_parsers(sub)
    cli_classifier.add_parsers(sub)
    cli_lco.add_parsers(sub)
    cli_latent.add_parsers(sub)
    cli_fid.add_parsers(sub)
    cli_study.add_parsers(sub)
    cli_tstr.add_parsers(sub)
    cli_audit.add_parsers(sub)
    cli_reid.add_parsers(sub)
    cli_project.add_parsers(sub)
    return parser


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
