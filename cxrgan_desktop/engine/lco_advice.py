"""What an LCO run's results say about its settings, in words a user can act on.

Two outcomes look like success or failure but are really a setting talking:

- **Accepted at step 0.** The classifier already read the requested findings in the starting
  image, so the sample passed before a single update: nothing was optimised and the image is
  plain ``generate`` output. A class-balanced classifier calls 0.5 against a 50 % prior, so
  at the default threshold many random images pass. The remedy is a stricter threshold.
- **None (or few) converged.** Every attempt ran out of steps. The best readings reached say
  whether the threshold is out of reach for this classifier and generator (lower it below
  what was reached) or merely far (more steps per attempt, more restarts).

:func:`advise` turns results (live :class:`~cxrgan_desktop.engine.lco.LCOResult` objects, or an
archive's item records) into an :class:`LCOAdvice`; the command line prints its remarks and
the Synthesise tab shows them. No Qt and no printing here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cxrgan_desktop.engine.lco import LCOResult, LCOTarget

FEW_CONVERGED = 0.5  # below this share of samples accepted, say what to change


@dataclass(frozen=True)
class Outcome:
    """One settled sample, reduced to what the advice needs (specified labels only)."""

    target: LCOTarget
    success: bool
    steps: int  # updates in the final attempt
    attempts: int
    start: dict[str, float]  # readings of the final attempt's starting image
    best: dict[str, float]  # most favourable readings over all attempts
    final: dict[str, float]

    @property
    def at_start(self) -> bool:
        """Accepted before any update: the starting image already passed."""
        return self.success and self.steps == 0

    @classmethod
    def from_result(cls, result: LCOResult, labels: Sequence[str]) -> Outcome:
        target = result.request.target

        def named(values: Any) -> dict[str, float]:
            return {n: float(values[labels.index(n)]) for n in target.specified}

        best = result.best_probabilities if result.best_probabilities is not None \
            else result.probabilities
        return cls(target, result.success, result.steps, result.attempts,
                   named(result.start_probabilities), named(best), named(result.probabilities))

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Outcome:
        """From an archive item's ``lco`` record; records written before ``best_probabilities``
        was kept fall back to the final readings."""
        target = LCOTarget.from_json(record["target"])
        final = record.get("probabilities") or {}
        start = record.get("start_probabilities") or final
        best = record.get("best_probabilities") or final

        def named(values: Mapping[str, float]) -> dict[str, float]:
            return {n: float(values[n]) for n in target.specified if n in values}

        return cls(target, bool(record["success"]), int(record.get("steps", 0)),
                   int(record.get("attempts", 1)), named(start), named(best), named(final))


@dataclass(frozen=True)
class LabelBest:
    """The best a requested label reached among the samples that did not converge."""

    label: str
    wanted: bool  # True: requested present
    threshold: float
    best: float  # highest reached (present) or lowest reached (absent)

    @property
    def reached(self) -> bool:
        return self.best >= self.threshold if self.wanted else self.best < self.threshold

    def needs(self) -> str:
        return f"{'≥' if self.wanted else '<'} {_p(self.threshold)}"

    def suggestion(self) -> float | None:
        """A threshold just on the reachable side of the best reading (a multiple of 0.05),
        or None when no sensible threshold is that side (the label was barely moved)."""
        if self.wanted:
            value = math.floor(self.best * 20) / 20
            value = value - 0.05 if value >= self.best else value
            return round(value, 2) if value >= 0.1 else None
        value = math.ceil(self.best * 20) / 20
        value = value + 0.05 if value <= self.best else value
        return round(value, 2) if value <= 0.9 else None


@dataclass(frozen=True)
class LCOAdvice:
    """Counts and remarks; ``remarks`` is empty when there is nothing to say."""

    finished: int
    accepted: int
    at_start: int  # accepted at step 0: nothing was optimised
    failed: int
    best: tuple[LabelBest, ...] = ()  # per requested label, among failed samples
    remarks: tuple[str, ...] = field(default=())

    def text(self) -> str:
        return "\n".join(self.remarks)


def _p(value: float) -> str:
    """A threshold as the user typed it: ``0.5``, ``0.85``, ``0.9999999``."""
    return f"{value:.2f}" if abs(value - round(value, 2)) < 1e-12 else f"{value:.7g}"


def _range(values: list[float]) -> str:
    low, high = min(values), max(values)
    return f"p = {low:.3f}" if high - low < 5e-4 else f"p = {low:.3f}-{high:.3f}"


def _at_start_remark(outcomes: list[Outcome], accepted: int) -> str:
    present: dict[str, list[float]] = {}
    absent: dict[str, list[float]] = {}
    for o in outcomes:
        for name in o.target.present:
            present.setdefault(name, []).append(o.start.get(name, math.nan))
        for name in o.target.absent:
            absent.setdefault(name, []).append(o.start.get(name, math.nan))
    reads = [f"{n} ({_range(v)})" for n, v in present.items()]
    reads += [f"no {n} ({_range(v)})" for n, v in absent.items()]
    text = (f"{len(outcomes)} of {accepted} accepted samples passed at step 0: the classifier "
            f"already reads {', '.join(reads)} in the starting "
            f"{'image' if len(outcomes) == 1 else 'images'}, so nothing was optimised (the "
            f"{'image is' if len(outcomes) == 1 else 'images are'} unchanged).")
    fixes = []
    if present:
        thresholds = sorted({o.target.threshold_of(n) for o in outcomes for n in o.target.present})
        highest = max(max(v) for v in present.values())
        fixes.append(f"raise the present threshold (now {', '.join(map(_p, thresholds))}) "
                     f"above {highest:.3f}, the highest starting reading")
    if absent:
        thresholds = sorted({o.target.threshold_of(n) for o in outcomes for n in o.target.absent})
        lowest = min(min(v) for v in absent.values())
        fixes.append(f"lower the absent threshold (now {', '.join(map(_p, thresholds))}) "
                     f"below {lowest:.3f}, the lowest starting reading")
    return f"{text} To make LCO change the image, {'; and '.join(fixes)}."


def _best_per_label(failed: list[Outcome]) -> tuple[LabelBest, ...]:
    best: dict[tuple[str, bool], LabelBest] = {}
    for o in failed:
        for name, wanted in o.target.requested().items():
            value = o.best.get(name)
            if value is None:
                continue
            key = (name, wanted)
            old = best.get(key)
            better = old is None or (value > old.best if wanted else value < old.best)
            threshold = o.target.threshold_of(name)
            if better:
                best[key] = LabelBest(name, wanted, threshold, value)
    return tuple(best.values())


def _not_converged_remark(failed: list[Outcome], finished: int, best: tuple[LabelBest, ...],
                          steps: int | None, restarts: int | None) -> str:
    budget = ""
    if steps is not None and restarts is not None:
        budget = f" in {restarts + 1} attempt{'s' if restarts else ''} of {steps} steps"
    which = "None" if len(failed) == finished else str(len(failed))
    text = f"{which} of {finished} samples converged" if which == "None" else \
        f"{which} of {finished} samples did not converge"
    readings = [f"{b.label} {b.best:.3f} (needs {b.needs()}"
                + ("; reached" if b.reached else "") + ")" for b in best]
    text = f"{text}{budget}. Best reached: {', '.join(readings)}."
    fixes = []
    for b in best:
        if b.reached:
            continue
        value = b.suggestion()
        side = "present" if b.wanted else "absent"
        direction = "lower" if b.wanted else "raise"
        where = "below" if b.wanted else "above"
        if value is None:
            fixes.append(f"{b.label} hardly moved ({b.best:.3f}): the classifier may not be "
                         f"able to read it in this generator's images")
        else:
            fixes.append(f"{direction} the {side} threshold of {b.label} {where} the best "
                         f"reached ({b.best:.3f}), e.g. to {_p(value)}")
    more = "give each attempt more steps" + (f" (now {steps})" if steps is not None else "")
    more += " or allow more restarts" + (f" (now {restarts})" if restarts is not None else "")
    if fixes:
        return f"{text} To get images: {'; '.join(fixes)}; or {more}."
    return (f"{text} Each label was reached on its own but not all together: {more}, or ask "
            "for fewer findings at once.")


def advise(outcomes: Iterable[Outcome], *, steps: int | None = None,
           restarts: int | None = None) -> LCOAdvice:
    """Read a run's settled samples; ``steps`` and ``restarts`` (the settings used) let the
    advice say what they were."""
    outcomes = list(outcomes)
    finished = len(outcomes)
    accepted = sum(o.success for o in outcomes)
    at_start = [o for o in outcomes if o.at_start]
    failed = [o for o in outcomes if not o.success]
    remarks = []
    if at_start:
        remarks.append(_at_start_remark(at_start, accepted))
    best: tuple[LabelBest, ...] = ()
    if failed and accepted < FEW_CONVERGED * finished:
        best = _best_per_label(failed)
        remarks.append(_not_converged_remark(failed, finished, best, steps, restarts))
    return LCOAdvice(finished, accepted, len(at_start), len(failed), best, tuple(remarks))


def advise_results(results: Iterable[LCOResult], labels: Sequence[str], *,
                   steps: int | None = None, restarts: int | None = None) -> LCOAdvice:
    """:func:`advise` for results of :func:`~cxrgan_desktop.engine.lco.optimise`."""
    return advise((Outcome.from_result(r, labels) for r in results), steps=steps,
                  restarts=restarts)
