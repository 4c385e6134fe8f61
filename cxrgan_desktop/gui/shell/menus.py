"""The main window's menus and keyboard shortcuts."""

from __future__ import annotations

from PySide6.QtGui import QAction, QKeySequence


def _action(window, menu, text: str, slot, shortcut=None, tip: str = "") -> QAction:
    action = QAction(text, window)
    if shortcut is not None:
        action.setShortcut(QKeySequence(shortcut))
    action.setStatusTip(tip)
    action.triggered.connect(slot)
    menu.addAction(action)
    return action


def build_menus(window) -> None:
    """Menus and keyboard shortcuts of the main window (listed in resources/help/shortcuts.tsv)."""
    bar = window.menuBar()
    file_menu = bar.addMenu("&File")
    _action(
        window,
        file_menu,
        "&Open image…",
        window.images.open_images,
        QKeySequence.StandardKey.Open,
        "Open DICOM, PNG, JPEG or TIFF radiographs",
    )
    _action(
        window,
        file_menu,
        "Open &model…",
        window.generate.open_model,
        "Ctrl+Shift+O",
        "Open a generator weights file",
    )
    _action(
        window,
        file_menu,
        "&Export selected…",
        window.exporter.export_selected,
        "Ctrl+E",
        "Save the selected images as 16-bit PNG, windowed 8-bit PNG or DICOM",
    )
    file_menu.addSeparator()
    _action(window, file_menu, "Take a reader &study…", window.study_panel.choose_study,
            "Ctrl+Shift+R", "Open a .cxrstudy package in reader mode (full screen)")
    file_menu.addSeparator()
    _action(window, file_menu, "&Preferences…", window.edit_preferences,
            QKeySequence.StandardKey.Preferences, "Mouse buttons and directions for window/level")
    _action(window, file_menu, "&Quit", window.close, QKeySequence.StandardKey.Quit)

    image_menu = bar.addMenu("&Image")
    _action(window, image_menu, "&Generate", window.generate_panel.request_generate, "Ctrl+G")
    _action(window, image_menu, "&Synthesise findings (LCO)", window.lco_panel.request_lco,
            "Ctrl+L", "Latent class optimisation for the findings chosen in the Synthesise tab")
    _action(window, image_menu, "Measure &FID…", window.show_fid_panel, "Ctrl+Shift+F",
            "Open the FID tab: FID and KID between real images and a model or folder")
    _action(window, image_menu, "&Build a reader study…", window.study_panel.open_builder,
            "Ctrl+Shift+B", "Real and synthetic images into a blinded package and its key")
    _action(window, image_menu, "&Analyse a reader study", window.show_study_panel,
            "Ctrl+Shift+A", "The Study tab: score readers' sessions and see the statistics")
    _action(window, image_menu, "&Train on synthetic, test on real…", window.show_tstr_panel,
            "Ctrl+Shift+T", "The TSTR tab: does synthetic data help a classifier?")
    _action(window, image_menu, "&Memorisation audit…", window.show_audit_panel,
            "Ctrl+Shift+M", "The Audit tab: are generated images too close to training patients?")
    _action(window, image_menu, "E&xplore findings…", window.explore_findings, "Ctrl+Shift+X",
            "The Findings tab: a slider per finding on the chosen generated image, morphs")
    _action(window, image_menu, "Find in &latent space…", window.find_in_latent_space,
            "Ctrl+Shift+P", "Project the chosen opened radiograph into the generator's latent "
            "space (original | reconstruction | difference)")
    _action(window, image_menu, "&Cancel job", window.cancel_job, "Esc")
    image_menu.addSeparator()
    _action(window, image_menu, "&Next image", lambda: window.gallery.step(1), "Right")
    _action(window, image_menu, "&Previous image", lambda: window.gallery.step(-1), "Left")

    view = bar.addMenu("&View")
    _action(window, view, "&Invert", window._toggle_invert, "I")
    _action(window, view, "&Reset window and view", window.viewer.reset, "R")
    _action(window, view, "&Fit to window", window.viewer.fit, "F")
    _action(window, view, "&1:1 pixels", window.viewer.one_to_one, "1")
    _action(window, view, "Image &overlay", window.viewer.toggle_overlay, "O",
            "Modality, size, window, zoom (and model, seed) in the viewer's corner")
    _action(window, view, "Zoom &in", lambda: window.viewer.zoom_by(1.25), QKeySequence.ZoomIn)
    _action(window, view, "Zoom &out", lambda: window.viewer.zoom_by(0.8), QKeySequence.ZoomOut)
    presets = view.addMenu("Window &presets")
    for number, name in enumerate(window.viewer.preset_names(), start=2):
        shortcut = str(number) if number <= 9 else None
        _action(
            window, presets, name, lambda _=False, n=name: window.viewer.apply_preset(n), shortcut
        )
    view.addSeparator()
    _action(window, view, "&Compare two selected images", window.images.toggle_compare, "C")
    _action(window, view, "F&ull screen", window._toggle_full_screen, "F11")

    help_menu = bar.addMenu("&Help")
    _action(window, help_menu, "&Welcome…", window.show_welcome, None,
            "What the application does, and how to get a model (download, import, train)")
    _action(window, help_menu, "&Keyboard shortcuts", window.show_shortcuts, "F1")
    _action(window, help_menu, "&About cxrgan-desktop", window.show_about)
