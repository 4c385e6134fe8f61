"""Install a generator into the user's models folder: from a file the user has, or by
fetching a known model's published archive.

Either way the file is opened by the one checkpoint loader (nothing in it is executed), saved
as a native ``.safetensors`` model, and its provenance records where it came from and the
SHA-256 of what was received, since the paper's weights have no published checksum.
"""

from __future__ import annotations

import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cxrgan_desktop import paths, zoo
from cxrgan_desktop.download import download_file, temporary_beside
from cxrgan_desktop.jobs import ProgressFn, check_cancel, no_progress, sub_progress


class InstallError(Exception):
    """The model cannot be installed; the message says why and what to do."""


@dataclass(frozen=True)
class Installed:
    name: str
    path: Path
    sha256: str  # of the source file (the .pth inside an archive)
    description: str  # format, resolution, channels: what was found in the file


def install_model(source: Path, name: str | None = None, force: bool = False,
                  provenance: dict[str, Any] | None = None) -> Installed:
    """Check ``source`` with the loader and save it as ``<models>/<name>.safetensors``."""
    from cxrgan_desktop.engine.checkpoints import load_generator, save_generator

    name = name or source.stem
    target = paths.models_dir() / f"{name}.safetensors"
    if target.exists() and not force:
        raise InstallError(f"a model named {name!r} is already installed at {target}; replace "
                           "it (--force) or choose another name (--name)")
    model = load_generator(source)
    record = dict(model.provenance)
    record.setdefault("imported_from", source.name)
    record.setdefault("imported_sha256", model.sha256)
    record.update(provenance or {})
    target.parent.mkdir(parents=True, exist_ok=True)
    save_generator(target, model.generator, model.adapter, name, record, discriminator=None)
    return Installed(name, target, model.sha256,
                     f"{model.source_format}, {model.resolution}x{model.resolution}, channels "
                     f"{list(model.config.channels)}, latent {model.config.latent_size}")


def _card(card_id: str) -> zoo.ModelCard:
    cards = {card.id: card for card in zoo.known_cards()}
    if card_id not in cards:
        raise InstallError(f"no known model {card_id!r}; known: {', '.join(sorted(cards))}")
    card = cards[card_id]
    if not card.source.get("url") or not card.source.get("file"):
        raise InstallError(f"{card_id}: its card names no download; import the file with "
                           f"'cxrgan import-model FILE --name {card_id}'")
    return card


def _extract(archive: Path, member_name: str, cancel: threading.Event | None) -> Path:
    """The archive member whose file name is ``member_name``, copied beside the archive."""
    try:
        with zipfile.ZipFile(archive) as bundle:
            members = [m for m in bundle.infolist() if Path(m.filename).name == member_name]
            if not members:
                raise InstallError(f"{archive.name} holds no {member_name} (it has: "
                                   f"{', '.join(m.filename for m in bundle.infolist()[:8])})")
            target = archive.with_name(member_name)
            with temporary_beside(target) as tmp, bundle.open(members[0]) as source, \
                    open(tmp, "wb") as out:
                while chunk := source.read(1 << 20):
                    check_cancel(cancel)
                    out.write(chunk)
                out.flush()
                tmp.replace(target)
            return target
    except zipfile.BadZipFile as error:
        raise InstallError(f"{archive.name} is not a readable zip archive ({error})") from error


def fetch_known_model(card_id: str, *, url: str | None = None, force: bool = False,
                      timeout: float = 60.0, progress: ProgressFn = no_progress,
                      cancel: threading.Event | None = None) -> Installed:
    """Download a known model's archive (or file), take the weights file out, install it
    under the card's id, and remove the download. ``url`` overrides the card's (a mirror)."""
    card = _card(card_id)
    source_url = url or card.source["url"]
    member = card.source["file"]
    work = paths.cache_dir() / "downloads"
    download_name = card.source.get("archive") or member
    download = work / download_name
    archive_sha256 = download_file(source_url, download, label=download_name,
                                   timeout=timeout, progress=sub_progress(progress, 0.0, 0.85),
                                   cancel=cancel)
    extracted = None
    try:
        if zipfile.is_zipfile(download):
            progress(0.86, f"unpacking {member}")
            extracted = _extract(download, member, cancel)
        else:
            extracted = download
        progress(0.92, f"checking {member}")
        installed = install_model(extracted, card.id, force, {
            "downloaded_from": source_url, "download_sha256": archive_sha256,
            "model_card": card.id, "licence": card.licence, "citation": card.citation})
    finally:
        for leftover in {download, extracted} - {None}:
            leftover.unlink(missing_ok=True)
    progress(1.0, f"installed {installed.name}")
    return installed
