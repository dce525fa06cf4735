"""Fixtures of the vLLM tests: tiny checkpoints and one-process vLLM engines (run in .venv-vllm).

All cases share one process: ``import vllm`` and vLLM's first look at each registered model class
are the slow parts, and both happen once.
"""

from __future__ import annotations

import gc
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# vLLM inspects each newly registered model class once in a subprocess (about 50 s); its cache lives in
# the venv, which .ci/run rebuilds, so the inspection is cached within a run
os.environ.setdefault("VLLM_CACHE_ROOT", str(Path(sys.prefix) / "vllm-cache"))
sys.path.insert(0, str(Path(__file__).parent))

import tiny_models  # noqa: E402

BUILTIN = {
    "qwen2_5_vl": ("Qwen2_5_VLForConditionalGeneration",
                   "vllm.model_executor.models.qwen2_5_vl:Qwen2_5_VLForConditionalGeneration"),
    "qwen3_vl": ("Qwen3VLForConditionalGeneration",
                 "vllm.model_executor.models.qwen3_vl:Qwen3VLForConditionalGeneration"),
}


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The two tiny checkpoints, saved once."""
    root = tmp_path_factory.mktemp("ckpt")
    return {"qwen2_5_vl": tiny_models.save_qwen2_5_vl(root / "qwen2_5_vl"),
            "qwen3_vl": tiny_models.save_qwen3_vl(root / "qwen3_vl")}


class Served:
    """One generate through a fresh engine: prompt length, token ids, first-step logprobs, kept ids."""

    def __init__(self, output, keeps: list[dict]) -> None:  # noqa: ANN001 - a vLLM RequestOutput
        self.prompt_len = len(output.prompt_token_ids)
        completion = output.outputs[0]
        self.token_ids = list(completion.token_ids)
        self.logprobs = [{tok: lp.logprob for tok, lp in step.items()} for step in completion.logprobs]
        self.keeps = keeps


@pytest.fixture(scope="session")
def serve(checkpoints: dict[str, Path], tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    """``serve(model, rate, strategy=None, builtin=False)`` -> `Served` (greedy, 3 tokens, top-5 logprobs)."""
    from vllm import SamplingParams


    log = tmp_path_factory.mktemp("keep") / "keep.jsonl"
    os.environ["PRUNEKIT_VLLM_KEEP_LOG"] = str(log)

    def run(model: str, rate: float, strategy: object = None, builtin: bool = False) -> Served:
        log.write_text("")
        llm = make_llm(checkpoints[model], rate, strategy, builtin=builtin, model=model)
        try:
            frames, meta = tiny_models.video()
            out = llm.generate({"prompt": tiny_models.PROMPTS[model], "multi_modal_data": {"video": (frames, meta)}},
                               SamplingParams(max_tokens=3, temperature=0.0, logprobs=5), use_tqdm=False)
        finally:
            del llm
            gc.collect()
        keeps = [json.loads(line) for line in log.read_text().splitlines()]
        return Served(out[0], keeps)

    return run


def make_llm(path: Path, rate: float, strategy: object = None, builtin: bool = False,  # noqa: ANN201
             model: str | None = None):
    """A one-process vLLM engine on ``path`` (float32, eager) with an optional prunekit strategy; ``model``
    (default: the folder's name) is served by vLLM's own class with ``builtin``, else by the plugin's
    (registered again each time: an earlier builtin engine in this process may have replaced it)."""
    from vllm import LLM, ModelRegistry
    from vllm.model_executor.model_loader import utils as loader_utils

    import prunekit.integrations.vllm as plugin

    arch, builtin_path = BUILTIN[model or Path(path).name]
    ModelRegistry.register_model(arch, builtin_path if builtin else plugin.ARCHITECTURES[arch])
    # vLLM caches the class it resolved per checkpoint for the life of the process; these tests switch
    # between vLLM's class and the plugin's on the same checkpoint, so the choice is made afresh each time
    loader_utils._MODEL_ARCH_BY_HASH.clear()

    overrides = None if strategy is None else {"prunekit_strategy": strategy}
    return LLM(model=str(path), dtype="float32", enforce_eager=True, distributed_executor_backend="uni",
               max_model_len=512, limit_mm_per_prompt={"video": 1, "image": 0}, seed=0,
               video_pruning_rate=rate or None, hf_overrides=overrides)


@pytest.fixture
def no_env_strategy(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No ``PRUNEKIT_VLLM_STRATEGY`` from the caller's environment."""
    monkeypatch.delenv("PRUNEKIT_VLLM_STRATEGY", raising=False)
    yield


@pytest.fixture(scope="session")
def served_pruned(serve):  # noqa: ANN001, ANN201
    """``served_pruned(model, strategy)``: one pruned serve per pair, shared by the tests that read it."""
    cache: dict = {}

    def get(model: str, strategy: str) -> Served:
        if (model, strategy) not in cache:
            cache[model, strategy] = serve(model, 0.7, strategy=strategy)
        return cache[model, strategy]

    return get


@pytest.fixture(scope="session")
def served_full(serve):  # noqa: ANN001, ANN201
    """``served_full(model)``: vLLM's built-in class, pruning off (served once per model)."""
    cache: dict = {}

    def get(model: str) -> Served:
        if model not in cache:
            cache[model] = serve(model, 0.0, builtin=True)
        return cache[model]

    return get
