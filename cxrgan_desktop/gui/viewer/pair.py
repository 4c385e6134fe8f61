"""A synthetic image beside its nearest training image, and their difference.

The memorisation audit asks whether a generated radiograph is a copy of a training patient's;
the similarity number says how close, but a reader decides by looking. This view extends the
window's :class:`CompareView` (linked zoom, pan, window and inversion: dragging the window in
one changes both, in stored units) with a third viewer showing ``synthetic - training``.

The difference is shown in grey centred at 0 (mid-grey: equal; white: the synthetic image is
brighter) in 16-bit steps (the units of a 16-bit image's values, so -65535..65535), with its
own window (symmetric about 0; zoom and pan linked). When the two images differ in size the
training image is resampled onto the synthetic image's grid (area averaging when shrinking)
for both the view and the difference, and the caption says so: pixel-linked zoom and pan
mean nothing between grids of different sizes.

Reading and subtracting run in a worker (:func:`read_pair`); the widget only shows the result.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QGridLayout, QLabel, QSizePolicy, QWidget

from cxrgan_desktop.gui.viewer.viewer import CompareView, ImageViewer, ViewerPreferences
from cxrgan_desktop.imaging.display import DisplayInfo, DisplayUnits, NamedWindow, display_info
from cxrgan_desktop.imaging.image_file import LoadedImage
from cxrgan_desktop.imaging.windowing import Window

FULL_SCALE = 65535.0
DIFFERENCE_UNITS = DisplayUnits.from_range(-FULL_SCALE, FULL_SCALE,
                                           name="difference, 16-bit steps", decimals=0)
"""Pixel 0 of the difference image reads -65535, pixel 1 reads +65535. Not percent: a DICOM
window's ramp sits half a unit below its centre (PS3.3 C.11.2.1.2), which in percent would put
mid-grey at -0.5 %, and its width must be at least one unit."""


def on_grid(pixels: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``pixels`` ([H, W] float32 in [0, 1]) resampled to ``shape``: box (area) averaging when
    shrinking, bilinear when enlarging; the array itself when the shape is already right."""
    if pixels.shape == tuple(shape):
        return pixels
    from PIL import Image

    height, width = shape
    shrinking = height * width < pixels.shape[0] * pixels.shape[1]
    method = Image.Resampling.BOX if shrinking else Image.Resampling.BILINEAR
    image = Image.fromarray(np.ascontiguousarray(pixels, dtype=np.float32), mode="F")
    return np.clip(np.asarray(image.resize((width, height), method), dtype=np.float32), 0, 1)


def difference_image(synthetic: np.ndarray, training: np.ndarray) -> np.ndarray:
    """``synthetic - training`` ([H, W] float32 in [-1, 1]) on the synthetic image's grid."""
    return (synthetic.astype(np.float32)
            - on_grid(training, synthetic.shape).astype(np.float32)).astype(np.float32)


def difference_window(difference: np.ndarray) -> Window:
    """A window (difference units) centred at 0 that spans the 99.5th percentile of
    |difference| (at least 1 % of full scale), so the few largest differences do not flatten
    the rest to mid-grey."""
    spread = float(np.percentile(np.abs(difference), 99.5)) if difference.size else 0.0
    half = round(max(spread, 0.01) * FULL_SCALE)
    return Window(0.0, 2.0 * half)


@dataclass(frozen=True)
class PairImages:
    """Both files read, and their difference; made in a worker."""

    synthetic_path: Path
    training_path: Path
    synthetic: np.ndarray  # [H, W] float32 in [0, 1]
    training: np.ndarray  # [H, W] float32 in [0, 1], on the synthetic image's grid
    difference: np.ndarray  # [H, W] float32 in [-1, 1]: synthetic - training
    synthetic_info: DisplayInfo
    training_info: DisplayInfo
    training_size: tuple[int, int]  # the training file's own (width, height)
    difference_window: Window  # in DIFFERENCE_UNITS, centred at 0

    @property
    def resampled(self) -> bool:
        return self.training_size != (self.synthetic.shape[1], self.synthetic.shape[0])


def _captioned(image: LoadedImage, lines: tuple[str, ...]) -> DisplayInfo:
    info = display_info(image)
    return DisplayInfo(info.units, info.windows, (*lines, *info.caption))


def read_pair(synthetic_path: Path, training_path: Path, synthetic_caption: tuple[str, ...] = (),
              training_caption: tuple[str, ...] = ()) -> PairImages:
    """Read both files and subtract (in a worker: 1024 px files take tens of milliseconds)."""
    from cxrgan_desktop.imaging.readers import read_image

    synthetic, training = read_image(synthetic_path), read_image(training_path)
    on_synthetic_grid = on_grid(training.pixels, synthetic.pixels.shape)
    caption = training_caption
    if on_synthetic_grid is not training.pixels:
        caption = (*caption, f"resampled from {training.width} x {training.height}")
    difference = difference_image(synthetic.pixels, on_synthetic_grid)
    return PairImages(
        synthetic_path=Path(synthetic_path), training_path=Path(training_path),
        synthetic=synthetic.pixels, training=on_synthetic_grid, difference=difference,
        synthetic_info=_captioned(synthetic, synthetic_caption),
        training_info=_captioned(training, caption),
        training_size=(training.width, training.height),
        difference_window=difference_window(difference))


class PairView(QWidget):
    """Synthetic | nearest training | difference, each titled; zoom and pan linked across
    all three, window and inversion between the first two."""

    def __init__(self, parent: QWidget | None = None,
                 preferences: ViewerPreferences | None = None) -> None:
        super().__init__(parent)
        self.compare = CompareView(preferences=preferences)
        self.synthetic, self.training = self.compare.left, self.compare.right
        self.difference = ImageViewer(preferences=preferences)
        self.difference.view_box.setXLink(self.synthetic.view_box)
        self.difference.view_box.setYLink(self.synthetic.view_box)
        self.titles = [QLabel(""), QLabel(""), QLabel("Difference (synthetic − training)")]
        layout = QGridLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setHorizontalSpacing(4)
        layout.setVerticalSpacing(2)
        # Titles and overlays carry an audit's file names and patient ids, which a crafted
        # audit.csv chooses: as rich text, "<img src=/any/file>" would make Qt read a file
        # outside the audit's roots. Plain text shows them as written.
        for viewer in (self.synthetic, self.training, self.difference):
            viewer.overlay.setTextFormat(Qt.TextFormat.PlainText)
        for column, title in enumerate(self.titles):
            title.setTextFormat(Qt.TextFormat.PlainText)
            title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            title.setStyleSheet("padding: 2px 4px;")
            title.setWordWrap(True)  # a long file name must not widen its column
            title.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
            layout.addWidget(title, 0, column)
        layout.addWidget(self.compare, 1, 0, 1, 2)
        layout.addWidget(self.difference, 1, 2)
        layout.setColumnStretch(0, 1)
        layout.setColumnStretch(1, 1)
        layout.setColumnStretch(2, 1)
        layout.setRowStretch(1, 1)
        self.pair: PairImages | None = None

    def show_pair(self, pair: PairImages, synthetic_title: str = "",
                  training_title: str = "") -> None:
        """Show a pair read by :func:`read_pair`: both images take the synthetic image's
        default window (linked), the difference its own window centred at 0."""
        self.pair = pair
        self.compare.set_images(pair.synthetic, pair.training, pair.synthetic_info,
                                pair.training_info)
        centred = NamedWindow("Difference, centred at 0", pair.difference_window)
        info = DisplayInfo(DIFFERENCE_UNITS, (centred,),
                           ("synthetic − training",))
        self.difference.set_image((pair.difference + 1.0) / 2.0, reset_view=True, info=info)
        self.synthetic.fit()
        self.titles[0].setText(synthetic_title or f"Synthetic: {pair.synthetic_path.name}")
        self.titles[1].setText(training_title or f"Training: {pair.training_path.name}")
        for title, path in zip(self.titles, (pair.synthetic_path, pair.training_path),
                               strict=False):
            title.setToolTip(str(path))

    def clear(self) -> None:
        self.pair = None
        for title in self.titles[:2]:
            title.setText("")

    def displayed(self) -> dict[str, np.ndarray]:
        """The [H, W] uint8 pixels on screen (window and inversion applied), by part."""
        return {name: viewer.displayed_bytes() for name, viewer in
                (("synthetic", self.synthetic), ("training", self.training),
                 ("difference", self.difference)) if viewer.image() is not None}

    def set_preferences(self, preferences: ViewerPreferences) -> None:
        self.compare.set_preferences(preferences)
        self.difference.set_preferences(preferences)


def side_by_side(parts: list[np.ndarray], gap: int = 8) -> np.ndarray:
    """Equal-height uint8 images in a row with black gaps (the saved pair figure)."""
    height = max(part.shape[0] for part in parts)
    pieces: list[np.ndarray] = []
    for part in parts:
        if pieces:
            pieces.append(np.zeros((height, gap), dtype=np.uint8))
        padded = np.zeros((height, part.shape[1]), dtype=np.uint8)
        padded[:part.shape[0]] = part
        pieces.append(padded)
    return np.concatenate(pieces, axis=1)


def save_pair_pngs(displayed: dict[str, np.ndarray], folder: Path, stem: str) -> list[Path]:
    """Write each part as shown (8-bit, windowed) and the three side by side, atomically.
    Plain numpy and Pillow: it runs in a worker."""
    from cxrgan_desktop.imaging.png16 import write_png8

    written = []
    for name, data in displayed.items():
        path = folder / f"{stem}_{name}.png"
        write_png8(path, data)
        written.append(path)
    if len(displayed) > 1:
        path = folder / f"{stem}_pair.png"
        write_png8(path, side_by_side(list(displayed.values())))
        written.append(path)
    return written
