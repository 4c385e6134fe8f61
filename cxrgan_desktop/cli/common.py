"""What every ``cxrgan`` subcommand shares: the user-facing error, the device option and
opening models, so that ``cli.py`` and ``cli_lco.py`` phrase them one way.

Nothing here imports torch at import time: ``cxrgan --help`` stays instant.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

DEVICE_CHOICES = ["auto", "cpu", "cuda", "mps"]  # engine.devices.DEVICE_CHOICES, without torch


class UserError(Exception):
    """A problem the user can fix; printed without a traceback."""


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows an option's default only where it tells something: not "(default: None)" or
    "(default: False)", and not a second time where the help already names the default."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        quiet = action.default is None or action.default is False \
            or action.default == argparse.SUPPRESS  # "is": 0 == False must still show
        if quiet or "default" in text.lower():
            return text
        return super()._get_help_string(action)


def existing_path(text: str) -> Path:
    """An argparse type for a file or folder that must exist: checked while the arguments
    are parsed, before a command imports torch (seconds on a loaded machine), so a typo
    costs one line at once."""
    if not os.path.lexists(text):
        raise argparse.ArgumentTypeError(f"no such file or folder: {text}")
    return Path(text)


def path_or_name(text: str) -> str:
    """A file or a name (an installed model, a preset, model:NAME): only what looks like a
    file (a folder in it, or a file suffix) must exist."""
    looks_like_path = os.sep in text or Path(text).suffix.lower() in {
        ".toml", ".json", ".safetensors", ".pth", ".pt", ".tar", ".npz", ".npy"}
    if looks_like_path and not text.startswith("model:") and not os.path.lexists(text):
        raise argparse.ArgumentTypeError(f"no such file or folder: {text}")
    return text


def add_device_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", choices=DEVICE_CHOICES,
                        help="auto = CUDA if present, else MPS, else CPU")


def resolve_device_option(name: str):
    """The torch device for ``--device``; a device this machine lacks is a UserError."""
    from cxrgan_desktop.engine.devices import DeviceError, resolve_device

    try:
        return resolve_device(name)
    except DeviceError as error:
        raise UserError(str(error)) from error


def load_model(name_or_path: str | None):
    """A generator by file or installed name; None means the first installed model, else the
    bundled demo (so a fresh offline install can generate)."""
    from cxrgan_desktop.engine.checkpoints import CheckpointError, load_generator
    from cxrgan_desktop.store import zoo

    if name_or_path is None:
        path = zoo.default_model()
        if path is None:
            raise UserError("no --model given, no model is installed and this build ships no "
                            "demo model. Import the paper's "
                            "weights with 'cxrgan import-model Final_Full_Model.pth', or pass "
                            "--model FILE (see 'cxrgan models').")
    else:
        try:
            path = zoo.resolve_model(name_or_path)
        except zoo.ModelNotFoundError as error:
            raise UserError(str(error)) from error
    try:
        return load_generator(path)
    except CheckpointError as error:
        raise UserError(str(error)) from error


def comma_list(text: str) -> tuple[str, ...]:
    """``a, b,c`` -> ``("a", "b", "c")``: the form of every list option (labels, views)."""
    return tuple(part.strip() for part in text.split(",") if part.strip())


def load_classifier_option(name_or_path: str | None):
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
