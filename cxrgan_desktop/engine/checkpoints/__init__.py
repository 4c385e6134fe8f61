"""Model files: the native safetensors format and importers for foreign checkpoints.

One entry point, :func:`load_generator`, detects the format, converts, validates and returns a
:class:`LoadedGenerator`. Foreign pickles are never unpickled with code execution.
"""

from cxrgan_desktop.core.model_errors import CheckpointError, UnsafeCheckpointError
from cxrgan_desktop.engine.checkpoints.loader import LoadedGenerator, load_generator
from cxrgan_desktop.engine.checkpoints.native import save_generator
from cxrgan_desktop.engine.checkpoints.output import OutputAdapter

__all__ = [
    "CheckpointError",
    "LoadedGenerator",
    "OutputAdapter",
    "UnsafeCheckpointError",
    "load_generator",
    "save_generator",
]
