"""Run the unpruned model once and every strategy x budget cell on the same items; resumable.

    harness = AccuracyHarness(model, processor, items, out_dir="bench-out", model_name="tiny")
    records = harness.run(["hieravid", "visionzip", "random"], [0.3, 0.2, 0.1])

Every finished cell appends one record to ``out_dir/records.jsonl`` and writes its per-item
predictions to ``out_dir/predictions/<cell_id>.jsonl``; a rerun with the same model, items and
settings skips the cells it finds there. The unpruned cell always runs (or is reloaded) first: the
fidelity metrics of every pruned cell compare against it.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

import prunekit
from prunekit import Budget, PipelineConfig, presets
from prunekit.benchmarks.strategy_spec import UNPRUNED, StrategySpec, parse_strategies
from prunekit.errors import BudgetError, PrunekitError

from . import metrics
from .dataset import QAItem, dataset_fingerprint
from .distributed import World
from .inputs import InputStore, make_batches
from .scoring import (
    McAnswer,
    PromptStyle,
    build_prompt,
    generate_text,
    letter_token_ids,
    match_open,
    option_logprobs,
    option_token_ids,
    resolve_mc_answer,
    resolve_style,
    scoring_description,
)

__all__ = ["UNPRUNED", "RECORD_SCHEMA", "StrategySpec", "AccuracyHarness", "resolve_config", "environment",
           "model_fingerprint"]

RECORD_SCHEMA = "prunekit.bench.accuracy/1"
RECORDS_FILE = "records.jsonl"


def resolve_config(strategy: str, budget: float, mode: str = "layer_average", seed: int = 0) -> PipelineConfig:
    """The pipeline of a cell: a preset, ``hieravid`` (the paper's preset nearest the budget) or a config file.

    ``hieravid`` at 0.3/0.2/0.1 uses ``hieravid-30/20/10`` (each with the paper's schedule shape),
    other budgets ``hieravid-30``'s shape. The budget (in ``mode``) and ``seed`` override the preset's.
    """
    if strategy.endswith((".yaml", ".yml", ".json")):
        config = PipelineConfig.load(strategy)
    elif strategy == "hieravid":
        name = f"hieravid-{round(budget * 100)}"
        config = presets.get(name if name in presets.list() else "hieravid-30")
    else:
        config = presets.get(strategy)
    return config.with_budget(Budget(budget, mode)).model_copy(update={"seed": seed})


STAGE_FIELDS = {"segmenter": "segmenter", "merger": "merger", "allocator": "allocator",
                "selector": "frame_selector", "scheduler": "layer_scheduler"}


def providers(config: PipelineConfig, strategy: str | None = None) -> dict[str, str]:
    """``{distribution: version}`` of whatever provides the config's stages (and the preset ``strategy``).

    Resumed cells are keyed on it, so a plugin upgraded between runs does not reuse stale results.
    """
    from importlib import metadata

    source_of = {(kind, name): source for kind, name, source in prunekit.list_strategies()}
    sources = {source_of[kind, stage.name] for field, kind in STAGE_FIELDS.items()
               if (stage := getattr(config, field, None)) is not None and (kind, stage.name) in source_of}
    if strategy is not None and ("preset", strategy) in source_of:
        sources.add(source_of["preset", strategy])
    out = {}
    for source in sorted(sources):
        try:
            out[source] = prunekit.__version__ if source == "prunekit" else metadata.version(source)
        except metadata.PackageNotFoundError:
            out[source] = "unknown"
    return out


def environment() -> dict[str, str]:
    """Versions and device of this run (for result records)."""
    import transformers

    device = torch.cuda.get_device_name() if torch.cuda.is_available() else platform.processor() or "cpu"
    return {"prunekit": prunekit.__version__, "torch": torch.__version__, "transformers": transformers.__version__,
            "python": platform.python_version(), "platform": platform.platform(), "device": device,
            "threads": str(torch.get_num_threads())}


def model_fingerprint(model: torch.nn.Module) -> str:
    """Short hash of the model config and of a checksum of its first and last weights."""
    params = list(model.parameters())
    sums = [f"{float(p.detach().double().sum()):.6e}" for p in (params[0], params[-1])] if params else []
    blob = model.config.to_json_string(use_diff=False) + "|".join(sums)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def _hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


def _json_safe(obj: Any) -> Any:
    """NaN becomes None (strict JSON), recursively."""
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class AccuracyHarness:
    """Accuracy and fidelity of pruning strategies on one model and one list of video-QA items.

    Args:
        model, processor: a Hugging Face video LLM that ``prunekit.apply`` supports, and its processor.
        items: the questions (see `QAItem`).
        out_dir: where records, predictions, the table and the plot go (created).
        model_name: how records name the model (e.g. a hub id or ``prunekit-tiny``).
        dataset_name: how records name the items.
        num_frames: frames sampled uniformly from each video file.
        mode: budget mode of every cell (``layer_average`` or ``input``).
        batch_size: items per forward (prompts left-padded).
        seed: seeds torch before each cell and overrides the presets' seed.
        prompt_style: ``tiny``, ``chat`` or ``auto`` (see `resolve_style`).
        mc_answer: multiple-choice candidates, ``letter``, ``option`` or ``auto`` (see `resolve_mc_answer`).
        max_new_tokens: generation length for open-ended items.
        n_resamples: bootstrap resamples of the confidence intervals.
        progress: show tqdm progress bars.
        cache_bytes: host memory for cached video features (0 disables the cache).
        world: the data-parallel processes (default: `World.from_env`, a single process unless launched by
            ``accelerate launch`` or ``torchrun``); each evaluates every k-th batch, the main one writes.
    """

    def __init__(self, model: torch.nn.Module, processor: Any, items: Sequence[QAItem], out_dir: str | os.PathLike,
                 *, model_name: str = "model", dataset_name: str = "dataset", num_frames: int = 32,
                 mode: str = "layer_average", batch_size: int = 8, seed: int = 0, prompt_style: PromptStyle = "auto",
                 mc_answer: McAnswer = "auto", max_new_tokens: int = 8, n_resamples: int = 2000, progress: bool = True,
                 cache_bytes: int = 2 << 30, world: World | None = None) -> None:
        if not items:
            raise PrunekitError("no items to evaluate.")
        Budget(1.0, mode)  # validates the mode
        self.model, self.processor, self.items = model, processor, list(items)
        self.out_dir = Path(out_dir)
        self.world = world if world is not None else World.from_env()
        self.mode, self.seed, self.progress = mode, seed, progress and self.world.is_main
        self.n_resamples, self.max_new_tokens = n_resamples, max_new_tokens
        self.style = resolve_style(processor, prompt_style)
        self.num_frames = num_frames
        self.mc_answer = resolve_mc_answer(self.style, mc_answer)
        self.candidates = self._candidates()  # item index -> answer token ids of its options
        self.batches = make_batches(self.items, batch_size)
        self.store = InputStore(model, processor, self.items, self.batches, self._prompt, self._frames,
                                cache_bytes=cache_bytes, use_feature_cache=None if cache_bytes > 0 else False)
        self.meta = {"model": model_name, "model_fingerprint": model_fingerprint(model), "dataset": dataset_name,
                     "dataset_fingerprint": dataset_fingerprint(self.items), "n_items": len(self.items),
                     "num_frames": num_frames, "prompt_style": self.style, "mc_answer": self.mc_answer,
                     "max_new_tokens": max_new_tokens, "scoring": scoring_description(self.mc_answer),
                     "processes": self.world.size}
        self._prepared = False
        self._finished = self._read_records()

    # -- public ------------------------------------------------------------------------------
    def cells(self, strategies: Sequence[str], budgets: Sequence[float]) -> list[StrategySpec]:
        """The unpruned cell, then every strategy at every budget (``name@0.3`` pins one budget)."""
        return parse_strategies(strategies, budgets)

    def run(self, strategies: Sequence[str], budgets: Sequence[float],
            on_error: Callable[[StrategySpec, Exception], None] | None = None) -> list[dict]:
        """Records of the unpruned cell and every strategy x budget cell (finished earlier, or run now).

        A cell whose budget the strategy cannot meet on this model (`BudgetError`) is recorded as
        ``skipped`` with the reason. Any other error re-raises, unless ``on_error`` is given: then it
        is reported there, the cell gets a non-persisted ``error`` record and the run goes on.
        """
        cells = self.cells(strategies, budgets)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        records = []
        baseline: list[dict] | None = None
        from tqdm.auto import tqdm

        for cell in tqdm(cells, desc="cells", unit="cell", disable=not self.progress or len(cells) < 2):
            try:
                record, predictions = self._cell(cell, baseline)
            except Exception as exc:
                if on_error is None:
                    raise
                on_error(cell, exc)
                record, predictions = self._error_record(cell, exc), None
            if cell.strategy == UNPRUNED:
                baseline = predictions
            records.append(record)
        return records

    # -- cells -------------------------------------------------------------------------------
    def _cell_id(self, cell: StrategySpec, config: PipelineConfig | None) -> str:
        key = {k: self.meta[k] for k in ("model_fingerprint", "dataset_fingerprint", "num_frames", "prompt_style",
                                         "mc_answer", "max_new_tokens")}
        if config is not None:
            key.update(strategy=cell.strategy, budget=cell.budget, mode=self.mode, seed=self.seed,
                       config=config.fingerprint(), providers=providers(config, cell.strategy))
        return _hash(key)

    def _cell(self, cell: StrategySpec, baseline: list[dict] | None) -> tuple[dict, list[dict] | None]:
        config = None
        if cell.strategy != UNPRUNED:
            config = resolve_config(cell.strategy, cell.budget, self.mode, self.seed)
        cell_id = self._cell_id(cell, config)
        done = self._finished.get(cell_id)
        if done is not None:
            predictions = self._read_predictions(cell_id) if done["status"] == "ok" else None
            if done["status"] == "skipped" or predictions is not None:
                return {**done, "resumed": True}, predictions
        if cell.strategy != UNPRUNED and baseline is None:
            raise PrunekitError("the unpruned cell must run before pruned cells (fidelity compares against it).")
        base = self._base_record(cell, cell_id, config)
        try:
            handle = prunekit.apply(self.model, config) if config is not None else None
        except BudgetError as exc:
            record = {**base, "status": "skipped", "reason": str(exc)}
            self._append_record(record)
            return record, None
        try:
            start = time.perf_counter()
            predictions, items_per_process = self._predict(cell, handle)
            seconds = time.perf_counter() - start
        finally:
            if handle is not None:
                handle.remove()
        record = {**base, "status": "ok", "seconds": round(seconds, 3), "items_per_process": items_per_process,
                  **self._summary(predictions, baseline)}
        self._write_predictions(cell_id, predictions)
        self._append_record(record)
        return record, predictions

    def _base_record(self, cell: StrategySpec, cell_id: str, config: PipelineConfig | None) -> dict:
        record = {"schema": RECORD_SCHEMA, "cell_id": cell_id, "strategy": cell.strategy, "budget": cell.budget,
                  "mode": self.mode if config is not None else None, "seed": self.seed, **self.meta,
                  "preset": config.name if config is not None else None,
                  "config_fingerprint": config.fingerprint() if config is not None else None,
                  "config": config.to_dict() if config is not None else None,
                  "providers": providers(config, cell.strategy) if config is not None else {},
                  "environment": environment(), "created": _now()}
        return record

    def _error_record(self, cell: StrategySpec, exc: Exception) -> dict:
        return {"schema": RECORD_SCHEMA, "strategy": cell.strategy, "budget": cell.budget, "mode": self.mode,
                "status": "error", "reason": f"{type(exc).__name__}: {exc}", **self.meta}

    # -- prediction --------------------------------------------------------------------------
    def _candidates(self) -> dict[int, list[int]]:
        tok = self.processor.tokenizer
        mc = {i: it for i, it in enumerate(self.items) if it.options is not None}
        if self.mc_answer == "letter":
            letters = letter_token_ids(tok, max((len(it.options) for it in mc.values()), default=0))
            return {i: letters[: len(it.options)] for i, it in mc.items()}
        return {i: option_token_ids(tok, it.options) for i, it in mc.items()}

    def _prompt(self, item: QAItem) -> str:
        return build_prompt(item, self.processor, self.style)

    def _frames(self, item: QAItem) -> np.ndarray:
        if item.frames is not None:
            return item.frames
        from prunekit import video

        return video.load(item.video, self.num_frames)

    def _predict(self, cell: StrategySpec, handle: prunekit.PruneHandle | None) -> tuple[list[dict], list[int]]:
        """Every item's prediction (gathered from all processes) and how many items each process ran."""
        from tqdm.auto import tqdm

        mine = self.world.batches(len(self.batches))
        if not self._prepared:
            self.store.prepare(self.progress, mine)
            self._prepared = True
        torch.manual_seed(self.seed)
        predictions: dict[int, dict] = {}
        tok = self.processor.tokenizer
        for b in tqdm(mine, desc=cell.label, unit="batch", disable=not self.progress, leave=False):
            batch = self.batches[b]
            # an encoder stage prunes inside the vision tower: it needs the pixels, not the cached features
            encodes = handle is not None and handle.pipeline.encoder is not None
            inputs = self.store.raw(b) if encodes else self.store.get(b)
            its = [self.items[i] for i in batch.indices]
            if batch.multiple_choice:
                logprobs = option_logprobs(self.model, inputs, [self.candidates[i] for i in batch.indices])
                outs = [{"prediction": it.letters[int(np.argmax(lp))], "logprobs": [round(x, 6) for x in lp]}
                        for it, lp in zip(its, logprobs)]
                for o, it in zip(outs, its):
                    o["correct"] = o["prediction"] == it.answer
            else:
                texts = generate_text(self.model, tok, inputs, self.max_new_tokens)
                outs = []
                for text, it in zip(texts, its):
                    pred, ok = match_open(text, it.answer)
                    outs.append({"prediction": pred, "generated": text.strip(), "correct": ok})
            stats = handle.stats() if handle is not None else None
            for j, (i, it) in enumerate(zip(batch.indices, its)):
                s = stats.samples[j] if stats is not None else None
                predictions[i] = {"id": it.id, "type": it.type, "category": it.category, "answer": it.answer,
                                  **outs[j],
                                  "input_retention": s.input_retention if s else 1.0,
                                  "layer_average_retention": s.layer_average_retention if s else 1.0,
                                  "flops_ratio": s.flops_ratio if s else 1.0}
        return self.world.gather(predictions, len(self.items))

    def _summary(self, preds: list[dict], baseline: list[dict] | None) -> dict:
        correct = np.array([p["correct"] for p in preds], np.float64)
        lo, hi = metrics.bootstrap_ci(correct, n_resamples=self.n_resamples, seed=self.seed)
        by_cat: dict[str, list[bool]] = defaultdict(list)
        by_type: dict[str, list[bool]] = defaultdict(list)
        for p in preds:
            by_cat[p["category"] or "all"].append(p["correct"])
            by_type[p["type"]].append(p["correct"])
        out = {"accuracy": float(correct.mean()), "accuracy_ci": [lo, hi],
               "accuracy_by_type": {k: float(np.mean(v)) for k, v in by_type.items()},
               "accuracy_by_category": {k: float(np.mean(v)) for k, v in sorted(by_cat.items())},
               "n_multiple_choice": len(by_type.get("multiple_choice", [])),
               "n_open_ended": len(by_type.get("open_ended", []))}
        for key in ("input_retention", "layer_average_retention", "flops_ratio"):
            out[key] = float(np.mean([p[key] for p in preds]))
        ref = baseline if baseline is not None else preds
        ref_correct = np.array([p["correct"] for p in ref], np.float64)
        base_acc = float(ref_correct.mean())
        out["relative_accuracy"] = out["accuracy"] / base_acc if base_acc > 0 else math.nan
        out["relative_accuracy_ci"] = list(metrics.paired_ratio_ci(correct, ref_correct, n_resamples=self.n_resamples,
                                                                   seed=self.seed))
        out["agreement"] = metrics.agreement([p["prediction"] for p in ref], [p["prediction"] for p in preds])
        mc = [(r["logprobs"], p["logprobs"]) for r, p in zip(ref, preds) if "logprobs" in p]
        out["kl"] = metrics.mean_kl([a for a, _ in mc], [b for _, b in mc]) if mc else math.nan
        return _json_safe(out)

    # -- files -------------------------------------------------------------------------------
    def _read_records(self) -> dict[str, dict]:
        path = self.out_dir / RECORDS_FILE
        found: dict[str, dict] = {}
        if path.is_file():
            for line in path.read_text().splitlines():
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:  # a line cut short by an interrupted run
                    continue
                if rec.get("schema") == RECORD_SCHEMA and rec.get("status") in ("ok", "skipped"):
                    found[rec["cell_id"]] = rec
        return found

    def _append_record(self, record: dict) -> None:
        if self.world.is_main:
            with open(self.out_dir / RECORDS_FILE, "a") as f:
                f.write(json.dumps(record) + "\n")
        self._finished[record["cell_id"]] = record

    def _predictions_path(self, cell_id: str) -> Path:
        return self.out_dir / "predictions" / f"{cell_id}.jsonl"

    def _write_predictions(self, cell_id: str, predictions: list[dict]) -> None:
        if not self.world.is_main:
            return
        path = self._predictions_path(cell_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(p) + "\n" for p in predictions))
        tmp.replace(path)

    def _read_predictions(self, cell_id: str) -> list[dict] | None:
        path = self._predictions_path(cell_id)
        if not path.is_file():
            return None
        preds = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        return preds if [p["id"] for p in preds] == [it.id for it in self.items] else None
