"""Model names and file names from untrusted sources, made safe to show and to install.

A model file's metadata, an archive member or a file name can carry control characters: an
ANSI escape (``\\x1b[31m``) printed raw recolours or rewrites a terminal, a newline forges
extra lines in a log or a report, a bidirectional override reorders what a reader sees. Every
place that shows such a name passes it through :func:`printable`; names the application
installs under are refused outright by :func:`check_model_name`. Torch-free and Qt-free, so
the CLI, the GUI and the engine can all use it.
"""

from __future__ import annotations

import unicodedata

# Unicode categories that change how the rest of a line is shown, not glyphs: Cc (C0/C1
# controls, DEL), Cf (format: bidi overrides, zero-width joiners), Zl/Zp (line and paragraph
# separators), Cs (lone surrogates, which cannot be encoded for output)
_UNSHOWABLE = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})
MAX_NAME_LENGTH = 128
_SHORT_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def printable(text: object) -> str:
    """``text`` with every control or format character written as a Python escape
    (``\\x1b``, ``\\n``, ``\\u202e``), so the result is one line of visible characters.
    Backslashes are kept as they are: Windows paths pass through here too."""
    out = []
    for char in str(text):
        if char in _SHORT_ESCAPES:
            out.append(_SHORT_ESCAPES[char])
        elif unicodedata.category(char) in _UNSHOWABLE:
            # repr() escapes C0/C1 controls as \xNN; format characters it leaves raw
            code = ord(char)
            out.append(f"\\x{code:02x}" if code < 0x100 else
                       f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
        else:
            out.append(char)
    return "".join(out)


def check_model_name(name: str) -> str:
    """``name`` if it can name an installed model (a file stem in the models folder), else
    ValueError saying why. Refused: empty or over-long names, path separators, leading dots
    (hidden files, ``..``) and any character :func:`printable` would have to escape."""
    if not name or not name.strip():
        raise ValueError("a model name cannot be empty")
    if len(name) > MAX_NAME_LENGTH:
        raise ValueError(f"a model name has at most {MAX_NAME_LENGTH} characters, got "
                         f"{len(name)}")
    if "\\" in name or any(unicodedata.category(c) in _UNSHOWABLE for c in name):
        raise ValueError(f"model name '{printable(name)}' contains control or formatting "
                         "characters or a backslash; choose a name of visible characters")
    if "/" in name or name.startswith("."):
        raise ValueError(f"model name '{name}' may not contain '/' or start with '.'")
    return name
