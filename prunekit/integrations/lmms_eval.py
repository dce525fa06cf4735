"""lmms-eval plugin: ``--model prunekit`` wraps lmms-eval's own video LLM classes and prunes them.

    lmms-eval --model prunekit \
        --model_args pretrained=llava-hf/llava-onevision-qwen2-7b-ov-hf,base=llava_hf,max_frames_num=32,\
prunekit_preset=hieravid-30,prunekit_budget=0.3,prunekit_mode=layer_average \
        --tasks videomme --batch_size 1 --output_path out/

``base`` picks the wrapped lmms-eval model class (`BASES`): ``llava_hf`` (LLaVA-OneVision / LLaVA-Video
HF checkpoints), ``qwen2_vl`` or ``qwen2_5_vl``; every other model argument goes to it unchanged.
prunekit's own arguments: ``prunekit_preset`` (a preset name or a config file; omit it, or pass
``none``, for the unpruned baseline in the same harness), ``prunekit_budget`` (retention in (0, 1]),
``prunekit_mode`` (``layer_average`` or ``input``) and ``prunekit_stats`` (a JSON file that receives
the realized retention and FLOPs ratio averaged over every prefill of the run).

lmms-eval finds this module through the entry point ``lmms_eval.models`` -> `manifest`. It stays
import-light: the model class (which imports lmms-eval and torch) loads only when lmms-eval asks
for ``PrunekitModel``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from prunekit.integrations.lmms_eval_bases import BASES

if TYPE_CHECKING:  # the real import is lazy (see `__getattr__`): it needs lmms-eval
    from prunekit.integrations._lmms_eval_model import PrunekitModel

__all__ = ["MODEL_ID", "BASES", "PRUNEKIT_ARGS", "manifest", "PrunekitModel"]

MODEL_ID = "prunekit"
PRUNEKIT_ARGS = ("base", "prunekit_preset", "prunekit_budget", "prunekit_mode", "prunekit_stats")


def manifest() -> list[Any]:
    """The ``lmms_eval.models`` entry point: one simple model, ``prunekit``."""
    from lmms_eval.models.registry_v2 import ModelManifest

    return [ModelManifest(model_id=MODEL_ID, simple_class_path=f"{__name__}.PrunekitModel")]


def __getattr__(name: str) -> Any:
    if name == "PrunekitModel":
        from prunekit.integrations._lmms_eval_model import PrunekitModel

        return PrunekitModel
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
