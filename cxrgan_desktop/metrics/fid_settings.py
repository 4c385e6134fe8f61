"""How FID is measured, as plain records: the preprocessing and the sample-size advice
(torch-free: the CLI's help and the GUI read them without loading torch).

Resizing changes FID by whole points, so the mode is part of every result and of every cache
key. ``antialias`` (the default) is an antialiased bicubic resize, the sound way to bring a
1024 px radiograph down to 299 px (the kernel widens with the scale factor, like PIL's);
``pytorch-fid`` is plain bilinear interpolation without antialiasing, which is what
pytorch-fid does, so that scores can be compared with numbers published with it.
"""

from __future__ import annotations

from dataclasses import dataclass

INPUT_SIZE = 299
RECOMMENDED_N = 2048  # below this the covariance is singular and FID is not comparable
RESIZE_MODES = {
    "antialias": "antialiased bicubic (torch interpolate, antialias=True), clamped to [0, 1]",
    "pytorch-fid": "bilinear without antialiasing, align_corners=False (as pytorch-fid)",
}
DEFAULT_RESIZE = "antialias"


@dataclass(frozen=True)
class Preprocessing:
    resize: str = DEFAULT_RESIZE
    size: int = INPUT_SIZE

    def __post_init__(self) -> None:
        if self.resize not in RESIZE_MODES:
            raise ValueError(f"resize mode must be one of {sorted(RESIZE_MODES)}, "
                             f"got {self.resize!r}")

    def to_dict(self) -> dict[str, object]:
        return {"resize": self.resize, "resize_method": RESIZE_MODES[self.resize],
                "input_size": self.size, "input_range": "[0, 1] -> 2x - 1 = [-1, 1]",
                "channels": "grey replicated to 3"}
