"""The arms of the experiment: which real and which synthetic images each one trains on.

Every arm draws from the same real *training* patients (the test patients never appear in
any arm) and the mixed and scarce arms share one fixed synthetic sample, so arms differ only
in what the experiment varies. The scarce arms keep nested subsets of patients (the 10 %
subset lies inside the 25 % one), so the learning curve is not confounded by which patients
happened to be drawn at each size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from cxrgan_desktop.engine.classifier.data import LabelledImages, PooledImages
from cxrgan_desktop.engine.tstr.config import TSTRConfig


@dataclass
class Arm:
    name: str  # also its folder name
    kind: str  # real | synthetic | mixed | scarce
    real: np.ndarray  # indices into the real set (training patients only)
    synthetic: np.ndarray  # indices into the synthetic set
    real_fraction: float = 1.0  # of the training patients (scarce arms)

    def pool(self, real: LabelledImages, synthetic: LabelledImages) -> PooledImages:
        parts = [(data, ix) for data, ix in ((real, self.real), (synthetic, self.synthetic))
                 if len(ix)]
        return PooledImages(parts)

    def composition(self) -> dict[str, float | int]:
        return {"real_images": len(self.real), "synthetic_images": len(self.synthetic),
                "real_fraction": self.real_fraction}


def _percent(fraction: float) -> str:
    return f"{100 * fraction:g}%"


def plan_arms(config: TSTRConfig, real: LabelledImages, synthetic: LabelledImages,
              train: np.ndarray) -> list[Arm]:
    """The arms ``config.arms`` asks for, over real training indices ``train``."""
    rng = np.random.default_rng([config.seed, 0x7357])
    wanted = min(len(synthetic), max(1, round(config.mix_ratio * len(train))))
    fixed = np.sort(rng.choice(len(synthetic), wanted, replace=False))
    everything = np.arange(len(synthetic))
    arms: list[Arm] = []
    for kind in config.arms:
        if kind == "real":
            arms.append(Arm("real", kind, train, np.array([], np.int64)))
        elif kind == "synthetic":
            arms.append(Arm("synthetic", kind, np.array([], np.int64), everything))
        elif kind == "mixed":
            arms.append(Arm("mixed", kind, train, fixed))
        else:
            patients = rng.permutation(np.unique(real.patient_ids[train]))
            for fraction in config.scarce_fractions:
                kept = patients[:max(1, math.ceil(fraction * len(patients)))]
                subset = train[np.isin(real.patient_ids[train], kept)]
                label = _percent(fraction)
                arms.append(Arm(f"real-{label}", kind, subset, np.array([], np.int64),
                                fraction))
                arms.append(Arm(f"real-{label}+synthetic", kind, subset, fixed, fraction))
    return arms


# A mixed arm whose synthetic share falls this far below the one asked for is reported: the
# synthetic set is too small to mix at that ratio, and the arm is nearly the real one.
MIX_SHORTFALL = 0.5


def check_arms(config: TSTRConfig, arms: list[Arm], patient_ids_of, split
               ) -> tuple[list[str], list[str]]:
    """(problems, warnings) of the whole plan, before any arm trains: an arm whose training
    images after the classifier's own validation split do not fill one batch cannot train,
    and it should say so now, naming itself, not after an hour of other arms.
    ``patient_ids_of(arm)`` gives an arm's pooled patient ids; ``split(ids)`` the
    classifier's patient split."""
    recipe = config.classifier
    problems, warnings = [], []
    for arm in arms:
        train, _ = split(patient_ids_of(arm))
        if len(train) < recipe.batch_size:
            problems.append(f"arm {arm.name}: {len(train)} training images after the "
                            f"validation split ({len(arm.real)} real + {len(arm.synthetic)} "
                            f"synthetic before it), fewer than the batch size "
                            f"{recipe.batch_size}; lower the batch size or drop this arm")
        wanted = config.mix_ratio * len(arm.real)
        # the scarce arms reuse the mixed arm's sample: it is checked once, there
        if arm.kind == "mixed" and 0 < len(arm.synthetic) < MIX_SHORTFALL * wanted:
            warnings.append(f"arm {arm.name}: {len(arm.synthetic)} synthetic images beside "
                            f"{len(arm.real)} real ones, where mix_ratio "
                            f"{config.mix_ratio:g} asks for {round(wanted)}: the synthetic "
                            "set is too small, so this arm is nearly the real one")
    return problems, warnings
