"""The lmms-eval model classes the ``prunekit`` lmms-eval model can wrap (its ``base=`` argument)."""

BASES = {
    "llava_hf": "lmms_eval.models.simple.llava_hf.LlavaHf",
    "qwen2_vl": "lmms_eval.models.simple.qwen2_vl.Qwen2_VL",
    "qwen2_5_vl": "lmms_eval.models.simple.qwen2_5_vl.Qwen2_5_VL",
}
"""lmms-eval model classes ``base=`` can wrap (their simple, i.e. non-chat, variants)."""
