"""Follow a training run through its folder: new log rows, the latest sample grid.

The panel never talks to the training process directly: everything it shows is read from
the run folder that ``cxrgan train`` writes, so it can also watch a run started from the
command line or one that outlived a previous window.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class RunMonitor:
    run_dir: Path
    rows: list[dict] = field(default_factory=list)
    _offset: int = 0
    _sample_mtime: float = 0.0

    def poll_rows(self) -> list[dict]:
        """Rows appended to log.jsonl since the last call (a half-written line waits)."""
        path = self.run_dir / "log.jsonl"
        if not path.exists():
            return []
        with open(path, encoding="utf-8") as handle:
            handle.seek(self._offset)
            text = handle.read()
        complete = text[: text.rfind("\n") + 1]
        self._offset += len(complete.encode("utf-8"))
        new = [json.loads(line) for line in complete.splitlines() if line.strip()]
        self.rows.extend(new)
        return new

    def new_sample(self) -> Path | None:
        """The latest sample grid, when it changed since the last call."""
        path = self.run_dir / "samples" / "latest.png"
        if not path.exists():
            return None
        mtime = path.stat().st_mtime
        if mtime == self._sample_mtime:
            return None
        self._sample_mtime = mtime
        return path


def eta_seconds(rows: list[dict], total_images: int) -> float | None:
    """Remaining time at the recent speed (mean images/s of the last rows)."""
    if not rows:
        return None
    recent = [r["images_per_s"] for r in rows[-5:] if r.get("images_per_s")]
    if not recent:
        return None
    speed = sum(recent) / len(recent)
    return max(total_images - rows[-1]["images"], 0) / speed


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = int(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {secs:02d} s"
