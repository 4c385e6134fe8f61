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
