"""Every FID result, kept with its settings in one JSON file in the user data folder.

The CLI and the FID panel both append to it, so a score measured on a headless server (with
the same data folder) shows up in the panel's table. A damaged file is set aside, not lost.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from cxrgan_desktop.core import paths
from cxrgan_desktop.core.fileio import atomic_write_json

log = logging.getLogger(__name__)

HISTORY_VERSION = 1


def history_path() -> Path:
    return paths.data_dir() / "fid_history.json"


def load_history(path: Path | None = None) -> list[dict[str, Any]]:
    path = path or history_path()
    if not path.is_file():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        records = data["results"]
        if not isinstance(records, list):
            raise ValueError("'results' is not a list")
        return [r for r in records if isinstance(r, dict)]
    except (OSError, ValueError, KeyError, TypeError) as error:
        aside = path.with_name(path.name + ".damaged")
        log.warning("FID history %s is unreadable (%s); moved to %s", path, error, aside)
        os.replace(path, aside)
        return []


def save_history(records: list[dict[str, Any]], path: Path | None = None) -> None:
    atomic_write_json(path or history_path(), {"version": HISTORY_VERSION, "results": records})


def append_history(record: dict[str, Any], path: Path | None = None) -> None:
    records = load_history(path)
    records.append(record)
    save_history(records, path)
