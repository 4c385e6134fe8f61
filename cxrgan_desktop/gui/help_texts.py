"""Texts of the Help menu."""

CITATION = ("Segal B, Rubin DM, Rubin G, Pantanowitz A. Evaluating the Clinical Realism of "
            "Synthetic Chest X-Rays Generated Using Progressively Growing GANs. "
            "SN Computer Science 2, 321 (2021).")

ABOUT_HTML = (
    "<b>cxrgan-desktop {version}</b>"
    "<p>Synthetic chest radiographs with Progressive Growing GANs. MIT licence.</p>"
    f"<p>If you use the paper's model, please cite:<br>{CITATION}</p>"
    "<p>Built on Qt for Python (LGPLv3), pyqtgraph (MIT), PyTorch (BSD), pydicom (MIT), "
    "NumPy and SciPy (BSD), Pillow (MIT-CMU).</p>"
    "<p>Synthetic images are for research; exports are marked synthetic.</p>")

SHORTCUTS = [
    ("Ctrl+G", "generate"), ("Ctrl+L", "synthesise the chosen findings (LCO)"),
    ("Ctrl+Shift+F", "the FID tab"), ("Esc", "cancel the running job"),
    ("Ctrl+Shift+B", "build a reader study"), ("Ctrl+Shift+R", "take a reader study"),
    ("Ctrl+Shift+A", "analyse a reader study (the Study tab)"),
    ("Ctrl+Shift+T", "train on synthetic, test on real (the TSTR tab)"),
    ("Ctrl+O", "open images (or drop files on the window)"), ("Ctrl+Shift+O", "open a model"),
    ("Ctrl+E", "export the selected images"), ("C", "compare two selected images"),
    ("Left / Right", "previous / next image"),
    ("Drag (left button)", "window: horizontal = width, vertical = level"),
    ("Wheel", "zoom about the cursor"), ("Middle drag", "pan"),
    ("F", "fit to window"), ("1", "1:1 pixels"), ("Ctrl++ / Ctrl+-", "zoom in / out"),
    ("I", "invert"), ("R", "reset window and view"), ("2 … 9", "window presets"),
    ("O", "image overlay on / off (modality, size, window, zoom, model and seed)"),
    ("F11", "full screen"), ("F1", "this sheet"),
    ("Reader mode: 1 … 8", "rate the image (1 = most confidently real)"),
    ("Reader mode: Space", "next, after a practice image's feedback"),
    ("Reader mode: Backspace", "previous image, where the study allows it"),
]

SHORTCUTS_HTML = "<table>" + "".join(
    f"<tr><td><b>{keys}</b>&nbsp;&nbsp;</td><td>{what}</td></tr>" for keys, what in SHORTCUTS
) + "</table>"
