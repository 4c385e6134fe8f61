"""User settings as a versioned schema, stored as JSON in the config folder.

Only values that differ from the defaults are saved, so a later version's better default
reaches users who never changed it. A file from an older schema is migrated; a corrupt or
unreadable file is set aside with a warning and the defaults are used; writes are atomic.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cxrgan_desktop.core import paths
from cxrgan_desktop.core.fileio import atomic_write_json

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2  # 2: the reader study's preferences are under "study" (were "quiz")
FILE_NAME = "settings.json"


@dataclass
class ViewerPreferences:
    window_button: str = "left"  # left | right | middle: the button that drags window/level
    pan_modifier: str = "control"  # control | shift | alt: with the window button, pans
    drag_right_widens: bool = True  # dragging right widens the window (less contrast)
    drag_down_raises_level: bool = True  # dragging down raises the level (darker image)
    invert: bool = False
    keep_zoom_same_size: bool = False  # a new image of the same size keeps zoom and pan


@dataclass
class LCOPreferences:
    classifier: str = ""  # path of the classifier file last used
    judge: str = ""  # path of the judge classifier, "" for none
    threshold: float = 0.5  # a finding requested present must reach this
    absent_threshold: float = 0.5  # a finding requested absent must stay below this
    count: int = 8
    steps: int = 200
    seed: int = 0
    restarts: int = 2
    batch_size: int = 8
    image_format: str = "png16"
    truncation: float = 1.0  # psi of engine.truncation inside LCO's pass; 1: none


@dataclass
class ExplorePreferences:
    """The Findings tab: latent shift sliders, morphs and projection (issue 24)."""

    classifier: str = ""  # path of the classifier whose findings get sliders
    range_deg: float = 10.0  # each slider turns z up to this many degrees either way
    frames: int = 9  # frames of a path (the probability plot, exports, morphs)
    preview: str = "auto"  # auto | half | full: what a slider shows while dragged
    projection_restarts: int = 4  # engine.projection.DEFAULT_RESTARTS
    projection_steps: int = 300  # engine.projection.DEFAULT_STEPS


@dataclass
class FIDPreferences:
    inception_weights: str = ""  # a weights file the user located; "" = the cache
    real: str = ""  # a side as `cxrgan fid` takes it: folder, .npz or model:NAME
    fake: str = ""
    n: int = 2048
    seed: int = 0
    resize: str = "antialias"
    batch_size: int = 32
    relative: bool = False  # also the relative FD against a second real set
    reference_b: str = ""  # that set, as `cxrgan fid --relative` takes it
    relative_split: bool = False  # the relative FD between halves of the reference
    features: str = "inception"  # or classifier:NAME, as `cxrgan fid --features` takes it


@dataclass
class StudyPreferences:
    """The study builder's last plan and the analysis inputs last used."""
    real: list[str] = field(default_factory=list)  # folders of real images
    synthetic: list[str] = field(default_factory=list)  # folders, when not from a model
    model: str = ""  # installed model name, "" for folders
    n_real: int = 50
    n_synthetic: int = 50
    seed: int = 0
    practice: int = 2
    readers: int = 0
    image_size: int = 1024
    bit_depth: int = 8
    window_locked: bool = False
    allow_back: bool = False
    practice_feedback: bool = True
    title: str = "Real or synthetic?"
    out_folder: str = ""
    name: str = "study"
    key: str = ""  # the answer key last analysed
    sessions: list[str] = field(default_factory=list)  # session files last analysed
    exclude_flagged: str = ""  # the audit whose flagged images a build leaves out ("" none)


@dataclass
class TSTRPreferences:
    """The train-on-synthetic experiment last set up in the TSTR tab."""
    real_images: str = ""
    real_labels: str = ""
    synthetic_images: str = ""
    synthetic_labels: str = ""  # "" = the synthetic folder's Data_Entry*.csv
    labels: str = ""  # comma-separated; "" = the findings both label files have
    arms: list[str] = field(default_factory=lambda: ["real", "synthetic", "mixed"])
    mix_ratio: float = 1.0
    scarce_fractions: str = "0.1, 0.25, 0.5"
    architecture: str = "densenet121"
    input_size: int = 256
    epochs: int = 10
    batch_size: int = 16
    seed: int = 0
    test_fraction: float = 0.2
    bootstrap: int = 1000
    out_folder: str = ""


@dataclass
class AuditPreferences:
    """The Audit tab's form as last used (the same meanings as ``cxrgan audit``'s options)."""

    train_dir: str = ""
    labels_csv: str = ""
    synthetic: str = ""  # a folder, or model:NAME
    n: int = 0  # 0: every image of a folder; images to generate from a model
    seed: int = 0
    held_out: str = ""  # a folder, or a training run folder with held_out.json
    spaces: list[str] = field(default_factory=lambda: ["pixels", "reid"])
    reid_model: str = ""
    k: int = 5
    # in percent: cxrgan audit's default alpha, tasks.audit_file.DEFAULT_ALPHA (0.001), which
    # core cannot import (tests/test_settings.py checks the two agree)
    alpha_percent: float = 0.1
    out_dir: str = ""
    last_audit: str = ""  # the audit folder last shown


@dataclass
class Settings:
    window_geometry: str = ""  # Qt's saveGeometry(), base64
    window_state: str = ""  # Qt's saveState(), base64
    last_model: str = ""
    last_open_folder: str = ""
    last_export_folder: str = ""
    last_export_audit: str = ""  # the audit whose flagged images an export leaves out
    generate_count: int = 4
    generate_seed: int = 0
    generate_random_seed: bool = True
    generate_batch_size: int = 2
    generate_truncation: float = 1.0  # psi of engine.truncation; 1: none
    device: str = "auto"
    show_welcome: bool = True  # the welcome window at start-up while no model is installed
    viewer: ViewerPreferences = field(default_factory=ViewerPreferences)
    lco: LCOPreferences = field(default_factory=LCOPreferences)
    fid: FIDPreferences = field(default_factory=FIDPreferences)
    study: StudyPreferences = field(default_factory=StudyPreferences)
    tstr: TSTRPreferences = field(default_factory=TSTRPreferences)
    audit: AuditPreferences = field(default_factory=AuditPreferences)
    explore: ExplorePreferences = field(default_factory=ExplorePreferences)


def settings_path() -> Path:
    return paths.config_dir() / FILE_NAME


def _migrate(data: dict[str, Any], version: int) -> dict[str, Any]:
    """Bring an older file up to SCHEMA_VERSION (one step per version as the schema grows)."""
    if version > SCHEMA_VERSION:
        log.warning("settings were written by a newer version (schema %s); unknown values "
                    "are ignored", version)
    if version < 2 and "quiz" in data:
        data = {**data, "study": data["quiz"]}
        del data["quiz"]
    return data


def _apply(target: Any, data: dict[str, Any]) -> None:
    """Keep a value only where its type matches the default's, so a hand-edited or damaged
    file costs those keys alone. JSON has one number type: a whole number written for a
    float field (``"alpha_percent": 1``) is that float, but a bool is never a number."""
    for f in dataclasses.fields(target):
        if f.name not in data:
            continue
        current, value = getattr(target, f.name), data[f.name]
        if dataclasses.is_dataclass(current) and isinstance(value, dict):
            _apply(current, value)
        elif isinstance(value, type(current)) and \
                isinstance(value, bool) == isinstance(current, bool):
            setattr(target, f.name, value)
        elif isinstance(current, float) and isinstance(value, int) and \
                not isinstance(value, bool):
            setattr(target, f.name, float(value))
        else:
            log.warning("ignoring setting %s=%r (expected %s)", f.name, value,
                        type(current).__name__)


def load_settings(path: Path | None = None) -> Settings:
    path = path or settings_path()
    settings = Settings()
    if not path.exists():
        return settings
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as error:
        backup = path.with_name(path.name + ".corrupt")
        log.warning("settings file %s is unreadable (%s); using defaults, kept it as %s",
                    path, error, backup.name)
        path.replace(backup)
        return settings
    _apply(settings, _migrate(data, int(data.get("schema_version", 1))))
    return settings


def _non_defaults(value: Any, default: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in dataclasses.fields(value):
        mine, theirs = getattr(value, f.name), getattr(default, f.name)
        if dataclasses.is_dataclass(mine):
            nested = _non_defaults(mine, theirs)
            if nested:
                out[f.name] = nested
        elif mine != theirs:
            out[f.name] = mine
    return out


def save_settings(settings: Settings, path: Path | None = None) -> None:
    data = {"schema_version": SCHEMA_VERSION, **_non_defaults(settings, Settings())}
    atomic_write_json(path or settings_path(), data)
