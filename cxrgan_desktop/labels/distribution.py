"""Which findings a phantom shows: prevalence and co-occurrence of the 14 ChestX-ray14 labels.

Why: a synthetic set is only a useful stand-in for ChestX-ray14 (for training the LCO
classifier, for FID tests, for reader studies) if its labels are distributed like the real ones,
co-occurrences included (effusion with atelectasis, cardiomegaly with effusion, ...). The
default distribution samples whole label sets from the empirical distribution of label
combinations in the real label file, which reproduces every per-label prevalence and every
pairwise (indeed every higher-order) co-occurrence exactly in expectation.

The numbers are shipped as ``resources/phantom/chestxray14_label_stats.json`` (computed by
:func:`compute_label_stats` from ``Data_Entry_2017_v2020.csv``) so that the package works
without the real file.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cxrgan_desktop.core.shipped import read_resource_text
from cxrgan_desktop.labels.chestxray14 import (
    FINDINGS,
    NO_FINDING,
    format_findings,
    parse_findings,
    read_data_entry_csv,
)

STATS_FILE = "chestxray14_label_stats.json"


def compute_label_stats(csv_path: str | os.PathLike[str]) -> dict[str, Any]:
    """Label-combination counts of a ChestX-ray14 label file, as stored in the shipped JSON.

    ``combinations`` maps each ``Finding Labels`` string (canonical order) to its image count,
    sorted by count then name so that the JSON is reproducible byte for byte.
    """
    entries = read_data_entry_csv(csv_path)
    counts = Counter(format_findings(e.findings) for e in entries)
    combos = dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
    per_label = {f: sum(c for k, c in counts.items() if f in k.split("|")) for f in FINDINGS}
    return {
        "source": os.path.basename(os.fspath(csv_path)).removesuffix(".gz"),
        "n_images": len(entries),
        "label_counts": per_label,
        "combinations": combos,
    }


def load_shipped_stats() -> dict[str, Any]:
    """The label statistics shipped with the package (see :func:`compute_label_stats`)."""
    text = read_resource_text("phantom", STATS_FILE)
    return json.loads(text)


@dataclass(frozen=True)
class LabelDistribution:
    """A distribution over label sets (frozensets of finding names).

    Two kinds: ``"empirical"`` (weighted label combinations, the default from the real file)
    and ``"independent"`` (each finding present with its own probability). ``forced`` findings
    are present in every sample: an empirical distribution is conditioned on them (only
    combinations containing all of them are drawn, keeping realistic companions); when no
    combination contains them all they are added to an unconditioned draw. ``excluded``
    findings never appear (empirical combinations containing them are dropped).
    """

    kind: str
    combinations: tuple[tuple[frozenset[str], float], ...] = ()
    prevalences: tuple[tuple[str, float], ...] = ()
    forced: frozenset[str] = frozenset()
    excluded: frozenset[str] = frozenset()
    source: str = ""
    _cache: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in ("empirical", "independent"):
            raise ValueError(f"unknown distribution kind {self.kind!r}")
        for name in self.forced | self.excluded:
            if name not in FINDINGS:
                raise ValueError(f"unknown finding {name!r}; known: {', '.join(FINDINGS)}")
        if self.forced & self.excluded:
            both = sorted(self.forced & self.excluded)
            raise ValueError(f"findings both forced and excluded: {both}")
        if self.kind == "empirical" and not self.combinations:
            raise ValueError("an empirical distribution needs at least one label combination")

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def chestxray14(cls) -> LabelDistribution:
        """The default: label combinations of the real ChestX-ray14 file (shipped numbers)."""
        stats = load_shipped_stats()
        return cls.from_counts(stats["combinations"], source=stats["source"])

    @classmethod
    def from_counts(cls, counts: Mapping[str, float], source: str = "") -> LabelDistribution:
        """From ``{"Finding Labels" string: count}`` (``No Finding`` for the empty set)."""
        combos = tuple((parse_findings(k), float(v)) for k, v in counts.items() if v > 0)
        return cls(kind="empirical", combinations=combos, source=source)

    @classmethod
    def from_label_sets(cls, label_sets: Iterable[frozenset[str]], source: str = ""
                        ) -> LabelDistribution:
        """The empirical distribution of the given label sets (e.g. a label file's rows)."""
        counts = Counter(format_findings(s) for s in label_sets)
        return cls.from_counts(counts, source=source)

    @classmethod
    def independent(cls, prevalences: Mapping[str, float]) -> LabelDistribution:
        """Each finding independently present with the given probability (others: never)."""
        for name, p in prevalences.items():
            if name not in FINDINGS:
                raise ValueError(f"unknown finding {name!r}; known: {', '.join(FINDINGS)}")
            if not 0.0 <= float(p) <= 1.0:
                raise ValueError(f"prevalence of {name} must be in [0, 1], got {p}")
        prev = tuple((f, float(prevalences.get(f, 0.0))) for f in FINDINGS)
        return cls(kind="independent", prevalences=prev, source="user prevalences")

    def with_constraints(self, forced: Iterable[str] = (), excluded: Iterable[str] = ()
                         ) -> LabelDistribution:
        """A copy that always includes ``forced`` and never ``excluded`` findings."""
        return LabelDistribution(
            kind=self.kind,
            combinations=self.combinations,
            prevalences=self.prevalences,
            forced=self.forced | frozenset(forced),
            excluded=self.excluded | frozenset(excluded),
            source=self.source,
        )

    # -- the effective distribution ------------------------------------------------------------
    def _table(self) -> tuple[list[frozenset[str]], np.ndarray, bool]:
        """Allowed combinations, their probabilities, and whether ``forced`` must be added."""
        if "table" not in self._cache:
            combos = [(s, w) for s, w in self.combinations if not (s & self.excluded)]
            add_forced = False
            if self.forced:
                conditioned = [(s, w) for s, w in combos if self.forced <= s]
                if conditioned:
                    combos = conditioned
                else:
                    add_forced = True
            if not combos:
                raise ValueError("every label combination contains an excluded finding")
            weights = np.array([w for _, w in combos], dtype=np.float64)
            self._cache["table"] = ([s for s, _ in combos], weights / weights.sum(), add_forced)
        return self._cache["table"]

    def _independent_p(self) -> np.ndarray:
        p = np.array([dict(self.prevalences).get(f, 0.0) for f in FINDINGS], dtype=np.float64)
        for i, f in enumerate(FINDINGS):
            if f in self.forced:
                p[i] = 1.0
            if f in self.excluded:
                p[i] = 0.0
        return p

    def sample(self, rng: np.random.Generator, n: int | None = None) -> Any:
        """One label set (``n`` is None) or a list of ``n`` label sets."""
        count = 1 if n is None else int(n)
        if self.kind == "independent":
            present = rng.random((count, len(FINDINGS))) < self._independent_p()
            out = [frozenset(f for f, on in zip(FINDINGS, row, strict=True) if on)
                   for row in present]
        else:
            sets, probs, add_forced = self._table()
            picks = rng.choice(len(sets), size=count, p=probs)
            out = [sets[i] | self.forced if add_forced else sets[i] for i in picks]
        return out[0] if n is None else out

    def prevalence(self) -> dict[str, float]:
        """Expected fraction of samples showing each finding."""
        if self.kind == "independent":
            return dict(zip(FINDINGS, self._independent_p().tolist(), strict=True))
        matrix = self.cooccurrence()
        return {f: float(matrix[i, i]) for i, f in enumerate(FINDINGS)}

    def no_finding_fraction(self) -> float:
        """Expected fraction of samples with no finding at all."""
        if self.kind == "independent":
            return float(np.prod(1.0 - self._independent_p()))
        sets, probs, add_forced = self._table()
        if add_forced and self.forced:
            return 0.0
        return float(sum(p for s, p in zip(sets, probs, strict=True) if not s))

    def cooccurrence(self) -> np.ndarray:
        """14 x 14 matrix of P(finding i and finding j present); the diagonal is prevalence."""
        if self.kind == "independent":
            p = self._independent_p()
            matrix = np.outer(p, p)
            np.fill_diagonal(matrix, p)
            return matrix
        sets, probs, add_forced = self._table()
        indicator = np.zeros((len(sets), len(FINDINGS)))
        for row, s in enumerate(sets):
            labels = s | self.forced if add_forced else s
            for i, f in enumerate(FINDINGS):
                indicator[row, i] = f in labels
        return indicator.T @ (indicator * probs[:, None])

    # -- storage -------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        """A JSON-able description (recorded in phantom manifests)."""
        out: dict[str, Any] = {"kind": self.kind, "source": self.source}
        if self.kind == "empirical":
            out["combinations"] = {format_findings(s): w for s, w in self.combinations}
        else:
            out["prevalences"] = dict(self.prevalences)
        out["forced"] = [f for f in FINDINGS if f in self.forced]
        out["excluded"] = [f for f in FINDINGS if f in self.excluded]
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LabelDistribution:
        """Inverse of :meth:`to_json`."""
        if data.get("kind") == "empirical":
            base = cls.from_counts(data["combinations"], source=data.get("source", ""))
        elif data.get("kind") == "independent":
            base = cls.independent(data["prevalences"])
        else:
            raise ValueError(f"unknown label distribution kind {data.get('kind')!r}")
        return base.with_constraints(data.get("forced", ()), data.get("excluded", ()))


__all__ = ["NO_FINDING", "LabelDistribution", "compute_label_stats", "load_shipped_stats"]
