"""What a train-on-synthetic, test-on-real experiment is: its data, its arms and the one
classifier recipe every arm shares. Written as TOML or JSON (``cxrgan tstr CONFIG``)."""

from __future__ import annotations

import json
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import tomli_w

from cxrgan_desktop.engine.classifier.training import ClassifierTrainConfig
from cxrgan_desktop.labels.chestxray14 import FINDINGS

ARM_KINDS = ("real", "synthetic", "mixed", "scarce")
EXAMPLE = """\
# cxrgan tstr experiment.toml
real_images = "cxr14/images"              # the real labelled set (split by patient here)
real_labels = "cxr14/Data_Entry_2017.csv"
synthetic_images = "lco_archive"          # an LCO archive, or any folder of images ...
# synthetic_labels = "lco_archive/Data_Entry_lco.csv"   # ... with a Data_Entry-style CSV
labels = ["Cardiomegaly", "Effusion", "Pneumothorax"]
arms = ["real", "synthetic", "mixed", "scarce"]
mix_ratio = 1.0                           # synthetic images per real training image
scarce_fractions = [0.1, 0.25, 0.5]       # real training patients kept in the scarce arms
test_fraction = 0.2
seed = 0
bootstrap = 1000

[classifier]                              # the recipe every arm trains with
architecture = "densenet121"
input_size = 256
epochs = 10
batch_size = 16
"""


@dataclass(frozen=True)
class TSTRConfig:
    real_images: Path
    real_labels: Path
    synthetic_images: Path
    synthetic_labels: Path | None = None  # default: the folder's Data_Entry*.csv
    labels: tuple[str, ...] = FINDINGS
    arms: tuple[str, ...] = ("real", "synthetic", "mixed")
    mix_ratio: float = 1.0
    scarce_fractions: tuple[float, ...] = (0.1, 0.25, 0.5)
    test_fraction: float = 0.2
    seed: int = 0
    bootstrap: int = 1000
    classifier: ClassifierTrainConfig = field(default_factory=ClassifierTrainConfig)

    def __post_init__(self) -> None:
        for name in ("real_images", "real_labels", "synthetic_images"):
            object.__setattr__(self, name, Path(getattr(self, name)))
        if self.synthetic_labels is None:
            object.__setattr__(self, "synthetic_labels", find_label_file(self.synthetic_images))
        else:
            object.__setattr__(self, "synthetic_labels", Path(self.synthetic_labels))
        object.__setattr__(self, "labels", tuple(self.labels))
        object.__setattr__(self, "arms", tuple(self.arms))
        object.__setattr__(self, "scarce_fractions", tuple(float(f) for f in
                                                           self.scarce_fractions))
        unknown = [a for a in self.arms if a not in ARM_KINDS]
        if unknown or not self.arms:
            raise ValueError(f"arms must be some of {', '.join(ARM_KINDS)}; got "
                             f"{', '.join(self.arms) or 'none'}")
        if "real" not in self.arms:
            raise ValueError("the 'real' arm is the baseline every other arm is compared "
                             "with; keep it")
        if self.mix_ratio <= 0:
            raise ValueError(f"mix_ratio must be positive, got {self.mix_ratio}")
        if not all(0 < f < 1 for f in self.scarce_fractions):
            raise ValueError("scarce_fractions must lie strictly between 0 and 1")
        if not 0 < self.test_fraction < 1:
            raise ValueError(f"test_fraction must lie in (0, 1), got {self.test_fraction}")
        if self.bootstrap < 100:
            raise ValueError(f"bootstrap needs at least 100 resamples, got {self.bootstrap}")
        if tuple(self.classifier.labels) != self.labels:
            object.__setattr__(self, "classifier", ClassifierTrainConfig(
                **{**asdict(self.classifier), "labels": self.labels}))

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for key, value in data.items():
            if isinstance(value, Path):
                data[key] = str(value)
        data["classifier"]["labels"] = list(self.labels)
        return data


def find_label_file(folder: Path) -> Path:
    """The folder's Data_Entry*.csv (an LCO archive writes Data_Entry_lco.csv)."""
    found = sorted(Path(folder).glob("Data_Entry*.csv"))
    if len(found) != 1:
        raise ValueError(f"{folder}: expected one Data_Entry*.csv label file, found "
                         f"{len(found)}; name it with synthetic_labels")
    return found[0]


def load_config(path: str | Path) -> TSTRConfig:
    """Read a TOML or JSON experiment; relative paths are relative to the file."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
        data = json.loads(text) if file.suffix.lower() == ".json" else tomllib.loads(text)
    except FileNotFoundError as error:
        raise ValueError(f"{file}: no such file") from error
    except (OSError, ValueError) as error:
        raise ValueError(f"{file}: not a readable experiment ({error})") from error
    base = file.parent
    for key in ("real_images", "real_labels", "synthetic_images", "synthetic_labels"):
        if data.get(key):
            data[key] = base / data[key]
    known = {f.name for f in fields(ClassifierTrainConfig)}
    recipe = data.pop("classifier", {}) or {}
    extra = sorted(set(recipe) - known) + sorted(set(data) - {f.name for f in
                                                               fields(TSTRConfig)})
    if extra:
        raise ValueError(f"{file}: unknown setting(s) {', '.join(extra)}")
    try:
        return TSTRConfig(**data, classifier=ClassifierTrainConfig(
            **{**recipe, "labels": tuple(data.get("labels", FINDINGS))}))
    except (TypeError, ValueError) as error:
        raise ValueError(f"{file}: {error}") from error


def shared_findings(real_labels: str | Path, synthetic_labels: str | Path) -> tuple[str, ...]:
    """The findings with positives in both label files, in ChestX-ray14 order: the labels an
    experiment can measure (a label absent from either side has no AUROC or no training
    signal)."""
    from cxrgan_desktop.labels.chestxray14 import read_data_entry_csv

    present = [set().union(*(e.findings for e in read_data_entry_csv(path)))
               for path in (real_labels, synthetic_labels)]
    return tuple(f for f in FINDINGS if f in present[0] and f in present[1])


def _relative(path: Path, base: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(base.resolve()))
    except ValueError:
        return str(Path(path).resolve())


def write_config(config: TSTRConfig, path: str | Path) -> Path:
    """Save ``config`` where ``cxrgan tstr`` reads it: TOML, or JSON by the suffix. Paths
    below the file's folder are written relative to it, so the folder can move."""
    from cxrgan_desktop.core.fileio import atomic_write_text

    file = Path(path)
    data = config.to_json()
    for key in ("real_images", "real_labels", "synthetic_images", "synthetic_labels"):
        data[key] = _relative(Path(data[key]), file.parent)
    recipe = data.pop("classifier")
    recipe.pop("labels")  # the experiment's labels are the recipe's
    recipe.pop("name")  # each arm names its own classifier
    if file.suffix.lower() == ".json":
        text = json.dumps({**data, "classifier": recipe}, indent=1) + "\n"
    else:
        text = ("# cxrgan tstr experiment (written by cxrgan-desktop)\n"
                + tomli_w.dumps({**data, "classifier": recipe}))
    atomic_write_text(file, text)
    return file
