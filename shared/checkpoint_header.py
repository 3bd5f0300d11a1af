"""What a `torch.save` checkpoint holds, read without torch: tensor shapes and plain metadata.

The API (whose image has no torch) must say what a checkpoint is before it queues work for it ("this
checkpoint is D-FINE N with 80 classes (COCO); size l does not match"). A checkpoint is a zip whose
`data.pkl` names its tensors' shapes; we read that pickle with an unpickler that knows only the few names a
weights file uses (tensor rebuild, storage types, OrderedDict) and returns their shapes; any other object it
names (an optimizer's Counter, training arguments) becomes an inert stand-in: no storage is read, no module
of the file is imported, nothing of it runs.
"""

from __future__ import annotations

import io
import os
import pickle
import zipfile
from dataclasses import dataclass

from shared.errors import InputError


@dataclass(frozen=True)
class TensorShape:
    shape: tuple[int, ...]


def _rebuild_tensor(_storage, _offset, size, *_rest) -> TensorShape:
    return TensorShape(tuple(int(s) for s in size))


def _rebuild_parameter(data, *_rest):
    return data


def _storage_type(*_args, **_kwargs):
    return None


class _Opaque:
    """What any other object of the file reads as: it takes whatever arguments and state it is given."""

    def __init__(self, *_args, **_kwargs) -> None:
        pass

    def __setstate__(self, _state) -> None:
        pass

    def __setitem__(self, _key, _value) -> None:
        pass

    def append(self, _value) -> None:
        pass

    def extend(self, _values) -> None:
        pass


class _OrderedDict(dict):
    """A state dict: `model.state_dict()` carries `_metadata` (set by BUILD), which is dropped."""

    def __setstate__(self, _state) -> None:
        pass


class _HeaderUnpickler(pickle.Unpickler):
    ALLOWED = {
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
        ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
        ("collections", "OrderedDict"): _OrderedDict,
    }

    def find_class(self, module: str, name: str):
        if (module, name) in self.ALLOWED:
            return self.ALLOWED[(module, name)]
        if module == "torch" and (name.endswith("Storage") or name in _DTYPES):
            return _storage_type
        return _Opaque  # anything else (an optimizer's Counter, training args): a stand-in, nothing imported

    def persistent_load(self, _pid):
        return None  # a tensor's storage: its bytes are not read


_DTYPES = {"float32", "float16", "bfloat16", "float64", "int64", "int32", "int16", "int8", "uint8", "bool"}


def read_header(path: str | os.PathLike) -> object:
    """The checkpoint's object tree with every tensor replaced by its `TensorShape`."""
    try:
        with zipfile.ZipFile(path) as archive:
            name = next((n for n in archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl"), None)
            if name is None:
                raise InputError("not a torch.save checkpoint (no data.pkl inside)", source=str(path))
            data = archive.read(name)
    except FileNotFoundError:
        raise InputError("checkpoint not found", source=str(path)) from None
    except (zipfile.BadZipFile, IsADirectoryError):
        raise InputError("not a torch.save checkpoint (not a zip archive; one saved before torch 1.6 needs "
                         "saving again)", source=str(path)) from None  # fmt: skip
    try:
        return _HeaderUnpickler(io.BytesIO(data)).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
        raise InputError(f"not a plain weights file: {exc}", source=str(path)) from None


def state_shapes(tree: object, *paths: tuple[str, ...]) -> dict[str, tuple[int, ...]] | None:
    """The first of `paths` (keys into the tree, e.g. ("ema", "module")) that leads to a dict of tensors, as
    name -> shape."""
    for path in paths:
        node = tree
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict) and node and all(isinstance(v, TensorShape) for v in node.values()):
            return {name: value.shape for name, value in node.items()}
    return None
