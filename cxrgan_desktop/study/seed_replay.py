"""The seed-replay attack: can a reader recover the truth by replaying seeded draws?

Up to version 0.1 the builder drew case ids and the real/synthetic assignment from
``default_rng([seed, 0x5175])`` with the seed defaulting to 0, so anyone could replay the
draws for seeds 0, 1, 2, ... and label every case from the package alone. The builder now
draws those secrets from the operating system (``secrets``); this module keeps the old
draws as the attacker would replay them, so that the leak audit can prove, on every package
it checks, that no seed in a range predicts the truth, and so that tests can plant the old
scheme and see the audit catch it.

The attacker knows the package (its sorted case ids and practice ids) and may guess how many
files each source folder held; the audit gives it those counts from the key, the strongest
case, and also tries the model-source variant where no file choice is drawn first.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import binom

from cxrgan_desktop.study.design import ID_ALPHABET, ID_LENGTH

LEGACY_STREAM = 0x5175  # the constant the old builder mixed into its seed
SEEDS_TRIED = range(0, 1000)
# The chance that a random assignment reaches the best accuracy seen by luck, after a
# Bonferroni correction over every seed and hypothesis tried. 1e-6 means a fairly built
# study is wrongly failed about once in a million builds.
FAMILY_ALPHA = 1e-6


def legacy_case_ids(count: int, rng: np.random.Generator) -> list[str]:
    """The old builder's id draw, consuming the generator exactly as it did. It called
    ``rng.choice(list(ID_ALPHABET), 8)``, which draws ``rng.integers(0, 31, 8)``; the integer
    form is the same stream (a test replays both) at a third of the cost."""
    ids: set[str] = set()
    while len(ids) < count:
        ids.add("".join(ID_ALPHABET[i] for i in rng.integers(0, len(ID_ALPHABET), ID_LENGTH)))
    return sorted(ids)


@dataclass(frozen=True)
class LegacyLayout:
    """What the old builder derived from a seed: the id list, and which ids were scored
    real, scored synthetic and practice (in the order it wrote them)."""

    ids: list[str]
    assignment: np.ndarray  # index into ``ids`` for each item, scored first


def legacy_layout(seed: int, file_counts: Sequence[int], n_items: int) -> LegacyLayout:
    """Replay the old builder: one permutation per folder source (choosing files), then the
    ids, then the assignment of items (real scored, synthetic scored, practice) to ids."""
    rng = np.random.default_rng([seed, LEGACY_STREAM])
    for count in file_counts:
        rng.permutation(count)
    ids = legacy_case_ids(n_items, rng)
    return LegacyLayout(ids, rng.permutation(n_items))


@dataclass(frozen=True)
class ReplayFinding:
    seed: int
    file_counts: tuple[int, ...]
    correct: int  # scored cases whose truth the replay guessed
    total: int
    p_value: float  # two-sided binomial against guessing, before correction
    ids_reproduced: bool  # the replay drew the package's very ids


def replay_attack(truth: dict[str, str], practice_ids: Sequence[str],
                  count_hypotheses: Iterable[Sequence[int]],
                  seeds: Iterable[int] = SEEDS_TRIED) -> list[ReplayFinding]:
    """For each seed and file-count hypothesis, how well the old draws label the scored
    cases (``truth``: id -> real | synthetic). The guess needs no id strings: the old
    assignment indexed the sorted id list, so it applies to the package's own ids even when
    those were drawn otherwise."""
    every_id = sorted([*truth, *practice_ids])
    n_real = sum(1 for value in truth.values() if value == "real")
    actually_real = {case for case, value in truth.items() if value == "real"}
    hypotheses = [tuple(h) for h in count_hypotheses]
    findings = []
    for seed in seeds:
        for counts in hypotheses:
            layout = legacy_layout(seed, counts, len(every_id))
            guessed_real = {every_id[i] for i in layout.assignment[:n_real]}
            correct = sum(1 for case in truth
                          if (case in guessed_real) == (case in actually_real))
            findings.append(ReplayFinding(seed, counts, correct, len(truth),
                                          _two_sided_p(correct, len(truth)),
                                          layout.ids == every_id))
    return findings


def _two_sided_p(correct: int, total: int) -> float:
    """Chance of labelling at least this far from half right by guessing: a replay that
    is reliably wrong unblinds as well as one that is reliably right."""
    extreme = max(correct, total - correct)
    return float(min(1.0, 2 * binom.sf(extreme - 1, total, 0.5)))


def judge(findings: list[ReplayFinding]) -> tuple[bool, str]:
    """(passed, detail): fails when a replay reproduces the package's ids, or labels the
    cases better (or worse) than chance beyond the corrected level."""
    if not findings:
        return True, "nothing to replay"
    reproduced = [f for f in findings if f.ids_reproduced]
    if reproduced:
        f = reproduced[0]
        return False, (f"seed {f.seed} replays the package's case ids: the truth of all "
                       f"{f.total} cases follows from the package alone")
    limit = FAMILY_ALPHA / len(findings)
    best = min(findings, key=lambda f: f.p_value)
    seeds = len({f.seed for f in findings})
    if best.p_value < limit:
        return False, (f"seed {best.seed} labels {best.correct} of {best.total} cases right "
                       f"(p = {best.p_value:.2g}, limit {limit:.2g}): the assignment follows "
                       "from a guessable seed")
    return True, (f"{seeds} seeds replayed, none predicts the truth (best {best.correct} of "
                  f"{best.total}, p = {best.p_value:.2g})")
