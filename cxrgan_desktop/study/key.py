"""The answer key: which case is real and which synthetic, and where each came from.

Kept by the organiser, never inside the package; it names the package by SHA-256 so that a
key can only score sessions of its own study.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cxrgan_desktop.core.fileio import atomic_write_json

KEY_FORMAT = "cxrgan-desktop/reader-study-key"


class AnswerKeyError(ValueError):
    """An answer key that cannot be used; the message names the file and the problem."""


@dataclass
class KeyCase:
    truth: str  # real | synthetic
    source: str  # a file path, or model:NAME#seed/index
    labels: list[str] = field(default_factory=list)  # LCO findings of a synthetic case
    native_size: list[int] | None = None  # [height, width] of the source (keys since 0.2)


@dataclass
class StudyKey:
    study_id: str
    package_sha256: str
    seed: int
    cases: dict[str, KeyCase]
    built: dict[str, Any] = field(default_factory=dict)  # the build's parameters

    def truth(self, case_id: str) -> str:
        return self.cases[case_id].truth


def write_key(path: str | os.PathLike[str], key: StudyKey) -> None:
    data = asdict(key)
    data["format"] = KEY_FORMAT
    atomic_write_json(path, data)


def read_key(path: str | os.PathLike[str]) -> StudyKey:
    file = Path(path)
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
        if data.get("format") != KEY_FORMAT:
            raise ValueError(f"format is {data.get('format')!r}")
        cases = {cid: KeyCase(**value) for cid, value in data["cases"].items()}
        for cid, case in cases.items():
            if case.truth not in ("real", "synthetic"):
                raise ValueError(f"case {cid!r} has truth {case.truth!r}; a key says 'real' or "
                                 "'synthetic'")
        return StudyKey(data["study_id"], data["package_sha256"], int(data["seed"]), cases,
                        data.get("built", {}))
    except FileNotFoundError as error:
        raise AnswerKeyError(f"{file}: no such file") from error
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise AnswerKeyError(f"{file}: not a reader-study answer key ({error})") from error
