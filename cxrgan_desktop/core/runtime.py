"""Process-wide settings that must be made before torch is imported.

With glibc's malloc, about 40% of CPU time in large convolutional nets goes to the kernel
faulting in fresh pages, because every large tensor is a fresh mmap. PyTorch's CPU allocator
backs large allocations with transparent huge pages when THP_MEM_ALLOC_ENABLE=1 is set before
import, which removes most of that cost (tests/benchmarks/bench_generate.py measures it).
Both entry points (CLI and GUI) call :func:`configure_before_torch` first; a user's own
setting of the variable wins.
"""

from __future__ import annotations

import os


def configure_before_torch() -> None:
    os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")


def cli_command() -> list[str]:
    """How to start ``cxrgan`` as a child process (the Train tab runs training so): this
    interpreter with ``-m cxrgan_desktop``, or, in a frozen bundle, whose executable cannot
    take ``-m``, the ``cxrgan`` executable beside it."""
    import sys
    from pathlib import Path

    if getattr(sys, "frozen", False):
        return [str(Path(sys.executable).with_name("cxrgan"))]
    return [sys.executable, "-m", "cxrgan_desktop"]
