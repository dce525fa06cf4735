"""`prunekit.apply`: make a Hugging Face video LLM prune, in place and reversibly."""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from prunekit.budget import Budget
from prunekit.config import PipelineConfig
from prunekit.errors import BudgetError, ConfigError, PrunekitError, UnsupportedModelError
from prunekit.model_adapter import ModelAdapter, find_adapter
from prunekit.pipeline import Pipeline
from prunekit.runtime.session import PruneSession
from prunekit.runtime.stats import ForwardStats
from prunekit.runtime.timing import PartTimer

SUPPORTED_ATTENTION = ("sdpa", "eager")
_HANDLES: weakref.WeakKeyDictionary[nn.Module, PruneHandle] = weakref.WeakKeyDictionary()


class PruneHandle:
    """Returned by `apply`: undo with `remove()` (or use it as a context manager), read `stats()`."""

    def __init__(self, model: nn.Module, adapter: ModelAdapter, pipeline: Pipeline) -> None:
        self.model, self.adapter, self.pipeline = model, adapter, pipeline
        self._session = PruneSession(model, adapter, pipeline)
        self._session.install()
        self.active = True

    def remove(self) -> None:
        """Remove every hook: the model behaves bit-identically to before `apply`."""
        if self.active:
            self._session.remove()
            self.active = False
            if _HANDLES.get(self.model) is self:
                del _HANDLES[self.model]

    def stats(self) -> ForwardStats | None:
        """Kept tokens per stage, realized retention and FLOPs ratio of the latest prefill (None before any)."""
        return self._session.last_stats

    def kept_indices(self) -> list[dict[int, torch.Tensor]]:
        """Per sample of the latest prefill: ``{layer: original sequence indices present from that layer on}``.

        Indices count every token of the (unpruned, padded) input, text included; layer 0 is the LLM input.
        """
        return self._session.last_kept

    def timed(self, sync: bool = True) -> PruneHandle:
        """Attribute GPU time to prunekit's parts exactly (CUDA syncs; for benchmarks)."""
        self._session.timer.sync = sync
        return self

    @property
    def timer(self) -> PartTimer:
        """The timer the runtime times its parts with now (its own `StageTimer` outside `traced`)."""
        return self._session.timer

    @contextmanager
    def traced(self, timer: PartTimer) -> Iterator[PartTimer]:
        """Time prunekit's parts with ``timer`` while inside (a benchmark's CUDA-event or profiler-range timer).

        Parts: the runtime's ``plan``, ``relevance`` and ``select`` regions, and the totals of its hooks,
        ``hooks_prefill`` (before the LLM: layouts, planning, the layer-0 stage, gathers) and
        ``hooks_layers`` (the stages inside the LLM). The pipeline's stages are public
        (`PruneHandle.pipeline`) for finer parts. The previous timer is back on exit.
        """
        session, previous = self._session, self._session.timer
        prefill, layer_stage = session._prefill, session._layer_stage

        def timed_prefill(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            with timer("hooks_prefill"):
                return prefill(*args, **kwargs)

        def timed_layer_stage(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            with timer("hooks_layers"):
                return layer_stage(*args, **kwargs)

        session.timer, session._prefill, session._layer_stage = timer, timed_prefill, timed_layer_stage
        try:
            yield timer
        finally:
            session.timer = previous
            del session._prefill, session._layer_stage  # the instance attributes shadowed the methods

    def __enter__(self) -> PruneHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def __repr__(self) -> str:
        state = "active" if self.active else "removed"
        return f"PruneHandle({self.pipeline.config.name!r}, {self.adapter.describe()}, {state})"


def apply(model: nn.Module, pipeline: Pipeline | PipelineConfig | str, budget: Budget | float | None = None, *,
          adapter: str = "auto", adapter_options: dict | None = None, replace: bool = False,
          decode: str = "eager") -> PruneHandle:
    """Make ``model.generate`` / ``model(...)`` prune video tokens with ``pipeline``.

    Args:
        model: a supported Hugging Face model (LLaVA-OneVision, LLaVA-Video, Qwen2-VL, Qwen2.5-VL).
        pipeline: a preset name (``"hieravid-30"``), a config file (``"my.yaml"``), a `PipelineConfig` or a
            `Pipeline`.
        budget: overrides the pipeline's budget; a float means layer-averaged retention.
        adapter: ``"auto"`` (recognise the model) or an adapter name.
        adapter_options: keyword options of the adapter (e.g. ``{"newline": "keep"}`` for ``llava_video``).
        replace: allow re-applying to a model that already prunes (the old hooks are removed).
        decode: ``"eager"`` (Hugging Face's own decode loop with prunekit's hooks). ``"graph"`` (a static
            KV cache with per-layer lengths and the decode step captured as a CUDA graph) is planned
            and raises ``NotImplementedError`` for now.

    Returns:
        A `PruneHandle`; ``handle.remove()`` restores the original behaviour exactly.
    """
    _check_model(model)
    _check_budget(budget)
    _check_decode(decode)
    pipe = _as_pipeline(pipeline, budget)
    previous = _HANDLES.get(model)
    if previous is not None and previous.active:
        if not replace:
            raise PrunekitError(
                f"this model already prunes with {previous.pipeline.config.name!r}; call handle.remove() first "
                "or pass replace=True.")
        previous.remove()
    found = _adapter(model, adapter, adapter_options)
    _check_attention(model)
    _check_depth(pipe, found)
    handle = PruneHandle(model, found, pipe)
    _HANDLES[model] = handle
    return handle


def is_pruned(model: nn.Module) -> bool:
    """Whether ``model`` currently has an active `apply`."""
    handle = _HANDLES.get(model)
    return handle is not None and handle.active


def _check_model(model: object) -> None:
    if not isinstance(model, nn.Module):
        raise UnsupportedModelError(
            f"apply() needs a loaded Hugging Face model (a torch.nn.Module), got {type(model).__name__}; load it "
            "first, e.g. LlavaOnevisionForConditionalGeneration.from_pretrained(path, attn_implementation='sdpa').")


def _check_budget(budget: object) -> None:
    if budget is None or isinstance(budget, Budget):
        return
    if isinstance(budget, bool) or not isinstance(budget, (int, float)):
        raise BudgetError(f"budget must be a number in (0, 1] or a Budget, got {budget!r} "
                          f"({type(budget).__name__}); e.g. budget=0.3 or Budget(0.3, mode='input').")


def _adapter(model: nn.Module, name: str, options: dict | None) -> ModelAdapter:
    """`find_adapter` with a named error for options the adapter does not take and for a forced adapter
    that cannot read this model's structure."""
    if options is not None and not isinstance(options, dict):
        raise ConfigError(f"adapter_options must be a dict of keyword options, got {type(options).__name__}.")
    try:
        found = find_adapter(model, name, **(options or {}))
    except TypeError as exc:
        if not options:
            raise
        raise ConfigError(f"adapter_options {sorted(options)} are not all accepted by the {name!r} adapter ({exc}); "
                          "see the adapter's documentation for its options.") from None
    if name != "auto" and not found.matches(model):
        owner = _matching_adapter(model)
        if owner is not None:
            raise UnsupportedModelError(
                f"adapter {name!r} is for {', '.join(found.model_classes)}, but {type(model).__name__} is handled by "
                f"the {owner!r} adapter; use adapter='auto' (or adapter={owner!r}).")
    try:
        found.layers  # noqa: B018 - reading the structure is the check
        found.text_config  # noqa: B018
    except AttributeError as exc:
        raise UnsupportedModelError(
            f"the {found.name!r} adapter cannot read {type(model).__name__} ({exc}); it supports "
            f"{', '.join(found.model_classes) or 'its own model classes'}. Use adapter='auto' or an adapter "
            "for this model family.") from None
    return found


def _matching_adapter(model: nn.Module) -> str | None:
    from prunekit.plugins import get_registry

    return next((e.name for e in get_registry().entries("adapter") if e.obj.matches(model)), None)


def _as_pipeline(pipeline: Pipeline | PipelineConfig | str, budget: Budget | float | None) -> Pipeline:
    if isinstance(pipeline, str):
        return Pipeline.from_preset(pipeline, budget)
    if isinstance(pipeline, PipelineConfig):
        return Pipeline(pipeline if budget is None else pipeline.with_budget(budget))
    if isinstance(pipeline, Pipeline):
        return pipeline if budget is None else Pipeline(pipeline.config.with_budget(budget))
    raise ConfigError(f"pipeline must be a preset name, a config file path, a PipelineConfig or a Pipeline, got "
                      f"{type(pipeline).__name__}.")


DECODE_MODES = ("eager", "graph")


def _check_decode(decode: str) -> None:
    if decode not in DECODE_MODES:
        raise ConfigError(f"decode={decode!r} is not a decode mode; use one of {', '.join(map(repr, DECODE_MODES))}.")
    if decode == "graph":
        raise NotImplementedError(
            "prunekit.apply(..., decode='graph') (a static per-layer KV cache with the decode step captured as a "
            "CUDA graph) is not implemented yet; use decode='eager' (the default), which gives the same tokens.")


def _check_attention(model: nn.Module) -> None:
    impl = getattr(model.config, "_attn_implementation", None) or "sdpa"
    if impl not in SUPPORTED_ATTENTION:
        raise UnsupportedModelError(
            f"attn_implementation={impl!r} is not supported by prunekit's runtime (it builds per-layer masks for "
            f"ragged keep sets); load the model with attn_implementation='sdpa' (recommended) or 'eager'.")


def _check_depth(pipe: Pipeline, adapter: ModelAdapter) -> None:
    """Surface schedule errors (e.g. a stage layer beyond the model's depth) at apply time.

    The schedule is planned for the longest input the model takes (``max_position_embeddings``): the
    stage layers do not depend on the token count, and every real input is at most that long.
    """
    if pipe.budget is None or pipe.budget.retain < 1.0:
        longest = adapter.text_config.max_position_embeddings
        pipe.scheduler.plan(longest, adapter.num_layers, pipe.budget, min_keep=1)
