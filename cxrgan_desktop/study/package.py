"""The study package: the one file a reader receives (``.cxrstudy``, a zip archive).

Built so that nothing outside the pixels can tell real from synthetic: every case is
``cases/<opaque id>.npy`` holding uint16 levels of one shape (so one header and one size);
entries are stored uncompressed (compressed sizes would differ by class: generated images
are smoother), carry one fixed timestamp and one set of attributes, and appear sorted by
their random ids. ``study.json`` holds the settings and the case ids, never the truth; only
practice cases, which are never scored, carry theirs (for feedback). The answer key lives in
a separate file (:mod:`cxrgan_desktop.study.key`).
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cxrgan_desktop.core.fileio import atomic_writer, sha256_file
from cxrgan_desktop.study.design import StudySettings, is_case_id, is_study_id

FORMAT = "cxrgan-desktop/reader-study"
FORMAT_VERSION = 1
SUFFIX = ".cxrstudy"
FIXED_TIME = (1980, 1, 1, 0, 0, 0)  # the zip epoch: no build time in any entry
CASE_DIR, PRACTICE_DIR = "cases", "practice"


class PackageError(Exception):
    """A study package that cannot be opened; the message names the file and the problem."""


def npy_bytes(levels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(levels, dtype=np.uint16), allow_pickle=False)
    return buffer.getvalue()


def _entry(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=FIXED_TIME)
    info.compress_type = zipfile.ZIP_STORED
    info.create_system = 3
    info.external_attr = 0o644 << 16
    return info


def write_package(path: str | os.PathLike[str], study_id: str, settings: StudySettings,
                  cases: dict[str, np.ndarray], practice: list[tuple[str, str, np.ndarray]],
                  ) -> None:
    """``cases``: id -> levels; ``practice``: (id, truth, levels). Written atomically."""
    manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, "study_id": study_id,
                "settings": settings.to_dict(), "cases": sorted(cases),
                "practice": [{"id": pid, "truth": truth} for pid, truth, _ in practice]}
    with atomic_writer(path, "wb") as handle, zipfile.ZipFile(handle, "w") as archive:
        archive.writestr(_entry("study.json"), json.dumps(manifest, indent=1).encode())
        for case_id in sorted(cases):
            archive.writestr(_entry(f"{CASE_DIR}/{case_id}.npy"), npy_bytes(cases[case_id]))
        for pid, _truth, levels in practice:
            archive.writestr(_entry(f"{PRACTICE_DIR}/{pid}.npy"), npy_bytes(levels))


@dataclass
class PracticeCase:
    id: str
    truth: str


class StudyPackage:
    """An opened package: settings, case ids, and images read on demand."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        try:
            self._zip = zipfile.ZipFile(self.path)
            manifest: dict[str, Any] = json.loads(self._zip.read("study.json"))
        except FileNotFoundError as error:
            raise PackageError(f"{self.path}: no such file") from error
        except (zipfile.BadZipFile, KeyError, ValueError, OSError) as error:
            raise PackageError(f"{self.path}: not a reader-study package ({error})") from error
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            found = manifest.get("format") if isinstance(manifest, dict) else None
            raise PackageError(f"{self.path}: not a reader-study package (format "
                               f"{found!r})")
        version = manifest.get("format_version", 0)
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise PackageError(f"{self.path}: made by a newer cxrgan-desktop (format version "
                               f"{version!r}); update the application")
        try:
            self.settings = StudySettings.from_dict(manifest["settings"])
        except (KeyError, TypeError, ValueError) as error:
            raise PackageError(f"{self.path}: damaged study settings ({error})") from error
        self.study_id, self.case_ids, self.practice = self._checked_ids(manifest)
        self._sha256: str | None = None

    def _checked_ids(self, manifest: dict[str, Any]
                     ) -> tuple[str, list[str], list[PracticeCase]]:
        """The study id and the case ids become folder and file names: a crafted package
        must not steer a session file elsewhere ('../../x', '/etc/x'), so only the builder's
        own forms pass."""
        study_id = manifest.get("study_id")
        if not is_study_id(study_id):
            raise PackageError(f"{self.path}: the study id {str(study_id)[:40]!r} is not of "
                               "the form this application writes (16 hex digits); the "
                               "package is damaged or was not made by cxrgan-desktop")
        cases, practice = manifest.get("cases"), manifest.get("practice")
        if not isinstance(cases, list) or not cases or not isinstance(practice, list):
            raise PackageError(f"{self.path}: study.json lists no cases")
        practice_cases = []
        for entry in practice:
            if not isinstance(entry, dict) or entry.get("truth") not in ("real", "synthetic"):
                raise PackageError(f"{self.path}: a practice entry is damaged ({entry!r:.60})")
            practice_cases.append(PracticeCase(entry.get("id"), entry["truth"]))
        every_id = [*cases, *(p.id for p in practice_cases)]
        bad = [i for i in every_id if not is_case_id(i)]
        if bad:
            raise PackageError(f"{self.path}: case id {str(bad[0])[:40]!r} is not of the form "
                               "this application writes; the package is damaged")
        if len(set(every_id)) != len(every_id):
            raise PackageError(f"{self.path}: a case id appears twice")
        return study_id, list(cases), practice_cases

    @property
    def sha256(self) -> str:
        if self._sha256 is None:
            self._sha256 = sha256_file(self.path)
        return self._sha256

    def _levels(self, name: str) -> np.ndarray:
        try:
            return np.load(io.BytesIO(self._zip.read(name)), allow_pickle=False)
        except (KeyError, ValueError, OSError, zipfile.BadZipFile) as error:
            raise PackageError(f"{self.path}: cannot read {name} ({error})") from error

    def case_image(self, case_id: str) -> np.ndarray:
        """float32 [H, W] in [0, 1] (levels over the study's maximum level)."""
        levels = self._levels(f"{CASE_DIR}/{case_id}.npy")
        return levels.astype(np.float32) / self.settings.max_level

    def practice_image(self, practice_id: str) -> np.ndarray:
        levels = self._levels(f"{PRACTICE_DIR}/{practice_id}.npy")
        return levels.astype(np.float32) / self.settings.max_level

    def close(self) -> None:
        self._zip.close()
