"""Which images a phantom set holds: patients, follow-ups per patient, names and seeds.

Why a module of its own: the writing job, its resume, and anyone checking a set (tests,
audits) must agree on the same deterministic layout. Image ``(p, f)`` (patient ``p``,
follow-up ``f``) depends only on ``(seed, p, f)``, and the number of follow-ups of patient
``p`` only on ``(seed, p)``; images are ordered patient by patient, so the first ``n``
images of a set do not depend on how many are asked for (the last patient may be cut short).

Images per patient, ``"chestxray14"``: one image with probability :data:`P_ONE_IMAGE`
(17,503 of ChestX-ray14's 30,805 patients have one), otherwise ``k`` in 2..50 with
probability proportional to ``k ** -TAIL_EXPONENT``; the exponent is chosen so that the mean
is ChestX-ray14's 112,120 / 30,805 = 3.640 images per patient. Against the dataset (which
reaches 184 images; 151 patients have more than 50): P(2) 0.142 (dataset 0.134), P(3) 0.070
(0.068), P(5) 0.029 (0.030), P(10) 0.0088 (0.0104), P(20) 0.0026 (0.0024); standard deviation
6.4. It matches the mean and the shape, not every detail.
"""

from __future__ import annotations

import functools
import re

import numpy as np

PATIENT_ID_OFFSET = 900_000  # synthetic patient ids cannot collide with ChestX-ray14 ids (<= 30805)
CHESTXRAY14 = "chestxray14"
P_ONE_IMAGE = 17_503 / 30_805
TAIL_EXPONENT = 1.7288
MAX_CHESTXRAY14_IMAGES = 50
MAX_IMAGES_PER_PATIENT = 1000  # a three-digit follow-up number
CHESTXRAY14_MEAN = 112_120 / 30_805

ImagesPerPatient = str | int
_NAME_RE = re.compile(r"^(\d{8})_(\d{3})\.png$")


def check_images_per_patient(value: ImagesPerPatient) -> ImagesPerPatient:
    """``"chestxray14"`` or a whole number 1..1000 (also given as text); raise ValueError."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text == CHESTXRAY14:
            return CHESTXRAY14
        if not text.isdigit():
            raise ValueError(f"images per patient must be {CHESTXRAY14!r} or a whole number "
                             f"from 1 to {MAX_IMAGES_PER_PATIENT}, got {value!r}")
        value = int(text)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) \
            or not 1 <= value <= MAX_IMAGES_PER_PATIENT:
        raise ValueError(f"images per patient must be {CHESTXRAY14!r} or a whole number from "
                         f"1 to {MAX_IMAGES_PER_PATIENT}, got {value!r}")
    return int(value)


@functools.lru_cache(maxsize=1)
def chestxray14_probabilities() -> np.ndarray:
    """P(k images) for k = 1..50 (index k - 1), float64, summing to 1."""
    k = np.arange(2, MAX_CHESTXRAY14_IMAGES + 1, dtype=np.float64)
    tail = k ** -TAIL_EXPONENT
    return np.concatenate([[P_ONE_IMAGE], (1 - P_ONE_IMAGE) * tail / tail.sum()])


def describe(images_per_patient: ImagesPerPatient) -> dict[str, object]:
    """The distribution, for a manifest."""
    if images_per_patient != CHESTXRAY14:
        return {"kind": "fixed", "images": int(images_per_patient)}
    p = chestxray14_probabilities()
    return {"kind": CHESTXRAY14, "p_one": P_ONE_IMAGE, "tail": "k ** -exponent, k = 2..50",
            "exponent": TAIL_EXPONENT, "max": MAX_CHESTXRAY14_IMAGES,
            "mean": float(p @ np.arange(1, p.size + 1))}


def follow_up_count(seed: int, patient: int, images_per_patient: ImagesPerPatient) -> int:
    """How many images patient ``patient`` has; a function of ``(seed, patient)`` only."""
    if images_per_patient != CHESTXRAY14:
        return int(images_per_patient)
    u = np.random.default_rng(np.random.SeedSequence([seed, patient], spawn_key=(2,))).uniform()
    cdf = np.cumsum(chestxray14_probabilities())
    return int(min(np.searchsorted(cdf, u * cdf[-1], side="right"), cdf.size - 1)) + 1


def image_seeds(seed: int, patient: int, follow_up: int
                ) -> tuple[np.random.SeedSequence, np.random.SeedSequence]:
    """Seeds of image ``(patient, follow_up)``'s labels and of its rendering.

    Follow-up 0 uses the two children that format 1 used for image ``patient``, so a set of
    one image per patient has the same labels and pixels as a format-1 set; later follow-ups
    get children of their own.
    """
    if follow_up == 0:
        labels, render = np.random.SeedSequence([seed, patient]).spawn(2)
        return labels, render
    labels, render = np.random.SeedSequence([seed, patient], spawn_key=(3, follow_up)).spawn(2)
    return labels, render


def image_name(patient: int, follow_up: int) -> str:
    """ChestX-ray14-style file name: ``{patient id:08d}_{follow-up:03d}.png``."""
    return f"{PATIENT_ID_OFFSET + patient:08d}_{follow_up:03d}.png"


def parse_image_name(name: str) -> tuple[int, int] | None:
    """``(patient, follow_up)`` of a phantom image name, or None for any other name."""
    match = _NAME_RE.match(name)
    if not match or int(match.group(1)) < PATIENT_ID_OFFSET:
        return None
    return int(match.group(1)) - PATIENT_ID_OFFSET, int(match.group(2))


def age_at(first_age: int, follow_up: int) -> int:
    """Age on follow-up ``follow_up``: ChestX-ray14 patients span 1 to 3 years whatever their
    number of films (2 films: 1.1 years apart on average; 21-50 films: 2.9), so the age grows
    with the logarithm of the follow-up number."""
    return int(first_age + round(0.75 * np.log2(1 + follow_up)))


def patient_starts(seed: int, images_per_patient: ImagesPerPatient, patients: int
                   ) -> np.ndarray:
    """Position in the set of the first image of patients 0..``patients`` (int64, length
    ``patients + 1``; the last entry is the number of images of the first ``patients``)."""
    counts = [follow_up_count(seed, q, images_per_patient) for q in range(patients)]
    return np.concatenate([[0], np.cumsum(counts, dtype=np.int64)]).astype(np.int64)


def layout(seed: int, images_per_patient: ImagesPerPatient, n: int) -> list[tuple[int, int]]:
    """The first ``n`` images of the set, ``(patient, follow_up)`` in order."""
    out: list[tuple[int, int]] = []
    patient = 0
    while len(out) < n:
        count = follow_up_count(seed, patient, images_per_patient)
        out.extend((patient, f) for f in range(count))
        patient += 1
    return out[:n]
