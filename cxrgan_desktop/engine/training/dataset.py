"""Which images a training run uses: a folder, an optional ChestX-ray14 label file, filters.

:func:`list_dataset` turns a :class:`DatasetSpec` into a :class:`DatasetListing`: the sorted
files to use, their labels (when a label file is given) and every file left out with the
reason. The listing reads no pixels (only names, sizes and modification times, plus the label
file), so it is cheap enough to run before every training run; its :meth:`fingerprint`
identifies the exact data, and is what caches and run manifests record (STYLE 4 and 7).

Matching label rows to files is by file name (``Image Index`` equals the file's name), so the
dataset's usual layout (``images_001/images/00000001_000.png`` ...) and a flat folder both
work. Files without a row are skipped with a reason; rows without a file are only counted
(the released images come in twelve archives, and using some of them is normal).
"""

from __future__ import annotations

import collections
import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cxrgan_desktop.core.fileio import sha256_file
from cxrgan_desktop.imaging.readers import Skipped, candidate_problem, iter_entries
from cxrgan_desktop.labels.chestxray14 import FINDINGS, DataEntry, read_data_entry_csv

log = logging.getLogger(__name__)

_SPEC_KEYS = ("image_dir", "labels_csv", "view_positions", "require_findings",
              "exclude_findings", "max_images")


@dataclass(frozen=True)
class DatasetSpec:
    """A training set: an image folder (searched recursively) and what to keep from it.

    The filters need ``labels_csv`` (a ChestX-ray14 ``Data_Entry`` file, 2017 or v2020
    layout). ``view_positions`` keeps only those views (``()`` keeps all);
    ``require_findings`` keeps images having all of them; ``exclude_findings`` drops images
    having any of them; ``max_images`` keeps the first N of the sorted, filtered files.
    """

    image_dir: Path
    labels_csv: Path | None = None
    view_positions: tuple[str, ...] = ()
    require_findings: tuple[str, ...] = ()
    exclude_findings: tuple[str, ...] = ()
    max_images: int | None = None

    def __post_init__(self) -> None:
        # accept str paths and lists (from JSON or a caller), store the declared types
        object.__setattr__(self, "image_dir", Path(self.image_dir))
        if self.labels_csv is not None:
            object.__setattr__(self, "labels_csv", Path(self.labels_csv))
        for name in ("view_positions", "require_findings", "exclude_findings"):
            value = getattr(self, name)
            if isinstance(value, str):
                raise ValueError(f"{name} must be a sequence of names, not the string {value!r}")
            object.__setattr__(self, name, tuple(str(v) for v in value))
        object.__setattr__(self, "view_positions",
                           tuple(v.strip().upper() for v in self.view_positions))
        unknown = sorted({f for f in self.require_findings + self.exclude_findings
                          if f not in FINDINGS})
        if unknown:
            raise ValueError(f"unknown finding name(s) {unknown}; valid names: "
                             f"{', '.join(FINDINGS)}")
        both = sorted(set(self.require_findings) & set(self.exclude_findings))
        if both:
            raise ValueError(f"finding(s) {both} both required and excluded: no image can match")
        filters = self.view_positions or self.require_findings or self.exclude_findings
        if filters and self.labels_csv is None:
            raise ValueError("view position and finding filters need labels_csv "
                             "(a ChestX-ray14 Data_Entry file)")
        if self.max_images is not None:
            if isinstance(self.max_images, bool) or int(self.max_images) != self.max_images:
                raise ValueError(f"max_images must be a whole number, got {self.max_images!r}")
            if self.max_images < 1:
                raise ValueError(f"max_images must be at least 1, got {self.max_images}")
            object.__setattr__(self, "max_images", int(self.max_images))

    def to_json(self) -> dict[str, Any]:
        return {
            "image_dir": str(self.image_dir),
            "labels_csv": None if self.labels_csv is None else str(self.labels_csv),
            "view_positions": list(self.view_positions),
            "require_findings": list(self.require_findings),
            "exclude_findings": list(self.exclude_findings),
            "max_images": self.max_images,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> DatasetSpec:
        unknown = sorted(set(d) - set(_SPEC_KEYS))
        if unknown:
            raise ValueError(f"unknown dataset spec key(s) {unknown}; known: {list(_SPEC_KEYS)}")
        if "image_dir" not in d:
            raise ValueError("dataset spec needs image_dir")
        return cls(**{key: d[key] for key in _SPEC_KEYS if key in d})

    def resolved(self) -> DatasetSpec:
        """The same spec with absolute paths (what fingerprints and cache keys use)."""
        csv = None if self.labels_csv is None else self.labels_csv.expanduser().resolve()
        return DatasetSpec(self.image_dir.expanduser().resolve(), csv, self.view_positions,
                           self.require_findings, self.exclude_findings, self.max_images)


@dataclass(frozen=True)
class DatasetListing:
    """The images a spec selects. ``files`` are sorted by path relative to the folder."""

    files: tuple[Path, ...]
    labels: tuple[frozenset[str], ...] | None
    skipped: tuple[Skipped, ...]
    spec: DatasetSpec = field(repr=False)  # resolved (absolute paths)
    file_stats: tuple[tuple[int, int], ...] = field(repr=False)  # (size, mtime_ns) per file
    labels_sha256: str | None = field(default=None, repr=False)

    @property
    def root(self) -> Path:
        return self.spec.image_dir

    def relative_paths(self) -> tuple[str, ...]:
        """Paths of ``files`` relative to the image folder, with ``/`` separators."""
        return tuple(f.relative_to(self.root).as_posix() for f in self.files)

    def fingerprint(self) -> str:
        """SHA-256 (hex) of the sorted (relative path, size, mtime_ns) triples, the spec and
        the label file's content: changes when any used image or label changes."""
        payload = {
            "spec": self.spec.to_json(),
            "labels_sha256": self.labels_sha256,
            "files": [[rel, size, mtime] for rel, (size, mtime)
                      in zip(self.relative_paths(), self.file_stats, strict=True)],
        }
        text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def skip_summary(self, top: int = 3) -> str:
        """The most common skip reasons with counts, e.g. ``"12 not an image file"``."""
        return summarise_reasons([s.reason for s in self.skipped], top)


def summarise_reasons(reasons: list[str], top: int = 3) -> str:
    counts = collections.Counter(reasons).most_common()
    text = "; ".join(f"{n} {reason}" for reason, n in counts[:top])
    rest = sum(n for _, n in counts[top:])
    return text + (f"; {rest} other" if rest else "")


def _filter_reason(spec: DatasetSpec, entry: DataEntry) -> str | None:
    if spec.view_positions and entry.view_position.upper() not in spec.view_positions:
        return f"view position {entry.view_position or '(empty)'} not in " \
               f"{'/'.join(spec.view_positions)}"
    missing = [f for f in spec.require_findings if f not in entry.findings]
    if missing:
        return f"lacks required finding(s) {', '.join(missing)}"
    present = [f for f in spec.exclude_findings if f in entry.findings]
    if present:
        return f"has excluded finding(s) {', '.join(present)}"
    return None


def _read_rows(csv_path: Path) -> dict[str, DataEntry]:
    rows: dict[str, DataEntry] = {}
    duplicates = 0
    for entry in read_data_entry_csv(csv_path):
        if entry.image_index in rows:
            duplicates += 1
            continue
        rows[entry.image_index] = entry
    if duplicates:
        log.warning("%s: %d repeated Image Index rows ignored (first row kept)",
                    csv_path, duplicates)
    return rows


def list_dataset(spec: DatasetSpec) -> DatasetListing:
    """List the images ``spec`` selects, without reading pixels.

    Raises ``ValueError`` when the folder is missing or holds no usable image (the message
    names the folder, how many files were skipped and the main reasons), and for a malformed
    label file.
    """
    spec = spec.resolved()
    root = spec.image_dir
    if not root.is_dir():
        raise ValueError(f"{root}: not a folder")
    if spec.labels_csv is not None and not spec.labels_csv.is_file():
        raise ValueError(f"{spec.labels_csv}: no such label file (give the ChestX-ray14 "
                         "Data_Entry CSV that lists the images)")
    rows = _read_rows(spec.labels_csv) if spec.labels_csv is not None else None

    candidates: list[tuple[str, Path, tuple[int, int], frozenset[str] | None]] = []
    skipped: list[Skipped] = []
    matched: dict[str, str] = {}  # image name -> relative path of the file that used its row
    for path in iter_entries([root]):
        if isinstance(path, Skipped):  # hidden, a link to a folder, a folder not listable
            skipped.append(path)
            continue
        rel = path.relative_to(root).as_posix()
        problem = candidate_problem(path)  # not an image, empty, a pipe, unreadable ...
        if problem is not None:
            skipped.append(Skipped(path, problem))
            continue
        try:
            stat = path.stat()
        except OSError as exc:
            skipped.append(Skipped(path, f"cannot read file information ({exc.strerror})"))
            continue
        labels = None
        if rows is not None:
            entry = rows.get(path.name)
            if entry is None:
                skipped.append(Skipped(path, "no row in the labels CSV"))
                continue
            if path.name in matched:
                skipped.append(Skipped(path, f"duplicate file name (its row is used by "
                                             f"{matched[path.name]})"))
                continue
            matched[path.name] = rel
            reason = _filter_reason(spec, entry)
            if reason is not None:
                skipped.append(Skipped(path, reason))
                continue
            labels = entry.findings
        candidates.append((rel, path, (stat.st_size, stat.st_mtime_ns), labels))

    candidates.sort(key=lambda c: c[0])
    if spec.max_images is not None and len(candidates) > spec.max_images:
        for _, path, _, _ in candidates[spec.max_images:]:
            skipped.append(Skipped(path, f"beyond max_images ({spec.max_images})"))
        candidates = candidates[:spec.max_images]
    if rows is not None and len(matched) < len(rows):
        log.info("%s: %d of %d rows have no file under %s (not used)",
                 spec.labels_csv, len(rows) - len(matched), len(rows), root)
    if not candidates:
        summary = summarise_reasons([s.reason for s in skipped])
        raise ValueError(f"{root}: no usable image ({len(skipped)} files skipped"
                         + (f": {summary})" if skipped else ")"))
    log.info("dataset %s: %d images, %d files skipped", root, len(candidates), len(skipped))
    return DatasetListing(
        files=tuple(c[1] for c in candidates),
        labels=None if rows is None else tuple(c[3] for c in candidates),  # type: ignore[misc]
        skipped=tuple(skipped),
        spec=spec,
        file_stats=tuple(c[2] for c in candidates),
        labels_sha256=None if spec.labels_csv is None else sha256_file(spec.labels_csv),
    )
