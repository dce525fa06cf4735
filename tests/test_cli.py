"""The ``prunekit`` command line: every catalog subcommand, bad input, extension by modules."""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import types
from pathlib import Path

import pytest
import yaml

import prunekit.cli
from prunekit import Budget, Pipeline, PipelineConfig, presets
from prunekit._version import __version__
from prunekit.budget import realized_retention, visual_tokens_per_layer
from prunekit.cli import main
from prunekit.config import json_schema
from prunekit.plugins import get_registry, loaded_plugins

SHAPE = ["--hidden", "3584", "--intermediate", "18944", "--layers", "28", "--visual", "6272", "--text", "120"]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code: int, err: str, *fragments: str) -> None:
    assert code == 2
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("prunekit: error: "), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0]


def test_version_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.strip() == f"prunekit {__version__}"
    code, out, _ = run(capsys, "--help")
    assert code == 0
    for command in ("strategies", "adapters", "presets", "plugins", "schema", "validate", "flops"):
        assert command in out


def test_no_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys)
    assert code == 2 and out == "" and "choose a command" in err


def test_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "strategy")
    assert code == 2 and "invalid choice: 'strategy'" in err and "Traceback" not in err


# -- strategies / presets / plugins / schema --------------------------------------------------


def entries(out: str) -> list[str]:
    """A listing's rows with their wrapped continuation lines (indented) joined back on."""
    rows: list[str] = []
    for line in out.splitlines():
        if line.startswith(" ") and rows:
            rows[-1] += " " + line.strip()
        else:
            rows.append(line)
    return rows


def test_listings_wrap_to_the_terminal_width(capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    for command in ("strategies", "presets"):
        code, out, _ = run(capsys, command)
        assert code == 0 and max(len(line) for line in out.splitlines()) <= 100, command


def test_strategies_lists_every_stage_with_its_source(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "strategies")
    assert code == 0
    lines = entries(out)
    assert lines[0].split() == ["KIND", "NAME", "SOURCE", "DESCRIPTION"]
    rows = {tuple(line.split()[:3]) for line in lines[1:]}
    registry = get_registry()
    for kind in ("segmenter", "merger", "allocator", "frame_selector", "layer_scheduler"):
        for entry in registry.entries(kind):
            assert (kind, entry.name, entry.source) in rows
    assert not any(row[0] in ("preset", "adapter") for row in rows)
    dpp = next(line for line in lines if line.split()[:2] == ["frame_selector", "dpp"])
    assert "Greedy MAP of a DPP" in dpp  # the one-line description


def test_strategies_filters_by_kind(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "strategies", "--kind", "segmenter")
    assert code == 0
    kinds = {line.split()[0] for line in entries(out)[1:]}
    assert kinds == {"segmenter"}
    assert len(entries(out)) - 1 == len(get_registry().names("segmenter"))


def test_strategies_rejects_an_unknown_kind(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "strategies", "--kind", "selector")
    assert code == 2 and "invalid choice: 'selector'" in err and "frame_selector" in err


def test_adapters_lists_every_adapter_with_its_model_classes(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "adapters")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "MODEL", "CLASSES", "SOURCE"]
    rows = {line.split()[0]: line for line in lines[1:]}
    for entry in get_registry().entries("adapter"):
        assert entry.name in rows and rows[entry.name].endswith(entry.source)
        for cls in entry.obj.model_classes:
            assert cls in rows[entry.name], (entry.name, cls)
    for cls in ("Qwen3VLForConditionalGeneration", "Qwen3VLMoeForConditionalGeneration",
                "Qwen3_5ForConditionalGeneration", "Qwen3_5MoeForConditionalGeneration"):
        assert any(cls in line for line in lines[1:]), cls


def test_presets_lists_name_description_and_citation(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "presets")
    assert code == 0
    lines = {line.split()[0]: line for line in entries(out)[1:]}
    assert set(lines) == set(presets.list())
    hieravid = lines["hieravid-30"]
    assert presets.get("hieravid-30").description in hieravid  # the realized config's description
    assert "arXiv 2604.01881" in hieravid


def test_plugins_lists_loaded_plugins_with_distribution_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "plugins")
    assert code == 0
    rows = [line.split() for line in out.splitlines()[1:]]
    assert [(r[0], r[1]) for r in rows] == loaded_plugins()
    builtin = next(r for r in rows if r[0] == "prunekit.strategies._plugin")
    assert builtin[1:] == ["prunekit", __version__]


def test_schema_prints_the_registered_json_schema(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "schema")
    assert code == 0
    assert json.loads(out) == json_schema()


# -- validate ---------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_validate_prints_ok_and_the_fingerprint(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                suffix: str) -> None:
    config = presets.get("hieravid-20").with_budget(0.2)
    path = tmp_path / f"cfg{suffix}"
    config.save(path)
    code, out, err = run(capsys, "validate", str(path))
    assert code == 0 and err == ""
    assert out.startswith("OK ") and config.fingerprint() in out and "'hieravid-20'" in out


def test_validate_reports_unknown_fields_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "cfg.yaml"
    path.write_text("selector:\n  name: dpp\n  relevanse: attention\nscheduler: progressive\n")
    code, out, err = run(capsys, "validate", str(path))
    assert out == ""
    assert_one_line_error(code, err, "relevanse", "unknown field")


def test_validate_reports_malformed_yaml_with_its_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "cfg.yaml"
    path.write_text("selector: uniform\nscheduler: {name: fixed\nbudget: 0.3\n")
    code, _, err = run(capsys, "validate", str(path))
    assert_one_line_error(code, err, "malformed YAML at line")


def test_validate_reports_a_bad_budget(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps({"selector": "uniform", "scheduler": "fixed", "budget": 1.5}))
    code, _, err = run(capsys, "validate", str(path))
    assert_one_line_error(code, err, "retain must be a number in (0, 1]")


def test_validate_reports_a_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "validate", str(tmp_path / "missing.yaml"))
    assert_one_line_error(code, err, "does not exist")


def test_validate_reports_an_unknown_stage_with_did_you_mean(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump({"selector": "dppp", "scheduler": "progressive"}))
    code, _, err = run(capsys, "validate", str(path))
    assert_one_line_error(code, err, "unknown frame_selector 'dppp'", "Did you mean 'dpp'")


# -- flops ------------------------------------------------------------------------------------


def _fastv_ratio(per_layer: list[int], n: int, text: int, d: int, m: int) -> float:
    def layer(tokens: int) -> int:
        return 4 * tokens * d * d + 2 * tokens * tokens * d + 2 * tokens * d * m

    return sum(layer(v + text) for v in per_layer) / (len(per_layer) * layer(n + text))


def _value(out: str, label: str) -> str:
    return next(line for line in out.splitlines() if line.startswith(label)).split(":", 1)[1].split()[0]


def test_flops_prints_the_presets_stages_and_ratio(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "flops", *SHAPE, "--preset", "hieravid-30")
    assert code == 0
    stages = Pipeline.from_preset("hieravid-30").scheduler.plan(6272, 28, None)
    table = [line.split() for line in out.splitlines() if line[:1].isdigit()]
    assert [(int(r[1]), int(r[2])) for r in table] == [(s.layer, s.keep) for s in stages]
    average = realized_retention(stages, 6272, 28)["layer_average"]
    assert float(_value(out, "layer-average retention").rstrip("%")) == pytest.approx(100 * average, abs=1e-4)
    ratio = _fastv_ratio(visual_tokens_per_layer(stages, 6272, 28), 6272, 120, 3584, 18944)
    assert float(_value(out, "FLOPs ratio")) == pytest.approx(ratio, abs=1e-4)


def test_flops_with_a_budget_meets_it(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "flops", *SHAPE, "--preset", "uniform", "--budget", "0.2", "--mode", "input")
    assert code == 0
    table = [line.split() for line in out.splitlines() if line[:1].isdigit()]
    assert [(int(r[1]), int(r[2])) for r in table] == [(0, round(0.2 * 6272))]
    code, out, _ = run(capsys, "flops", *SHAPE, "--preset", "hieravid-30", "--budget", "0.15")
    assert code == 0
    assert abs(float(_value(out, "layer-average retention").rstrip("%")) / 100 - 0.15) <= 1 / 6272 + 1e-6


def test_flops_full_retention_prunes_nothing_even_on_a_shallow_model(capsys: pytest.CaptureFixture[str]) -> None:
    shallow = [a if a != "28" else "2" for a in SHAPE]
    code, out, _ = run(capsys, "flops", *shallow, "--preset", "hieravid-30", "--budget", "1")
    assert code == 0 and "no pruning stage" in out
    assert float(_value(out, "FLOPs ratio")) == 1.0


def test_flops_unknown_preset_suggests_names(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "flops", *SHAPE, "--preset", "hieravid-31")
    assert out == ""
    assert_one_line_error(code, err, "unknown preset 'hieravid-31'", "Did you mean 'hieravid-30'")


@pytest.mark.parametrize(("extra", "fragment"), [
    (["--budget", "1.5"], "retain must be a number in (0, 1]"),
    (["--budget", "0"], "retain must be a number in (0, 1]"),
    (["--budget", "nan"], "retain must be a number in (0, 1]"),
    (["--mode", "input"], "--mode needs --budget"),
    (["--budget", "0.3", "--mode", "input", "--preset", "hieravid-30"], None),
])
def test_flops_bad_budgets_are_one_line_errors(capsys: pytest.CaptureFixture[str], extra: list[str],
                                               fragment: str | None) -> None:
    argv = ["flops", *SHAPE, "--preset", "uniform", *extra]
    code, _, err = run(capsys, *argv)
    if fragment is None:  # a valid request, for contrast
        assert code == 0 and err == ""
    else:
        assert_one_line_error(code, err, fragment)


def test_flops_infeasible_schedule_is_a_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    shallow = [a if a != "28" else "2" for a in SHAPE]
    code, _, err = run(capsys, "flops", *shallow, "--preset", "hieravid-30", "--budget", "0.3")
    assert_one_line_error(code, err, "do not fit a 2-layer model")


@pytest.mark.parametrize("bad", [["--layers", "0"], ["--visual", "-3"], ["--hidden", "big"]])
def test_flops_rejects_non_positive_shapes(capsys: pytest.CaptureFixture[str], bad: list[str]) -> None:
    argv = [*SHAPE]
    i = argv.index(bad[0])
    argv[i + 1] = bad[1]
    code, _, err = run(capsys, "flops", *argv, "--preset", "uniform")
    assert code == 2 and "Traceback" not in err and bad[0] in err


# -- robustness and extension ------------------------------------------------------------------


def test_catalog_commands_never_touch_the_network(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the CLI tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    path = tmp_path / "cfg.yaml"
    presets.get("uniform").save(path)
    for argv in (["strategies"], ["presets"], ["plugins"], ["schema"], ["validate", str(path)],
                 ["flops", *SHAPE, "--preset", "hieravid-10"]):
        assert main(argv) == 0, argv
    capsys.readouterr()


def _extra_commands(handler: object) -> types.ModuleType:
    module = types.ModuleType("prunekit_test_extra_commands")

    def add_parsers(subparsers: argparse._SubParsersAction) -> None:
        p = subparsers.add_parser("hello", help="test command")
        p.add_argument("--who", default="world")
        p.set_defaults(func=handler)

    module.add_parsers = add_parsers  # type: ignore[attr-defined]
    return module


@pytest.fixture
def extra_command(monkeypatch: pytest.MonkeyPatch):
    def install(handler: object) -> None:
        monkeypatch.setitem(sys.modules, "prunekit_test_extra_commands", _extra_commands(handler))
        monkeypatch.setattr(prunekit.cli, "COMMAND_MODULES",
                            (*prunekit.cli.COMMAND_MODULES, "prunekit_test_extra_commands"))
    return install


def test_modules_in_command_modules_add_subcommands(extra_command, capsys: pytest.CaptureFixture[str]) -> None:
    def hello(args: argparse.Namespace) -> int:
        print(f"hello {args.who}")
        return 0

    extra_command(hello)
    assert run(capsys, "hello", "--who", "prunekit")[:2] == (0, "hello prunekit\n")
    assert run(capsys, "presets")[0] == 0  # the catalog commands are still there


@pytest.mark.parametrize(("raise_", "fragment"), [
    (lambda: PipelineConfig(selector={"name": "uniform"}), "invalid config: scheduler: Field required"),
    (lambda: yaml.safe_load("a: [1"), "malformed YAML"),
    (lambda: Budget(-1), "retain must be a number"),
])
def test_errors_from_any_command_are_one_line(extra_command, capsys: pytest.CaptureFixture[str],
                                              raise_: object, fragment: str) -> None:
    def handler(args: argparse.Namespace) -> int:
        raise_()  # type: ignore[operator]
        return 0

    extra_command(handler)
    code, _, err = run(capsys, "hello")
    assert_one_line_error(code, err, fragment)


def test_programming_errors_are_not_hidden(extra_command) -> None:
    def handler(args: argparse.Namespace) -> int:
        raise ZeroDivisionError("a bug")

    extra_command(handler)
    with pytest.raises(ZeroDivisionError):
        main(["hello"])


def test_console_script_reports_bad_input_without_traceback(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("selector: uniform\nscheduler: [fixed\n")
    script = Path(sys.executable).parent / "prunekit"
    result = subprocess.run([str(script), "validate", str(path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and result.stdout == ""
    assert len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith("prunekit: error: malformed YAML at line") and "Traceback" not in result.stderr
