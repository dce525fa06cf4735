"""`Pipeline`: a composition of stages that turns features and a budget into kept token ids.

Everything here is model-free and works on plain tensors, one sample at a time. The runtime
calls `Pipeline.start` once per sample on the LLM input embeddings and `Pipeline.step` at every
stage; `Pipeline.simulate` runs all stages on fixed features, for tests and for users who bring
their own model.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch

from prunekit.budget import Budget, realized_retention
from prunekit.config import PipelineConfig
from prunekit.errors import InvalidInputError, PrunekitError
from prunekit.interfaces import (
    BudgetAllocator,
    EncoderStage,
    FrameSelector,
    LayerScheduler,
    Segmenter,
    TokenMerger,
)
from prunekit.ops.nosync import host_to_device, to_device
from prunekit.types import DeviceChecks, FrameReduction, MergeMap, Segments, SelectionContext, Stage, VideoLayout


@dataclass
class SamplePlan:
    """Per-sample state: the segments, the exact stages and which visual ids are still alive.

    Token counts live on the host (``live_sizes``), indices on the device, so stages inside the LLM
    never wait for the GPU; contract checks on device values are queued in ``checks`` and read
    together by `verify`.
    """

    layout: VideoLayout
    segments: Segments
    segment_features: torch.Tensor  # [S, ...] the allocator's summary (default: mean input feature)
    stages: list[Stage]
    live: torch.Tensor  # [n] visual ids alive now, sorted
    frame_segment: torch.Tensor  # [F] segment of each frame, on the features' device
    live_sizes: list[int]  # live tokens per segment, on the host (recounted once after a pre-LLM merge)
    kept_per_stage: list[int] = field(default_factory=list)
    n_original: int = 0  # visual tokens before an encoder stage (0: the layout's own count)
    checks: DeviceChecks = field(default_factory=DeviceChecks)

    @property
    def n_visual(self) -> int:
        """Visual tokens N of the video as the processor made it (before any encoder stage)."""
        return self.n_original or self.layout.num_visual

    def verify(self) -> None:
        """Read every queued check at once (one host sync); report kernel errors, raise the first failure."""
        pending, self.checks = self.checks, DeviceChecks()
        values = [flag.reshape(()) for flag, _ in pending.conditions]
        values += [counter.sum(dtype=torch.int64).reshape(()) for counter, _ in pending.error_counters]
        if not values:
            return
        device = values[0].device
        read = torch.stack([v.to(device=device, dtype=torch.long) for v in values]).tolist()
        ok, errors = read[: len(pending.conditions)], read[len(pending.conditions):]
        for count, (_, report) in zip(errors, pending.error_counters):
            report(count)
        for passed, (_, message) in zip(ok, pending.conditions):
            if not passed:
                raise PrunekitError(message())


@dataclass(frozen=True)
class StepResult:
    """Outcome of one stage in the live set's local index space.

    Apply ``merge`` to the live features first, then keep rows ``keep`` (sorted).
    """

    keep: torch.Tensor
    merge: MergeMap


@dataclass(frozen=True)
class Simulation:
    """What `Pipeline.simulate` returns."""

    segments: Segments
    stages: list[Stage]
    kept: list[torch.Tensor]  # visual ids alive after each stage
    retention: dict[str, float]


class Pipeline:
    """Optional encoder stage + segmenter + optional merger + allocator + frame selector + layer scheduler
    + budget."""

    def __init__(self, config: PipelineConfig) -> None:
        from prunekit.plugins import get_registry

        registry = get_registry()
        self.config = config
        self.segmenter: Segmenter = registry.get("segmenter", config.segmenter.name)(config.segmenter)
        self.merger: TokenMerger | None = (
            registry.get("merger", config.merger.name)(config.merger) if config.merger else None)
        self.allocator: BudgetAllocator = registry.get("allocator", config.allocator.name)(config.allocator)
        self.selector: FrameSelector = registry.get("frame_selector", config.selector.name)(config.selector)
        self.scheduler: LayerScheduler = registry.get("layer_scheduler", config.scheduler.name)(config.scheduler)
        self.encoder: EncoderStage | None = (
            registry.get("encoder", config.encoder.name)(config.encoder) if config.encoder else None)

    @classmethod
    def from_preset(cls, name: str, budget: Budget | float | None = None) -> Pipeline:
        """Build a named preset or a config file (``.json``/``.yaml``), optionally with another budget
        (a float = layer-average)."""
        from prunekit import presets

        config = PipelineConfig.load(name) if is_config_path(name) else presets.get(name)
        return cls(config if budget is None else config.with_budget(budget))

    @property
    def budget(self) -> Budget | None:
        """The requested budget (None: the scheduler's published fractions)."""
        return self.config.budget

    @property
    def needs_relevance(self) -> bool:
        """Whether the selector (or the merger) reads last-query attention."""
        return bool(self.selector.needs_relevance or (self.merger is not None and self.merger.needs_relevance))

    @property
    def scores_previous_layer(self) -> bool:
        """Whether an in-LLM stage at layer K is ranked by layer K-1's attention (FastV's convention)."""
        return bool(self.selector.needs_relevance and self.selector.scores_previous_layer)

    def __repr__(self) -> str:
        return f"Pipeline({self.config.name!r}, budget={self.budget})"

    # -- encoder level (inside the vision tower) -------------------------------------------------
    def encoder_min_frames(self, num_frames: int, tokens_per_frame: int, num_layers: int) -> int:
        """The fewest frames the encoder stage may keep of a video of ``num_frames`` x ``tokens_per_frame``
        LLM tokens: enough for the schedule's first stage before the LLM (all of them without one)."""
        if self.encoder is None or (self.budget is not None and self.budget.retain >= 1.0):
            return num_frames
        stages = self.scheduler.plan(num_frames * tokens_per_frame, num_layers, self.budget, min_keep=1)
        if not stages or stages[0].layer != 0:
            return num_frames  # the schedule keeps every token up to its first layer: nothing may go early
        return min(num_frames, -(-stages[0].keep // tokens_per_frame))

    def reduce_frames(self, hidden: torch.Tensor, tokens_per_frame: int, num_layers: int) -> FrameReduction | None:
        """Run the encoder stage on one video's tower states ``hidden [F, T, D]``; None if every frame continues.

        ``tokens_per_frame`` is what one frame becomes in the LLM input (after pooling), which the
        budget counts in. Reads the kept count on the host (one sync per video).
        """
        frames = hidden.shape[0]
        min_frames = self.encoder_min_frames(frames, tokens_per_frame, num_layers)
        if min_frames >= frames:
            return None
        kept, merge = self.encoder.reduce(hidden, min_frames)
        reduction = FrameReduction(frames, torch.as_tensor(kept, dtype=torch.long).cpu(),
                                   MergeMap(merge.source.cpu(), merge.target.cpu()))
        _check_reduction(self.encoder, reduction, min_frames)
        return None if reduction.kept.numel() == frames else reduction

    # -- per-sample API used by the runtime ----------------------------------------------------
    def start(self, features: torch.Tensor, layout: VideoLayout, num_layers: int,
              n_original: int | None = None) -> SamplePlan:
        """Segment the video and plan exact stages. ``features [F, P, D]`` are LLM input embeddings.

        After an encoder stage, ``layout`` holds the kept frames only and ``n_original`` is the visual
        token count before it: the budget counts against ``n_original``, and a layer-0 stage (keeping
        every token that arrived) stands for the encoder's cut when the schedule has none.
        """
        _check_features(features, layout)
        segments = self.segmenter.segment(features, layout)
        seg_feats = self.allocator.summarize(features, segments)
        n = layout.num_visual
        total = n if n_original is None else n_original
        if self.budget is not None and self.budget.retain >= 1.0:
            stages = []  # guarantee 5: keeping everything is a no-op at any depth, never a BudgetError
        else:
            planned = None if self.merger is None or total > n else self.merger.plan_stages(
                features, segments, num_layers, self.budget, min_keep=len(segments))
            stages = self.scheduler.plan(total, num_layers, self.budget, min_keep=len(segments)) \
                if planned is None else planned
        if total > n:
            _check_fits_encoder(stages, n, total)
        stages = [s for s in stages if s.keep < n]
        if total > n and (not stages or stages[0].layer != 0):
            stages.insert(0, Stage(0, n))
        per_segment = [(end - start) * layout.tokens_per_frame for start, end in segments.bounds]
        return SamplePlan(layout, segments, seg_feats, stages, torch.arange(n, device=features.device),
                          host_to_device(segments.segment_of_frame(), features.device), per_segment,
                          n_original=total)

    def step(self, plan: SamplePlan, index: int, features: torch.Tensor,
             attention: torch.Tensor | None = None) -> StepResult:
        """Run stage ``index`` on the live tokens' ``features [n, D]``; update ``plan.live``.

        ``attention [n]`` is the raw last-query attention over the live visual tokens (needed only
        when `needs_relevance`); it is min-max normalised here over all of them. Checks on device
        values are queued: call ``plan.verify()`` after the last stage (`simulate` and the runtime do).
        """
        stage = plan.stages[index]
        plan.live = plan.live.to(features.device)  # device_map: stages run where the layer's input lives
        n = plan.live.numel()
        if features.shape[0] != n:
            raise InvalidInputError(f"stage {index} got {features.shape[0]} feature rows for {n} live tokens.")
        relevance = _minmax(attention) if attention is not None else None
        merge = MergeMap.empty()
        candidates = None  # indices into the live set; None = all of it
        if stage.layer == 0 and self.merger is not None and n == plan.layout.num_visual and stage.keep < n:
            extra = {"relevance": relevance} if self.merger.needs_relevance else {}
            kept, merge = self.merger.merge(features.view(plan.layout.num_frames, plan.layout.tokens_per_frame, -1),
                                            plan.layout, plan.segments, stage.keep, **extra)
            candidates = torch.sort(kept.to(features.device)).values
            features = merge.apply(features)[candidates]
            relevance = None if relevance is None else relevance[candidates]
            # how many tokens each segment kept depends on the data: count once, before the LLM runs
            seg = plan.frame_segment[plan.layout.frame_of(candidates)]
            counts = torch.zeros(len(plan.segments), dtype=torch.long, device=seg.device)
            plan.live_sizes = counts.index_add_(0, seg, torch.ones_like(seg)).tolist()  # bincount would sync twice
        ids = plan.live if candidates is None else plan.live[candidates]
        if ids.numel() > stage.keep:
            chosen = self._select(plan, index, ids, features, relevance, stage.keep)
            candidates = chosen if candidates is None else candidates[chosen]
        elif candidates is None:
            candidates = torch.arange(n, device=features.device)
        plan.live = plan.live[candidates]
        plan.kept_per_stage.append(int(candidates.numel()))
        return StepResult(keep=candidates, merge=merge)

    def simulate(self, features: torch.Tensor, layout: VideoLayout, num_layers: int,
                 attention: torch.Tensor | None = None, encoder_hidden: torch.Tensor | None = None) -> Simulation:
        """Run every stage on fixed ``features [F, P, D]`` (and optional ``attention [N]``).

        With an encoder stage and ``encoder_hidden [F, T, D]`` (the tower's states at its layer), the
        encoder decides first; the frames it folds are folded in ``features`` too (by the same merge
        map), a stand-in for what the tower's remaining layers would make of them. Kept ids are always
        reported in the original video's id space.
        """
        n_total, ids_of = layout.num_visual, None
        reduction = None
        if self.encoder is not None and encoder_hidden is not None:
            reduction = self.reduce_frames(encoder_hidden, layout.tokens_per_frame, num_layers)
        if reduction is not None:
            per_frame = layout.tokens_per_frame
            ids_of = (reduction.kept[:, None] * per_frame + torch.arange(per_frame)).reshape(-1).to(features.device)
            features = reduction.fold(features)
            attention = None if attention is None else attention[ids_of.to(attention.device)]
            layout = layout.keep_frames(reduction.kept)
        plan = self.start(features, layout, num_layers, n_original=n_total)
        feats = features.reshape(layout.num_visual, -1)
        attn = attention
        kept = []
        for i in range(len(plan.stages)):
            result = self.step(plan, i, feats, attn)
            feats = result.merge.apply(feats)[result.keep]
            attn = None if attn is None else attn[result.keep]
            kept.append(plan.live.clone() if ids_of is None else ids_of[plan.live])
        plan.verify()
        retention = realized_retention(plan.stages, n_total, num_layers) if plan.stages else {
            "input": 1.0, "layer_average": 1.0}
        segments = plan.segments
        if reduction is not None:  # segments over the original frames: a dropped frame joins the kept one before it
            starts = [0] + [int(reduction.kept[start]) for start in segments.starts[1:]]
            segments = Segments(tuple(starts), reduction.num_frames)
        return Simulation(segments, plan.stages, kept, retention)

    # -- internals --------------------------------------------------------------------------
    def _select(self, plan: SamplePlan, index: int, ids: torch.Tensor, features: torch.Tensor,
                relevance: torch.Tensor | None, keep_total: int) -> torch.Tensor:
        """Split ``keep_total`` over segments and run the selector in each; sorted indices into ``ids``.

        Live ids are sorted and frame-major and segments are runs of frames, so each segment's tokens
        are one contiguous slice: no grouping, and every count is known on the host.
        """
        layout = plan.layout
        sizes = plan.live_sizes
        counts = self.allocator.allocate(sizes, keep_total, plan.segment_features)
        _check_counts(self.allocator, counts, sizes, keep_total)
        stage = plan.stages[index]
        llm_stage = sum(1 for s in plan.stages[:index] if s.layer > 0) if stage.layer > 0 else -1
        generator = torch.Generator().manual_seed(self.config.seed * 1009 + index)
        frames, positions = layout.frame_of(ids), layout.position_of(ids)
        starts, feats, keeps, contexts, used = [], [], [], [], []
        start = 0
        for size, count in zip(sizes, counts):
            part = slice(start, start + size)
            if count > 0:
                starts.append(start)
                used.append(size)
                feats.append(features[part])
                keeps.append(count)
                contexts.append(SelectionContext(
                    frame=frames[part], position=positions[part], grid=layout.grid,
                    relevance=None if relevance is None else relevance[part], generator=generator,
                    layer=stage.layer, llm_stage=llm_stage, checks=plan.checks))
            start += size
        picks = self.selector.select_segments(feats, keeps, contexts)
        chosen = _flatten_picks(self.selector, plan, picks, keeps, used, starts, features.device)
        plan.live_sizes = counts
        return torch.sort(chosen).values


def _minmax(x: torch.Tensor) -> torch.Tensor:
    x = x.float()
    lo, hi = x.min(), x.max()
    span = hi - lo
    return torch.where(span > 0, (x - lo) / span.clamp_min(1e-30), torch.ones_like(x))


def _check_features(features: torch.Tensor, layout: VideoLayout) -> None:
    expected = (layout.num_frames, layout.tokens_per_frame)
    if features.ndim != 3 or tuple(features.shape[:2]) != expected:
        raise InvalidInputError(
            f"features must be [frames, tokens_per_frame, dim] = [{expected[0]}, {expected[1]}, D] for this "
            f"layout, got {tuple(features.shape)}.")
    if not torch.isfinite(features).all():
        raise InvalidInputError(
            "features contain NaN or infinite values; check the vision tower's dtype (fp16 overflow?) "
            "before pruning.")


def _check_reduction(encoder: EncoderStage, reduction: FrameReduction, min_frames: int) -> None:
    kept, merge, frames = reduction.kept, reduction.merge, reduction.num_frames
    name = encoder.config.name
    problems = []
    if kept.ndim != 1 or not min_frames <= kept.numel() <= frames:
        problems.append(f"it kept {kept.numel()} frames, outside [{min_frames}, {frames}]")
    elif kept.numel() and (int(kept.min()) < 0 or int(kept.max()) >= frames or bool((kept.diff() <= 0).any())):
        problems.append(f"kept frames {kept.tolist()} are not sorted, unique frame ids below {frames}")
    elif len(merge):
        is_kept = torch.zeros(frames, dtype=torch.bool)
        is_kept[kept] = True
        in_range = bool(((merge.source >= 0) & (merge.source < frames) & (merge.target >= 0)
                         & (merge.target < frames)).all())
        if not in_range or bool(is_kept[merge.source].any()) or not bool(is_kept[merge.target].all()) \
                or merge.source.unique().numel() != merge.source.numel():
            problems.append("its merge map must send distinct dropped frames to kept frames")
    if problems:
        raise PrunekitError(f"encoder stage {name!r} returned an invalid reduction: {problems[0]}.")


def _check_fits_encoder(stages: list[Stage], n_live: int, n_original: int) -> None:
    if stages and stages[0].layer == 0 and stages[0].keep > n_live:
        raise PrunekitError(
            f"the encoder stage left {n_live} of {n_original} visual tokens but the schedule's first stage keeps "
            f"{stages[0].keep}; the encoder must keep at least Pipeline.encoder_min_frames frames.")


def _check_counts(allocator: BudgetAllocator, counts: list[int], sizes: list[int], total: int) -> None:
    if sum(counts) != total or any(c < 0 or c > s for c, s in zip(counts, sizes)):
        raise PrunekitError(
            f"allocator {allocator.config.name!r} returned {counts} for segment sizes {sizes} and "
            f"total {total}: counts must sum to the total and fit each segment.")


def _flatten_picks(selector: FrameSelector, plan: SamplePlan, picks: list[torch.Tensor], keeps: list[int],
                   sizes: list[int], starts: list[int], device: torch.device) -> torch.Tensor:
    """Per-segment picks as one index tensor into the live set.

    Counts are checked at once (host values); distinctness and range are device values, so that
    check is queued on the plan (`SamplePlan.verify`) instead of stopping the GPU here.
    """
    name = selector.config.name
    for g, (pick, keep) in enumerate(zip(picks, keeps)):
        if pick.numel() != keep:
            raise PrunekitError(f"frame selector {name!r} returned {pick.numel()} indices for segment {g}, "
                                f"which must keep exactly {keep}.")
    local = torch.cat([torch.as_tensor(p, dtype=torch.long).to(device, non_blocking=True) for p in picks])
    repeats, total = to_device(keeps, device), sum(keeps)
    offsets = torch.repeat_interleave(to_device(starts, device), repeats, output_size=total)
    bounds = torch.repeat_interleave(to_device(sizes, device), repeats, output_size=total)
    valid = (local >= 0) & (local < bounds)
    # an out-of-range pick is replaced by the segment's first token so that indexing with ``flat`` stays
    # safe until `SamplePlan.verify` reports the selector's error by name (no IndexError, no device assert)
    flat = torch.where(valid, local, 0) + offsets
    in_range = valid.all()
    # segments occupy disjoint ranges, so per-segment distinctness is global distinctness
    distinct = (torch.sort(flat).values.diff() != 0).all()

    def message() -> str:
        return (f"frame selector {name!r} must return distinct indices in [0, segment size) for every segment; "
                f"got {[torch.as_tensor(p).tolist() for p in picks]} for sizes {sizes}.")

    plan.checks.require(in_range & distinct, message)
    return flat


CONFIG_SUFFIXES = (".json", ".yaml", ".yml")


def is_config_path(name: str) -> bool:
    """Whether ``name`` names a pipeline config file rather than a preset (a config suffix, or a file)."""
    return name.lower().endswith(CONFIG_SUFFIXES) or os.path.isfile(name)
