"""``cxrgan models``, ``import-model`` and ``info``: the model store from the command line."""

from __future__ import annotations

import argparse
import json

from cxrgan_desktop.cli.common import (
    UserError,
    existing_path,
    load_model,
)
from cxrgan_desktop.core.names import printable

EXIT_ERROR, EXIT_CANCELLED = 2, 130
KEPT_ON_DISK_ERROR = "files written before are whole; none is left half-written"




def add_parsers(sub: argparse._SubParsersAction) -> None:
    _add_models(sub)


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
