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

from cxrgan_desktop.core import paths
from cxrgan_desktop.core.download import (
    clear_stale_parts,
    download_file,
    temporary_beside,
    temporary_folder,
)
from cxrgan_desktop.core.jobs import ProgressFn, check_cancel, no_progress, sub_progress
from cxrgan_desktop.core.names import check_model_name, printable
from cxrgan_desktop.store import zoo


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
    """Check ``source`` with the loader and save it as ``<models>/<name>.safetensors``.

    The name becomes a file name and is shown in terminals and windows: one with control
    characters, path separators or a leading dot is refused (:func:`names.check_model_name`).
    """
    from cxrgan_desktop.engine.checkpoints import load_generator, save_generator

    from_file_name = not name
    name = name or source.stem
    try:
        check_model_name(name)
    except ValueError as error:
        hint = " (from the file name; choose one with --name)" if from_file_name else ""
        raise InstallError(f"{error}{hint}") from error
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
        raise InstallError(f"no known model {printable(card_id)!r}; known: "
                           f"{', '.join(sorted(cards))}")
    card = cards[card_id]
    if not card.source.get("url") or not card.source.get("file"):
        raise InstallError(f"{card_id}: its card names no download; import the file with "
                           f"'cxrgan import-model FILE --name {card_id}'")
    return card


def _extract(archive: Path, member_name: str, cancel: threading.Event | None,
             max_bytes: int, max_ratio: float = zoo.UNPACK_RATIO_LIMIT) -> Path:
    """The archive member whose file name is ``member_name``, copied beside the archive.

    Refused as "archive too large", before a byte is written when the zip's declared sizes
    say so, else as soon as the bytes actually unpacked do (declared sizes can lie): more
    than ``max_bytes``, or more than ``max_ratio`` times the member's compressed size."""
    try:
        with zipfile.ZipFile(archive) as bundle:
            members = [m for m in bundle.infolist() if Path(m.filename).name == member_name]
            if not members:
                listed = ", ".join(printable(m.filename) for m in bundle.infolist()[:8])
                raise InstallError(f"{archive.name} holds no {member_name} (it has: {listed})")
            member = members[0]
            allowed = min(max_bytes, int(max_ratio * max(member.compress_size, 1)))
            _check_unpacked(archive, member, member.file_size, max_bytes, max_ratio)
            target = archive.with_name(member_name)
            written = 0
            with temporary_beside(target) as tmp, bundle.open(member) as source, \
                    open(tmp, "wb") as out:
                while chunk := source.read(1 << 20):
                    check_cancel(cancel)
                    written += len(chunk)
                    if written > allowed:
                        _check_unpacked(archive, member, written, max_bytes, max_ratio)
                    out.write(chunk)
                out.flush()
                tmp.replace(target)
            return target
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError) as error:
        raise InstallError(f"{archive.name} is not a readable zip archive ({error})") from error


def _check_unpacked(archive: Path, member: zipfile.ZipInfo, size: int, max_bytes: int,
                    max_ratio: float) -> None:
    """Raise "archive too large" if ``size`` unpacked bytes of ``member`` pass a limit."""
    where = f"{archive.name}: {printable(member.filename)}"
    if size > max_bytes:
        raise InstallError(f"archive too large: {where} unpacks to {size / 1e6:,.1f} MB or "
                           f"more; this model's weights are at most {max_bytes / 1e6:,.1f} MB. "
                           "Nothing was installed; the download is not the model's archive.")
    ratio = size / max(member.compress_size, 1)
    if ratio > max_ratio:
        raise InstallError(f"archive too large: {where} unpacks {ratio:,.0f} times its "
                           f"compressed size ({member.compress_size / 1e6:,.1f} MB); model "
                           f"weights compress at most {max_ratio:.0f}:1. Nothing was installed.")


def fetch_known_model(card_id: str, *, url: str | None = None, force: bool = False,
                      timeout: float = 60.0, max_unpacked_bytes: int | None = None,
                      max_ratio: float = zoo.UNPACK_RATIO_LIMIT,
                      progress: ProgressFn = no_progress,
                      cancel: threading.Event | None = None) -> Installed:
    """Download a known model's archive (or file), take the weights file out, install it
    under the card's id, and remove the download. ``url`` overrides the card's (a mirror).

    Everything is written in one ``.part`` folder of this run, removed at the end; such
    folders and ``.part`` files left by earlier runs that were killed are removed first.
    ``max_unpacked_bytes`` (default :func:`zoo.unpacked_size_limit` of the card) caps both
    the download and what the archive may unpack to, with ``max_ratio`` as the compression
    limit."""
    card = _card(card_id)
    source_url = url or card.source["url"]
    member = card.source["file"]
    limit = max_unpacked_bytes or zoo.unpacked_size_limit(card)
    work = paths.cache_dir() / "downloads"
    work.mkdir(parents=True, exist_ok=True)
    clear_stale_parts(work)
    download_name = card.source.get("archive") or member
    with temporary_folder(work, f".{card.id}.") as run_dir:
        download = run_dir / download_name
        archive_sha256 = download_file(source_url, download, label=download_name,
                                       timeout=timeout, max_bytes=limit,
                                       progress=sub_progress(progress, 0.0, 0.85),
                                       cancel=cancel)
        if zipfile.is_zipfile(download):
            progress(0.86, f"unpacking {member}")
            extracted = _extract(download, member, cancel, limit, max_ratio)
            download.unlink()  # the archive is no longer needed: free its space now
        else:
            extracted = download
        progress(0.92, f"checking {member}")
        installed = install_model(extracted, card.id, force, {
            "downloaded_from": source_url, "download_sha256": archive_sha256,
            "model_card": card.id, "licence": card.licence, "citation": card.citation})
    progress(1.0, f"installed {installed.name}")
    return installed
