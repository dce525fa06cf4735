"""The pre-LLM keep shared by the Hugging Face runtime and the vLLM plugin, and the plugin's settings."""

from __future__ import annotations

import pytest
import torch

import prunekit
from prunekit import Budget, Pipeline
from prunekit.errors import BudgetError, ConfigError, InvalidInputError, UnknownStrategyError
from prunekit.integrations.vllm import check_rate, load_strategy, strategy_setting
from prunekit.pre_llm import check_pre_llm, keep_before_llm, video_layout

SERVABLE = ["uniform", "random", "divprune", "dycoke", "vidcom2"]
IN_LLM = ["hieravid-30", "fastv", "pdrop", "framefusion", "prunevid"]
ATTENTION = ["visionzip", "cdpruner", "fastvid", "holitom"]
GRID = (4, 4)


def features(frames: int = 8, seed: int = 0) -> torch.Tensor:
    return torch.randn(frames * GRID[0] * GRID[1], 32, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", SERVABLE)
@pytest.mark.parametrize("keep", [8, 19, 64, 127])
def test_keep_is_exact_sorted_and_unique(name: str, keep: int) -> None:
    kept = keep_before_llm(Pipeline(prunekit.presets.get(name)), features(), GRID, keep)
    ids = kept.keep.tolist()
    assert len(ids) == keep and ids == sorted(set(ids)) and 0 <= ids[0] and ids[-1] < 128


@pytest.mark.parametrize("name", SERVABLE)
def test_keep_equals_the_pipelines_own_layer0_stage_at_the_same_count(name: str) -> None:
    """One implementation: the keep is what `Pipeline.simulate` (the HF runtime's calls) keeps at that budget."""
    feats, keep = features(), 19
    pipeline = Pipeline(prunekit.presets.get(name).with_budget(Budget(keep / feats.shape[0], "input")))
    simulated = pipeline.simulate(feats.view(8, 16, -1), video_layout(8, GRID), num_layers=4)
    assert keep_before_llm(pipeline, feats, GRID, keep).keep.tolist() == simulated.kept[0].tolist()


def test_keep_everything_returns_every_id_unmerged() -> None:
    kept = keep_before_llm(Pipeline(prunekit.presets.get("divprune")), features(), GRID, 128)
    assert kept.keep.tolist() == list(range(128)) and len(kept.merge) == 0


def test_levels_follow_the_same_keep_and_merge() -> None:
    feats = features()
    pipeline = Pipeline(prunekit.presets.get("dycoke"))
    kept = keep_before_llm(pipeline, feats, GRID, 40)
    stacked = torch.cat([feats, 2 * feats], dim=1)  # a second "level" that is twice the first
    out = kept.apply(stacked)
    assert torch.equal(out[:, :32], kept.apply(feats)) and torch.allclose(out[:, 32:], 2 * kept.apply(feats))


@pytest.mark.parametrize("keep", [0, 129])
def test_keep_outside_the_video_is_a_budget_error(keep: int) -> None:
    with pytest.raises(BudgetError, match="keep must be in"):
        keep_before_llm(Pipeline(prunekit.presets.get("uniform")), features(), GRID, keep)


def test_features_that_are_not_whole_frames_are_refused() -> None:
    with pytest.raises(InvalidInputError, match="token grid"):
        keep_before_llm(Pipeline(prunekit.presets.get("uniform")), features()[:-1], GRID, 10)


@pytest.mark.parametrize("name", SERVABLE)
def test_servable_presets_pass_the_pre_llm_check(name: str) -> None:
    check_pre_llm(load_strategy(name))


@pytest.mark.parametrize("name", IN_LLM)
def test_in_llm_presets_are_refused(name: str) -> None:
    with pytest.raises(ConfigError, match="inside the LLM|last query"):
        load_strategy(name)


@pytest.mark.parametrize("name", ATTENTION)
def test_attention_ranked_presets_are_refused(name: str) -> None:
    with pytest.raises(ConfigError, match="last query token's attention"):
        load_strategy(name)


def test_unknown_preset_names_the_known_ones() -> None:
    with pytest.raises(UnknownStrategyError, match="divprune"):
        load_strategy("divprun")


def test_missing_config_file_is_a_config_error(tmp_path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_strategy(str(tmp_path / "nope.yaml"))


def test_inline_mapping_and_file_load_the_same_strategy(tmp_path) -> None:
    config = prunekit.presets.get("vidcom2")
    config.save(tmp_path / "v.yaml")
    assert load_strategy(str(tmp_path / "v.yaml")).config == load_strategy(config.to_dict()).config


def test_a_presets_default_budget_gives_way_to_vllms_rate() -> None:
    check_rate(load_strategy("uniform"), 0.5)  # uniform's own default is 0.3


def test_a_written_budget_must_agree_with_the_rate(tmp_path) -> None:
    path = tmp_path / "half.yaml"
    prunekit.presets.get("uniform").with_budget(Budget(0.5, "input")).save(path)
    check_rate(load_strategy(str(path)), 0.5)
    with pytest.raises(BudgetError, match="video_pruning_rate=0.7"):
        check_rate(load_strategy(str(path)), 0.7)


def test_model_config_wins_over_the_environment() -> None:
    class HfConfig:
        prunekit_strategy = "dycoke"

    env = {"PRUNEKIT_VLLM_STRATEGY": "uniform"}
    assert strategy_setting(HfConfig(), env) == "dycoke"
    assert strategy_setting(object(), env) == "uniform"
    assert strategy_setting(object(), {}) is None
