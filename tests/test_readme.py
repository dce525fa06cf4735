"""The README's set-up is what CI runs."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _bash_blocks(text: str) -> list[str]:
    return [b.strip() for b in re.findall(r"```bash\n(.*?)```", text, flags=re.S)]


def test_readme_has_two_setup_commands_and_ci_runs_the_test_command() -> None:
    blocks = _bash_blocks((ROOT / "README.md").read_text())
    install, tests = blocks[0], blocks[1]
    assert "pip install torch==2.14.1 torchvision==0.29.1" in install and install.endswith("prunekit run")
    ci = (ROOT / ".ci" / "run").read_text()
    assert tests in ci.splitlines(), "the README's test command must be the last step of .ci/run"
    assert "torch==2.14.1 torchvision==0.29.1" in ci


def test_readme_vllm_test_command_is_what_ci_runs() -> None:
    """The README's vLLM test command (third block) is, step by step, the end of `.ci/run`."""
    blocks = _bash_blocks((ROOT / "README.md").read_text())
    steps = [step.strip() for step in blocks[2].split("&&")]
    ci = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line and not line.startswith("#")]
    assert steps == ci[-len(steps):], "the README's vLLM test command must be the last steps of .ci/run"
