"""An unpickler that builds tensors and plain data, and refuses everything else.

``torch.load(weights_only=True)`` is tried first; it refuses the harmless extras some
checkpoints carry (a Lightning ``hyper_parameters`` entry holding an ``argparse.Namespace``).
For those files torch's loader is driven with this module as its ``pickle_module``: every
global the pickle names is looked up in an allow-list of tensor-rebuilding functions and plain
containers; known harmless record types are replaced by a dict stand-in; anything else (such
as ``os.system``) raises :class:`RefusedGlobal` before it is imported, so it never runs.
"""

from __future__ import annotations

import collections
import pickle
from typing import Any, BinaryIO

import torch


class RefusedGlobal(pickle.UnpicklingError):
    def __init__(self, module: str, name: str) -> None:
        self.qualified_name = f"{module}.{name}"
        super().__init__(f"refused to import {self.qualified_name}")


class RecordStandIn(dict):
    """Takes the place of a record type (Namespace, AttributeDict) as a plain dict."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()
        if args and isinstance(args[0], dict):
            self.update(args[0])
        self.update(kwargs)

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple):  # (dict_state, slots_state)
            state = state[0] or {}
        if isinstance(state, dict):
            self.update(state)


_RECORD_TYPES = {
    ("argparse", "Namespace"),
    ("pytorch_lightning.utilities.parsing", "AttributeDict"),
    ("lightning_fabric.utilities.data", "AttributeDict"),
    ("lightning.fabric.utilities.data", "AttributeDict"),
    ("types", "SimpleNamespace"),
}

_DTYPES = {name for name in dir(torch) if isinstance(getattr(torch, name, None), torch.dtype)}

_ALLOWED: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "slice"): slice,
    ("builtins", "complex"): complex,
    ("torch", "Size"): torch.Size,
    ("torch", "device"): torch.device,
    ("torch._utils", "_rebuild_tensor"): torch._utils._rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): torch._utils._rebuild_parameter_with_state,
}


def _record_reconstructor(cls: Any, base: Any = None, state: Any = None) -> Any:
    """copyreg._reconstructor replacement: only ever builds a stand-in record."""
    if cls is not RecordStandIn:
        raise RefusedGlobal("copyreg", "_reconstructor")
    return RecordStandIn()


class Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if module == "torch" and name in _DTYPES:
            return getattr(torch, name)
        if (module, name) in _RECORD_TYPES:
            return RecordStandIn
        if (module, name) == ("copyreg", "_reconstructor"):
            return _record_reconstructor
        if (module, name) == ("builtins", "object"):
            return object
        raise RefusedGlobal(module, name)


def load(file: BinaryIO, **kwargs: Any) -> Any:
    return Unpickler(file, **kwargs).load()


def loads(data: bytes, **kwargs: Any) -> Any:
    import io

    return load(io.BytesIO(data), **kwargs)
