"""How one follow-up film differs from a patient's first: position, breath, exposure.

Kept in its own module so that the renderer (which records the visit of each film) and the
follow-up planner (which draws visits) both use it without importing each other.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from cxrgan_desktop.imaging.phantom.anatomy import Anatomy


@dataclass(frozen=True)
class Visit:
    """How one film differs from the patient's first. Lengths are normalised (x right, y
    down); ``rotation_deg`` turns the patient counter-clockwise as displayed, about the image
    centre; ``inspiration`` > 0 is a deeper breath (domes lower, hila following by half).
    ``None`` keeps the patient's own exposure, contrast or noise."""

    shift_x: float = 0.0
    shift_y: float = 0.0
    rotation_deg: float = 0.0
    inspiration: float = 0.0
    exposure: float | None = None
    contrast: float | None = None
    noise: float | None = None

    def apply(self, a: Anatomy) -> Anatomy:
        """The patient's normal anatomy as it is on this film (before findings)."""
        return dataclasses.replace(
            a,
            dome_right_y=a.dome_right_y + self.inspiration,
            dome_left_y=a.dome_left_y + self.inspiration,
            hilum_y=a.hilum_y + 0.5 * self.inspiration,
            exposure=a.exposure if self.exposure is None else self.exposure,
            contrast=a.contrast if self.contrast is None else self.contrast,
            noise=a.noise if self.noise is None else self.noise)
