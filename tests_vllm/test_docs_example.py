"""The `LLM(...)` example of docs/vllm.md runs, against the tiny Qwen2.5-VL checkpoint."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

PAGE = Path(__file__).resolve().parents[1] / "docs" / "vllm.md"
DOC_MODEL = '"Qwen/Qwen2.5-VL-7B-Instruct"'


def offline_example() -> str:
    """The page's only python block (marked skip-test for the main suite, which has no vLLM)."""
    blocks = re.findall(r"```python\n(.*?)```", PAGE.read_text(encoding="utf-8"), flags=re.S)
    assert len(blocks) == 1, "docs/vllm.md should have exactly one python block, the LLM(...) example"
    return blocks[0]


@pytest.mark.usefixtures("no_env_strategy")
def test_the_offline_example_of_the_docs_runs(checkpoints) -> None:
    code = offline_example()
    assert DOC_MODEL in code and "LLM(" in code
    # the tiny checkpoint in place of the 7B one; eager and short context keep a 2-core start-up quick
    code = code.replace(DOC_MODEL, repr(str(checkpoints["qwen2_5_vl"])))
    code = code.replace("LLM(", 'LLM(enforce_eager=True, max_model_len=2048, dtype="float32", '
                        'distributed_executor_backend="uni",', 1)
    namespace: dict = {}
    exec(compile(code, str(PAGE), "exec"), namespace)
    out = namespace["out"][0]
    assert len(out.outputs[0].token_ids) > 0
    assert namespace["llm"].llm_engine.model_config.hf_config.prunekit_strategy == "divprune"
    video_tokens = out.prompt_token_ids.count(namespace["llm"].llm_engine.model_config.hf_config.video_token_id)
    assert video_tokens == 32  # 16 frames at 112 px: 8 x 4 x 4 = 128 tokens, rate 0.75 keeps 32
