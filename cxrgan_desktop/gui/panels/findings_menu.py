"""The right-click menu of an image (in the viewer or the gallery): what the latent space
offers for it. An opened radiograph can be found in latent space; an image with a known
latent can be explored with the Findings sliders, or be the end of a morph from the image
being explored."""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import QMenu

from cxrgan_desktop.gui.panels.findings_projection import is_real
from cxrgan_desktop.gui.panels.findings_work import subject_of
from cxrgan_desktop.gui.viewer.gallery import GalleryEntry

FIND = "Find in latent space"
EXPLORE = "Explore findings"
MORPH = "Morph the explored image into this one"


def latent_menu(window: Any, entry: GalleryEntry) -> QMenu:
    """The menu for ``entry``; actions that do not apply are shown greyed, with why."""
    menu = QMenu(window)
    find = menu.addAction(FIND, lambda: window.find_in_latent_space(entry))
    find.setEnabled(is_real(entry))
    find.setToolTip("Fit a latent whose image reproduces this radiograph (projection)"
                    if is_real(entry) else "A generated image already has its latent")
    known = subject_of(entry) is not None

    def explore() -> None:
        window.show_task(window.findings_panel)
        window.findings.explore(entry)

    menu.addAction(EXPLORE, explore).setEnabled(known)
    state = window.findings.state
    morph = menu.addAction(MORPH, lambda: window.findings.morph_to(entry))
    morph.setEnabled(known and state is not None and state.subject.entry is not entry)
    menu.setToolTipsVisible(True)
    return menu
