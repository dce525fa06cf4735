"""Bad input to the Python API gets a named prunekit error that says the fix (issue 23), never a bare
traceback from torch or transformers, and never a silently wrong number."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import prunekit
from prunekit import Pipeline, VideoLayout
from prunekit.adapters.random_models import build_model
from prunekit.errors import (
    BudgetError,
    ConfigError,
    PrunekitError,
    UnknownStrategyError,
    UnsupportedModelError,
)
from prunekit.runtime.stats import ForwardStats, SampleStats


@pytest.fixture(scope="module")
def llava() -> torch.nn.Module:
    return build_model("llava_onevision")


@pytest.mark.parametrize(("kwargs", "error", "fragment"), [
    ({"budget": "0.3"}, BudgetError, "got '0.3' (str)"),
    ({"budget": True}, BudgetError, "got True (bool)"),
    ({"adapter_options": {"bogus": 1}}, ConfigError, "adapter_options ['bogus']"),
    ({"adapter": "qwen2_vl"}, UnsupportedModelError, "handled by the 'llava_onevision' adapter"),
    ({"adapter": "nope"}, UnknownStrategyError, "unknown adapter 'nope'"),
])
def test_apply_rejects_bad_arguments_by_name(llava: torch.nn.Module, kwargs: dict, error: type,
                                             fragment: str) -> None:
    with pytest.raises(error, match=None) as info:
        prunekit.apply(llava, "hieravid-30", **kwargs)
    assert fragment in str(info.value)
    assert not prunekit.is_pruned(llava)


def test_apply_to_none_says_to_load_a_model_first() -> None:
    with pytest.raises(UnsupportedModelError, match="needs a loaded Hugging Face model"):
        prunekit.apply(None, "hieravid-30")  # type: ignore[arg-type]


def test_apply_rejects_a_pipeline_of_the_wrong_type(llava: torch.nn.Module) -> None:
    with pytest.raises(ConfigError, match="config file path"):
        prunekit.apply(llava, 0.3)  # type: ignore[arg-type]


def test_apply_accepts_a_config_file_where_a_preset_name_is_accepted(llava: torch.nn.Module,
                                                                      tmp_path: Path) -> None:
    path = tmp_path / "my.yaml"
    prunekit.presets.get("uniform").save(path)
    with prunekit.apply(llava, str(path)) as handle:
        assert handle.pipeline.config.fingerprint() == prunekit.presets.get("uniform").fingerprint()
    with pytest.raises(ConfigError, match="does not exist"):
        prunekit.apply(llava, str(tmp_path / "missing.yaml"))


def test_a_selector_returning_out_of_range_ids_is_named_not_an_index_error() -> None:
    pipeline = Pipeline.from_preset("uniform", 0.5)

    class OutOfRange(type(pipeline.selector)):
        def select_segments(self, features, keeps, contexts):  # noqa: ANN001, ANN201
            return [torch.arange(f.shape[0] - k, f.shape[0]) + 100 for f, k in zip(features, keeps)]

    pipeline.selector = OutOfRange(pipeline.selector.config)
    layout = VideoLayout.contiguous(0, 4, (2, 2), 16)
    with pytest.raises(PrunekitError, match="must return distinct indices in \\[0, segment size\\)"):
        pipeline.simulate(torch.randn(4, 4, 8), layout, 4)


def test_text_only_samples_do_not_count_as_retained_visual_tokens() -> None:
    video = SampleStats(256, 20, 1, [(0, 128)], 0.5, 0.5, 0.6)
    text_only = SampleStats.unpruned(30, 4)
    stats = ForwardStats([video, text_only])
    assert stats.input_retention == 0.5 and stats.layer_average_retention == 0.5
    assert ForwardStats([text_only]).input_retention == 1.0


def test_unknown_name_with_autoload_off_says_autoload_is_off(monkeypatch: pytest.MonkeyPatch) -> None:
    from prunekit.plugins import DISABLE_ENV, get_registry

    monkeypatch.setenv(DISABLE_ENV, "1")
    with pytest.raises(UnknownStrategyError, match="Plugin autoload is off"):
        get_registry().get("frame_selector", "x")
    monkeypatch.delenv(DISABLE_ENV)
    with pytest.raises(UnknownStrategyError) as info:
        get_registry().get("frame_selector", "x")
    assert "autoload" not in str(info.value)
