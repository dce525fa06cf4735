"""Pipeline configs: exact JSON/YAML round trips, clear errors, plugin fields, fingerprints."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Literal

import pytest
import torch
from pydantic import Field, ValidationError

from prunekit import Budget, ConfigError, Pipeline, PipelineConfig, VideoLayout, presets
from prunekit._version import __version__
from prunekit.config import SCHEMA_VERSION, json_schema, stage_config
from prunekit.interfaces import FrameSelector, StageConfig
from prunekit.plugins import get_registry, reload_plugins
from prunekit.types import SelectionContext

BASE = {"selector": {"name": "uniform"}, "scheduler": {"name": "fixed", "layers": [0], "keep_fractions": [0.5]}}


# -- round trips --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", presets.list())
def test_every_preset_round_trips_through_json_and_yaml(name: str) -> None:
    config = presets.get(name)
    assert PipelineConfig.from_json(config.to_json()) == config
    assert PipelineConfig.from_yaml(config.to_yaml()) == config
    with_budget = config.with_budget(Budget(0.17, "input"))
    assert PipelineConfig.from_yaml(with_budget.to_yaml()) == with_budget
    assert PipelineConfig.from_json(with_budget.to_json()).budget == Budget(0.17, "input")


@pytest.mark.parametrize("suffix", [".json", ".yaml", ".yml"])
def test_save_and_load_files(tmp_path: Path, suffix: str) -> None:
    config = presets.get("hieravid-20").with_budget(0.2)
    path = tmp_path / f"cfg{suffix}"
    config.save(path)
    assert PipelineConfig.load(path) == config
    text = path.read_text()
    assert text.lstrip().startswith("{") == (suffix == ".json")


def test_config_records_schema_and_prunekit_versions() -> None:
    data = PipelineConfig.parse(BASE).to_dict()
    assert data["schema_version"] == SCHEMA_VERSION and data["prunekit_version"] == __version__


def test_stages_can_be_given_as_bare_names_or_configs() -> None:
    by_name = PipelineConfig.parse({"selector": "uniform", "scheduler": "fixed"})
    by_config = PipelineConfig(selector=stage_config("frame_selector", "uniform"),
                               scheduler=stage_config("layer_scheduler", {"name": "fixed"}))
    assert by_name == by_config
    assert by_name.segmenter.name == "single" and by_name.allocator.name == "proportional"


def test_configs_are_frozen() -> None:
    config = PipelineConfig.parse(BASE)
    with pytest.raises(ValidationError):
        config.seed = 3  # type: ignore[misc]


# -- errors -------------------------------------------------------------------------------------


def test_unknown_top_level_field_is_rejected_clearly() -> None:
    with pytest.raises(ConfigError, match="selecter: unknown field; remove it or check its spelling"):
        PipelineConfig.parse({**BASE, "selecter": "dpp"})


def test_unknown_stage_field_is_rejected_clearly() -> None:
    with pytest.raises(ConfigError, match="relevanse") as info:
        PipelineConfig.parse({**BASE, "selector": {"name": "dpp", "relevanse": "attention"}})
    assert "unknown field" in str(info.value)


def test_invalid_stage_value_names_the_field() -> None:
    with pytest.raises(ConfigError, match="relevance"):
        PipelineConfig.parse({**BASE, "selector": {"name": "dpp", "relevance": "sideways"}})


def test_malformed_yaml_reports_the_line() -> None:
    text = "name: broken\nselector:\n  name: dpp\n  relevance: [attention\nscheduler: fixed\n"
    with pytest.raises(ConfigError, match=r"malformed YAML at line \d+, column \d+") as info:
        PipelineConfig.from_yaml(text)
    line = int(str(info.value).split("at line ")[1].split(",")[0])
    assert 4 <= line <= 5  # the unclosed bracket opens on line 4; the parser notices by line 5


def test_malformed_json_reports_the_line() -> None:
    with pytest.raises(ConfigError, match="malformed JSON at line 3"):
        PipelineConfig.from_json('{\n  "selector": "uniform",\n  "scheduler": fixed\n}')


@pytest.mark.parametrize("text", ["- a\n- b\n", "just a string\n", "42\n"])
def test_non_mapping_documents_are_rejected(text: str) -> None:
    with pytest.raises(ConfigError, match="must be a mapping at the top level"):
        PipelineConfig.from_yaml(text)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        PipelineConfig.load(tmp_path / "nope.yaml")


@pytest.mark.parametrize("budget", [0, 0.0, -0.5, 1.5, math.nan, {"retain": 0}, {"retain": 2.0, "mode": "input"}])
def test_budget_out_of_range_is_rejected(budget: object) -> None:
    with pytest.raises(ConfigError, match=r"retain must be a number in \(0, 1\]"):
        PipelineConfig.parse({**BASE, "budget": budget})


def test_budget_nan_from_yaml_and_json_is_rejected() -> None:
    with pytest.raises(ConfigError, match="retain must be a number"):
        PipelineConfig.from_yaml("selector: uniform\nscheduler: fixed\nbudget: .nan\n")
    with pytest.raises(ConfigError, match="retain must be a number"):
        PipelineConfig.from_json('{"selector": "uniform", "scheduler": "fixed", "budget": {"retain": NaN}}')


def test_budget_with_unknown_mode_is_rejected() -> None:
    with pytest.raises(ConfigError, match="mode must be 'input' or 'layer_average'"):
        PipelineConfig.parse({**BASE, "budget": {"retain": 0.3, "mode": "flops"}})


def test_newer_schema_version_asks_to_upgrade() -> None:
    with pytest.raises(ConfigError, match="upgrade prunekit"):
        PipelineConfig.parse({**BASE, "schema_version": SCHEMA_VERSION + 1})


# -- plugin configs (SerializeAsAny) ------------------------------------------------------------


class _WeightedSelector(FrameSelector):
    """Test-only third-party selector whose config has fields of its own."""

    class Config(StageConfig):
        name: Literal["tests.weighted"] = "tests.weighted"
        alpha: float = Field(0.5, ge=0.0, le=1.0)
        order: Literal["first", "last"] = "first"
        layers: tuple[int, ...] = (1, 2)

    def select(self, features: torch.Tensor, keep: int, context: SelectionContext) -> torch.Tensor:
        n = features.shape[0]
        return torch.arange(keep) if self.config.order == "first" else torch.arange(n - keep, n)


@pytest.fixture
def third_party_selector():
    get_registry().scoped("tests-plugin").register_stage(_WeightedSelector)
    yield _WeightedSelector
    reload_plugins()  # forget the test-only registration


def test_third_party_config_fields_survive_dump_and_load(third_party_selector: type) -> None:
    config = PipelineConfig.parse({**BASE, "selector": {"name": "tests.weighted", "alpha": 0.9,
                                                        "order": "last", "layers": [3]}})
    assert isinstance(config.selector, third_party_selector.Config)
    dumped = config.to_dict()["selector"]
    assert dumped == {"name": "tests.weighted", "alpha": 0.9, "order": "last", "layers": [3]}
    for text, load in ((config.to_json(), PipelineConfig.from_json), (config.to_yaml(), PipelineConfig.from_yaml)):
        again = load(text)
        assert again == config and again.selector.alpha == 0.9 and again.selector.layers == (3,)
    # and the pipeline actually uses the plugin's parameters
    layout = VideoLayout.contiguous(0, 2, (2, 2), 8)
    sim = Pipeline(config).simulate(torch.randn(2, 4, 3), layout, 4)
    assert sim.kept[0].tolist() == [4, 5, 6, 7]  # the "last" half of eight tokens


def test_third_party_config_validates_its_own_fields(third_party_selector: type) -> None:
    with pytest.raises(ConfigError, match="alpha"):
        PipelineConfig.parse({**BASE, "selector": {"name": "tests.weighted", "alpha": 3}})


def test_schema_lists_every_registered_stage_config(third_party_selector: type) -> None:
    schema = json_schema()
    selector_titles = {option.get("properties", {}).get("name", {}).get("const")
                       for option in schema["properties"]["selector"]["anyOf"]}
    assert {"dpp", "uniform", "random", "tests.weighted"} <= selector_titles
    assert {"type": "null"} in schema["properties"]["merger"]["anyOf"]
    json.dumps(schema)  # serialisable as is


# -- fingerprints ------------------------------------------------------------------------------


def test_fingerprint_is_a_hash_of_the_behavioural_fields() -> None:
    config = presets.get("hieravid-30")
    data = config.to_dict()
    for key in ("prunekit_version", "description", "citation", "name"):
        del data[key]
    del data["encoder"]  # absent encoder: left out, so fingerprints recorded before the encoder level stay valid
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
    assert config.fingerprint() == hashlib.sha256(canonical.encode()).hexdigest()[:12]


def test_fingerprint_is_stable_across_round_trips_and_key_order() -> None:
    config = presets.get("hieravid-30")
    assert PipelineConfig.from_yaml(config.to_yaml()).fingerprint() == config.fingerprint()
    reordered = dict(reversed(list(config.to_dict().items())))
    assert PipelineConfig.parse(reordered).fingerprint() == config.fingerprint()


def test_fingerprint_ignores_labels_but_not_behaviour() -> None:
    config = presets.get("hieravid-30")
    relabelled = config.model_copy(update={"name": "mine", "description": "x", "citation": "y",
                                           "prunekit_version": "9.9"})
    assert relabelled.fingerprint() == config.fingerprint()
    assert config.with_budget(0.3).fingerprint() != config.fingerprint()
    assert config.model_copy(update={"seed": 1}).fingerprint() != config.fingerprint()
    other = PipelineConfig.parse({**config.to_dict(), "selector": {"name": "dpp", "relevance": "none"}})
    assert other.fingerprint() != config.fingerprint()
