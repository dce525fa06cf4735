"""Stages inside the LLM must not make the host wait for the GPU.

A CPU run cannot see synchronisations directly, so this counts the operators whose output size or
value must be read back from the device (``nonzero``, ``.item()``, boolean masks, ``unique``...)
or that copy a host scalar to it (``x[index] = scalar``) while the decoder-layer hooks run. On a
GPU each of them would stall the host until every queued layer had finished. (Host copies such as
``.tolist()`` do not dispatch on the CPU; the GPU benchmark's profile counts those: ``prunekit
bench efficiency``.)
"""

from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import prunekit
from prunekit.adapters.random_models import build_model, video_inputs
from prunekit.runtime.session import PruneSession

aten = torch.ops.aten
READS_BACK = {aten.nonzero, aten._local_scalar_dense, aten.masked_select, aten._unique2, aten.unique_dim,
              aten.unique_consecutive, aten.is_nonzero, aten.equal}


class ReadBackCounter(TorchDispatchMode):
    """Records every dispatched operator that needs a device value on the host."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        kwargs = kwargs or {}
        packet = func.overloadpacket
        if packet in READS_BACK:
            self.seen.append(str(func))
        elif packet is aten.repeat_interleave and kwargs.get("output_size") is None and len(args) == 1:
            self.seen.append(str(func))
        elif packet in (aten.index_put, aten.index_put_) and len(args) > 2 and args[2].dim() == 0:
            self.seen.append(str(func) + " (x[index] = scalar copies the scalar to the device)")
        elif packet is aten.index and any(isinstance(i, torch.Tensor) and i.dtype == torch.bool
                                          for i in (args[1] if len(args) > 1 else [])):
            self.seen.append(str(func) + " (boolean mask)")
        return func(*args, **kwargs)


@pytest.mark.parametrize("family", ["llava_onevision", "qwen2_vl"])
@pytest.mark.parametrize("preset", ["hieravid-30", "fastv", "pdrop"])
def test_in_llm_stages_read_nothing_back(family: str, preset: str, monkeypatch: pytest.MonkeyPatch) -> None:
    model = build_model(family, num_layers=24)  # deep enough for HieraVid's layers 7/14/21
    inputs = video_inputs(model, num_frames=8, seed=3).kwargs
    counter = ReadBackCounter()
    original = PruneSession._layer_stage
    calls = []

    def counted(self, index, hidden, kwargs):  # noqa: ANN001, ANN202
        calls.append(index)
        with counter:
            return original(self, index, hidden, kwargs)

    monkeypatch.setattr(PruneSession, "_layer_stage", counted)
    with prunekit.apply(model, preset), torch.no_grad():
        model.generate(**inputs, max_new_tokens=2, do_sample=False)
    assert calls, "the preset ran no stage inside the LLM"
    assert counter.seen == []
