"""The experiment's statistics: every arm on the one real test set, and each arm against the
real-data baseline (paired: the same test images, the same bootstrap resamples)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from cxrgan_desktop.metrics import auroc_compare as ac
from cxrgan_desktop.metrics.auroc import auroc_per_label

BASELINE = "real"


def _num(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else round(float(value), 6)


def arm_statistics(probabilities: dict[str, np.ndarray], truth: np.ndarray,
                   patients: np.ndarray, labels: tuple[str, ...], n_boot: int, seed: int
                   ) -> dict[str, Any]:
    """``probabilities``: arm -> ``[N_test, L]``. Returns per arm: per-label AUROC with a
    patient-bootstrap 95 % interval, macro AUROC with its interval and, against the
    baseline arm, per-label paired DeLong differences and the macro difference with a
    paired-bootstrap interval and p."""
    resamples = ac.resample_indices(len(truth), n_boot, seed, patients)
    boot = {arm: ac.bootstrap_aurocs(p, truth, resamples) for arm, p in probabilities.items()}
    base = probabilities[BASELINE]
    out: dict[str, Any] = {}
    for arm, probs in probabilities.items():
        point = np.array(auroc_per_label(probs, truth))
        macro = float(ac.macro(point))
        macro_boot = ac.macro(boot[arm])
        per_label = []
        for j, label in enumerate(labels):
            low, high = ac.percentile_interval(boot[arm][:, j])
            entry: dict[str, Any] = {"label": label, "auroc": _num(point[j]), "low": _num(low),
                                     "high": _num(high), "positives": int(truth[:, j].sum())}
            if arm != BASELINE:
                test = ac.delong_paired(base[:, j], probs[:, j], truth[:, j])
                entry["vs_real"] = {"difference": _num(test.difference), "low": _num(test.low),
                                    "high": _num(test.high), "p_delong": _num(test.p_value)}
            per_label.append(entry)
        low, high = ac.percentile_interval(macro_boot)
        record: dict[str, Any] = {"macro_auroc": _num(macro), "macro_low": _num(low),
                                  "macro_high": _num(high), "labels": per_label}
        if arm != BASELINE:
            differences = macro_boot - ac.macro(boot[BASELINE])
            d_low, d_high = ac.percentile_interval(differences)
            record["macro_vs_real"] = {
                "difference": _num(macro - float(ac.macro(np.array(auroc_per_label(base,
                                                                                   truth))))),
                "low": _num(d_low), "high": _num(d_high),
                "p_bootstrap": _num(ac.bootstrap_p_value(differences))}
        out[arm] = record
    return out


def _fmt(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def results_table(results: dict[str, Any]) -> str:
    """The experiment as text: one line per arm, then per-label AUROCs."""
    arms = results["arms"]
    lines = [f"Train on synthetic, test on real: {results['test']['images']} real test images "
             f"({results['test']['patients']} patients), {results['bootstrap']} patient "
             "bootstrap resamples", ""]
    lines += [f"warning: {warning}" for warning in results.get("warnings", [])]
    if results.get("warnings"):
        lines.append("")
    header = (f"{'arm':<26} {'real':>6} {'synth':>6}  {'macro AUROC (95% CI)':<24} "
              f"{'vs real (95% CI)':<26} {'p':>8}")
    lines += [header, "-" * len(header)]
    for name, arm in arms.items():
        stats = arm["statistics"]
        ci = (f"{_fmt(stats['macro_auroc'])} ({_fmt(stats['macro_low'])}-"
              f"{_fmt(stats['macro_high'])})")
        versus, p = "", ""
        if "macro_vs_real" in stats:
            v = stats["macro_vs_real"]
            versus = f"{v['difference']:+.3f} ({_fmt(v['low'])} to {_fmt(v['high'])})" \
                if v["difference"] is not None else "n/a"
            p = _fmt(v["p_bootstrap"], 4)
        composition = arm["composition"]
        lines.append(f"{name:<26} {composition['real_images']:>6} "
                     f"{composition['synthetic_images']:>6}  {ci:<24} {versus:<26} {p:>8}")
    lines += ["", "Per-label AUROC (95% CI); vs real: paired DeLong difference, p", ""]
    for name, arm in arms.items():
        lines.append(f"{name}:")
        for entry in arm["statistics"]["labels"]:
            text = (f"  {entry['label']:<20} {_fmt(entry['auroc'])} ({_fmt(entry['low'])}-"
                    f"{_fmt(entry['high'])}), {entry['positives']} positives")
            if "vs_real" in entry and entry["vs_real"]["difference"] is not None:
                v = entry["vs_real"]
                text += f"; vs real {v['difference']:+.3f}, p {_fmt(v['p_delong'], 4)}"
            lines.append(text)
    return "\n".join(lines) + "\n"


# -- what the figures show (kept here, without Qt, so that it is tested on its own) ---------

Interval = tuple[float | None, float | None, float | None]  # estimate, low, high


def main_arms(results: dict[str, Any]) -> list[str]:
    """The arms trained on all real training patients (or none): real, synthetic, mixed."""
    return [name for name, arm in results["arms"].items() if arm["kind"] != "scarce"]


def label_intervals(results: dict[str, Any], arm: str) -> list[Interval]:
    """Per-label AUROC with its interval, then the macro AUROC's, for one arm."""
    stats = results["arms"][arm]["statistics"]
    per_label = [(e["auroc"], e["low"], e["high"]) for e in stats["labels"]]
    return [*per_label, (stats["macro_auroc"], stats["macro_low"], stats["macro_high"])]


def learning_curve(results: dict[str, Any]) -> dict[str, list[tuple[float, Interval]]]:
    """Macro AUROC against the fraction of real training patients, without and with the
    fixed synthetic set; the full-data end of each curve is the real and the mixed arm.
    Empty when the experiment had no scarce arms."""
    arms = results["arms"]
    if not any(arm["kind"] == "scarce" for arm in arms.values()):
        return {}
    curves: dict[str, list[tuple[float, Interval]]] = {"real only": [],
                                                       "real + synthetic": []}
    for arm in arms.values():
        if arm["kind"] not in ("scarce", "real", "mixed"):
            continue
        composition, stats = arm["composition"], arm["statistics"]
        series = "real + synthetic" if composition["synthetic_images"] else "real only"
        point = (stats["macro_auroc"], stats["macro_low"], stats["macro_high"])
        curves[series].append((float(composition["real_fraction"]), point))
    return {series: sorted(points, key=lambda p: p[0]) for series, points in curves.items()
            if points}


SUMMARY_COLUMNS = ("Arm", "Real", "Synthetic", "Macro AUROC", "95 % CI", "vs real",
                   "95 % CI (diff.)", "p")


def summary_rows(results: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of the results table the window shows: one row per arm, the macro
    comparison, then each label's AUROC; undefined values as –."""
    def text(value: float | None, digits: int = 3) -> str:
        return "–" if value is None else f"{value:.{digits}f}"

    first = next(iter(results["arms"].values()))
    labels = [e["label"] for e in first["statistics"]["labels"]]
    header = [*SUMMARY_COLUMNS, *labels]
    rows = []
    for name, arm in results["arms"].items():
        stats, composition = arm["statistics"], arm["composition"]
        versus = stats.get("macro_vs_real")
        row = [name, str(composition["real_images"]), str(composition["synthetic_images"]),
               text(stats["macro_auroc"]),
               f"{text(stats['macro_low'])} – {text(stats['macro_high'])}"]
        if versus is None:
            row += ["baseline", "", ""]
        else:
            difference = versus["difference"]
            row += ["–" if difference is None else f"{difference:+.3f}",
                    f"{text(versus['low'])} – {text(versus['high'])}",
                    text(versus["p_bootstrap"], 4)]
        row += [text(e["auroc"]) for e in stats["labels"]]
        rows.append(row)
    return header, rows
