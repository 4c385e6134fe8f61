"""Simulated readers, for trying a study's analysis before real readers take it.

Each simulated reader sees every case in their own order and rates it from an equal-variance
Gaussian signal-detection model: a latent value ~ N(d'/2, 1) for synthetic cases and
N(-d'/2, 1) for real ones, cut into the scale's points at evenly spaced thresholds. A
shared per-case term (``case_effect``) makes some images harder for every reader, so the
readers agree beyond chance, as real ones do. d' = 0.9 gives about 67 % accuracy, the range
reported for radiologists on PGGAN radiographs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cxrgan_desktop.study.key import StudyKey
from cxrgan_desktop.study.package import StudyPackage
from cxrgan_desktop.study.session import Answer, ReaderSession, open_session


def simulate_sessions(package: StudyPackage, key: StudyKey, readers: int, folder: Path, *,
                      d_prime: float = 0.9, case_effect: float = 0.5, seed: int = 0
                      ) -> list[ReaderSession]:
    rng = np.random.default_rng(seed)
    points = package.settings.scale.points
    cuts = np.linspace(-1.5, 1.5, points - 1)
    shared = {case: rng.normal(0.0, case_effect) for case in package.case_ids}
    sessions = []
    for index in range(readers):
        session = open_session(package, f"simulated-{index + 1}", folder)
        for case in session.order[len(session.answers):]:
            sign = 1.0 if key.truth(case) == "synthetic" else -1.0
            latent = sign * d_prime / 2 + shared[case] + rng.normal()
            rating = int(np.searchsorted(cuts, latent)) + 1
            session.answers.append(_answer(session, case, rating, rng))
        session.finished = session.finished or "simulated"
        session.save()
        sessions.append(session)
    return sessions


def _answer(session: ReaderSession, case: str, rating: int, rng: np.random.Generator
            ) -> Answer:
    return Answer(case, rating, round(float(rng.gamma(4.0, 2.0)), 3), "simulated",
                  session.order.index(case))
