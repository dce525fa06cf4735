"""Plugin discovery end to end: a real pip-installed distribution, broken plugins, autoload control.

The example plugin (``tests/plugin_example``) is pip-installed into the running environment for
this module and uninstalled afterwards. Throwaway plugins are fake distributions (a ``.dist-info``
folder and a module) put on ``sys.path`` only for the test that needs them.
"""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
import textwrap
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from prunekit import Budget, Pipeline, PipelineConfig, VideoLayout, presets
from prunekit.cli import main
from prunekit.plugins import (
    DISABLE_ENV,
    PluginWarning,
    get_registry,
    loaded_plugins,
    plugin_manager,
    reload_plugins,
)
from prunekit.registry import BUILTIN_SOURCE
from prunekit.testing import check_frame_selector, check_preset

EXAMPLE_DIR = Path(__file__).parent / "plugin_example"
EXAMPLE_DIST = "prunekit-example-plugin"


def _pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", *args], check=True, capture_output=True, text=True)


@pytest.fixture(scope="module")
def example_plugin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """``prunekit-example-plugin`` installed into this environment (built from a copy, so the
    source tree stays clean), discovered through its entry point; uninstalled afterwards."""
    source = tmp_path_factory.mktemp("plugin") / "plugin_example"
    shutil.copytree(EXAMPLE_DIR, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    _pip("install", "--no-deps", "--no-build-isolation", "-q", str(source))
    try:
        reload_plugins()
        yield
    finally:
        _pip("uninstall", "-y", "-q", EXAMPLE_DIST)
        sys.modules.pop("prunekit_example_plugin", None)
        reload_plugins()


def test_example_plugin_is_listed_with_its_distribution(example_plugin: None) -> None:
    assert ("example", EXAMPLE_DIST) in loaded_plugins()
    registry = get_registry()
    assert registry.entry("frame_selector", "example.topnorm").source == EXAMPLE_DIST
    assert registry.entry("preset", "example.topnorm-30").source == EXAMPLE_DIST
    assert registry.entry("frame_selector", "dpp").source == BUILTIN_SOURCE  # built-ins untouched


def test_example_selector_is_usable_by_name_in_a_pipeline(example_plugin: None) -> None:
    config = PipelineConfig.parse({
        "selector": {"name": "example.topnorm", "p": 2.0},
        "scheduler": {"name": "fixed", "layers": [0], "keep_fractions": [0.5]},
        "budget": {"retain": 0.5, "mode": "input"},
    })
    assert PipelineConfig.from_yaml(config.to_yaml()) == config  # plugin fields survive a round trip
    norms = torch.tensor([[1.0, 5.0, 2.0, 8.0], [3.0, 7.0, 4.0, 6.0]])  # one token per norm
    direction = torch.nn.functional.normalize(torch.randn(2, 4, 3, generator=torch.Generator().manual_seed(0)), dim=-1)
    sim = Pipeline(config).simulate(direction * norms[..., None], VideoLayout.contiguous(0, 2, (2, 2), 8), 28)
    assert sim.kept[0].tolist() == [1, 3, 5, 7]  # the four largest norms: 5, 8, 7, 6


def test_example_preset_runs_through_pipeline_simulate(example_plugin: None) -> None:
    pipeline = Pipeline.from_preset("example.topnorm-30")
    assert pipeline.budget == Budget(0.3, "input")
    layout = VideoLayout.contiguous(3, 4, (5, 5), 3 + 100 + 1, trailing_layout_tokens=1)
    feats = torch.randn(4, 25, 8, generator=torch.Generator().manual_seed(1))
    sim = pipeline.simulate(feats, layout, 28)
    assert sim.retention["input"] == 0.3 and len(sim.kept[0]) == 30
    norms = feats.reshape(100, 8).norm(dim=-1)
    assert set(sim.kept[0].tolist()) == set(torch.topk(norms, 30).indices.tolist())


def test_example_plugin_passes_the_conformance_checks(example_plugin: None) -> None:
    check_frame_selector(get_registry().get("frame_selector", "example.topnorm"))
    check_preset("example.topnorm-30")


def test_cli_lists_the_example_plugin(example_plugin: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["strategies", "--kind", "frame_selector"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if "example.topnorm" in line)
    assert row.split()[:3] == ["frame_selector", "example.topnorm", EXAMPLE_DIST]
    assert main(["plugins"]) == 0
    assert any(line.split()[:3] == ["example", EXAMPLE_DIST, "0.1.0"]
               for line in capsys.readouterr().out.splitlines())
    assert main(["presets"]) == 0
    assert "example.topnorm-30" in capsys.readouterr().out


# -- throwaway distributions -------------------------------------------------------------------


class FakeDistributions:
    """Writes plugin distributions (``.dist-info`` + module) into a folder on ``sys.path``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.modules: list[str] = []

    def add(self, dist: str, entry: str, module: str, code: str) -> None:
        info = self.root / f"{dist.replace('-', '_')}-0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
        (info / "entry_points.txt").write_text(f"[prunekit]\n{entry} = {module}\n")
        (self.root / f"{module}.py").write_text(textwrap.dedent(code))
        self.modules.append(module)
        importlib.invalidate_caches()


@pytest.fixture
def fake_dists(tmp_path: Path) -> Iterator[FakeDistributions]:
    """A folder on ``sys.path`` for throwaway plugins; removed (and plugins reloaded) afterwards."""
    sys.path.insert(0, str(tmp_path))
    fakes = FakeDistributions(tmp_path)
    try:
        yield fakes
    finally:
        sys.path.remove(str(tmp_path))
        for module in fakes.modules:
            sys.modules.pop(module, None)
        importlib.invalidate_caches()
        reload_plugins()


GOOD_PLUGIN = '''
    from typing import Literal
    import torch
    import prunekit
    from prunekit.interfaces import FrameSelector, StageConfig

    class FirstSelector(FrameSelector):
        """Keeps the first tokens."""

        class Config(StageConfig):
            name: Literal["good.first"] = "good.first"

        def select(self, features, keep, context):
            return torch.arange(keep)

    @prunekit.hookimpl
    def prunekit_register_strategies(registry):
        registry.register_stage(FirstSelector)
'''


def test_a_plugin_that_fails_to_import_is_skipped_with_a_warning(fake_dists: FakeDistributions) -> None:
    fake_dists.add("prunekit-broken-plugin", "broken", "prunekit_broken_plugin", "raise RuntimeError('boom')\n")
    fake_dists.add("prunekit-good-plugin", "good", "prunekit_good_plugin", GOOD_PLUGIN)
    with pytest.warns(PluginWarning, match=r"'broken' from distribution 'prunekit-broken-plugin'.*RuntimeError: boom"):
        registry = reload_plugins()
    assert ("good", "prunekit-good-plugin") in loaded_plugins()
    assert all(name != "broken" for name, _ in loaded_plugins())
    assert registry.get("frame_selector", "good.first") is not None
    assert registry.get("frame_selector", "dpp") is not None  # built-ins unaffected


def test_the_cli_survives_a_broken_plugin(fake_dists: FakeDistributions) -> None:
    fake_dists.add("prunekit-broken-plugin", "broken", "prunekit_broken_plugin", "import no_such_module_xyz\n")
    script = Path(sys.executable).parent / "prunekit"  # the console script, in a fresh process
    result = subprocess.run([str(script), "plugins"], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONPATH": str(fake_dists.root)})
    assert result.returncode == 0
    assert "prunekit.strategies._plugin" in result.stdout
    assert result.stderr.splitlines() == [line for line in result.stderr.splitlines() if line.startswith(
        "prunekit: warning: skipping plugin 'broken' from distribution 'prunekit-broken-plugin'")]
    assert "ModuleNotFoundError" in result.stderr and "Traceback" not in result.stderr


def test_a_plugin_that_fails_while_registering_leaves_no_partial_entries(fake_dists: FakeDistributions) -> None:
    fake_dists.add("prunekit-half-plugin", "half", "prunekit_half_plugin", GOOD_PLUGIN.replace(
        "registry.register_stage(FirstSelector)",
        "registry.register_stage(FirstSelector)\n        registry.register('segmenter', 'plain', object)"))
    with pytest.warns(PluginWarning, match="'half'.*must be namespaced"):
        registry = reload_plugins()
    assert "good.first" not in registry.names("frame_selector")  # its first registration was rolled back
    assert all(name != "half" for name, _ in loaded_plugins())
    assert "half" not in {name for name, _ in plugin_manager().list_name_plugin()}


def test_a_plugin_colliding_with_another_is_skipped_and_the_first_wins(fake_dists: FakeDistributions) -> None:
    fake_dists.add("prunekit-good-plugin", "good", "prunekit_good_plugin", GOOD_PLUGIN)
    fake_dists.add("prunekit-copycat-plugin", "copycat", "prunekit_copycat_plugin", GOOD_PLUGIN)
    with pytest.warns(PluginWarning, match="registered twice"):
        registry = reload_plugins()
    sources = {name: source for name, source in loaded_plugins()}
    assert len({"good", "copycat"} & set(sources)) == 1
    winner = next(n for n in ("good", "copycat") if n in sources)
    assert registry.entry("frame_selector", "good.first").source == sources[winner]


def test_a_misspelled_hook_is_caught_by_check_pending(fake_dists: FakeDistributions) -> None:
    fake_dists.add("prunekit-typo-plugin", "typo", "prunekit_typo_plugin", GOOD_PLUGIN.replace(
        "def prunekit_register_strategies", "def prunekit_register_strategy"))
    with pytest.warns(PluginWarning, match="unknown hook 'prunekit_register_strategy'"):
        registry = reload_plugins()
    assert all(name != "typo" for name, _ in loaded_plugins())
    assert "good.first" not in registry.names("frame_selector")
    plugin_manager().check_pending()  # nothing pending is left behind


def test_disable_autoload_loads_builtins_only(fake_dists: FakeDistributions, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_dists.add("prunekit-good-plugin", "good", "prunekit_good_plugin", GOOD_PLUGIN)
    fake_dists.add("prunekit-broken-plugin", "broken", "prunekit_broken_plugin", "raise RuntimeError('boom')\n")
    monkeypatch.setenv(DISABLE_ENV, "1")
    with warnings.catch_warnings():
        warnings.simplefilter("error", PluginWarning)  # the broken plugin is not even imported
        registry = reload_plugins()
    assert {source for _, source in loaded_plugins()} == {BUILTIN_SOURCE}
    assert "good.first" not in registry.names("frame_selector")
    assert {"hieravid-30", "uniform", "random"} <= set(presets.list())
    monkeypatch.setenv(DISABLE_ENV, "0")  # "0" means autoload stays on
    with pytest.warns(PluginWarning):
        registry = reload_plugins()
    assert "good.first" in registry.names("frame_selector")
