"""Text cells made safe for spreadsheets.

A CSV that a researcher opens in Excel or LibreOffice runs any cell that starts with ``=``,
``+``, ``-`` or ``@`` (and, in some versions, a tab or carriage return) as a formula: a
reader who types ``=HYPERLINK(...)`` as their name would have it run on the organiser's
machine. Such a text cell gets a leading apostrophe, the convention spreadsheets display
as plain text (OWASP, "CSV Injection"). Numbers are never passed through here.
"""

from __future__ import annotations

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(text: str) -> str:
    """``text`` unchanged, or with an apostrophe in front when a spreadsheet would run it."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text
