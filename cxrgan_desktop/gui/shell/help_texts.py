"""Texts of the Help menu, read from ``resources/help/`` (the About box, the citation and the
keyboard shortcuts sheet), so that they are edited as text, not as Python strings."""

from __future__ import annotations

from html import escape

from cxrgan_desktop.core.shipped import read_resource_text


def citation() -> str:
    return read_resource_text("help", "citation.txt").strip()


def about_html(version: str) -> str:
    return read_resource_text("help", "about.html").format(version=escape(version),
                                                          citation=escape(citation()))


def shortcuts() -> list[tuple[str, str]]:
    rows = []
    for line in read_resource_text("help", "shortcuts.tsv").splitlines():
        if line.strip() and not line.startswith("#"):
            keys, what = line.split("\t", 1)
            rows.append((keys, what))
    return rows


def shortcuts_html() -> str:
    rows = (f"<tr><td><b>{escape(keys)}</b>&nbsp;&nbsp;</td><td>{escape(what)}</td></tr>"
            for keys, what in shortcuts())
    return "<table>" + "".join(rows) + "</table>"
