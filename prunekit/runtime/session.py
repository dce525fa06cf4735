"""The hooks that make an unmodified ``model.generate`` prune, and the per-forward state they share.

Three kinds of instance-level forward pre-hooks:

* on the top-level model: remember ``input_ids`` (to find the video tokens);
* on the language model: at prefill, run the layer-0 stage on ``inputs_embeds`` (merge and/or
  select), re-pad the batch and slice positions and mask; at decode, slice the 2-D mask;
* on every decoder layer: at a stage layer, select on the hidden states; after it, hand each layer
  the sliced rotary tables, positions and mask. At decode, give each layer a mask as long as its
  (shorter) KV cache.

Kept tokens always keep their original (M-)RoPE positions; ``generate`` keeps counting positions
on the unpruned length, which is exactly right for the new tokens.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from prunekit.merging.injection import add_level, fold_levels
from prunekit.model_adapter import ModelAdapter
from prunekit.ops.nosync import device_to_host, host_to_device, true_indices
from prunekit.pipeline import Pipeline, SamplePlan
from prunekit.runtime.encoder import EncoderHooks, reduce_layouts
from prunekit.runtime.sequence import gather_tokens, left_pad_index, prefill_mask, to_mask_format
from prunekit.runtime.stats import ForwardStats, SampleStats
from prunekit.runtime.timing import StageTimer


@dataclass
class Track:
    """One sample's tokens: original sequence indices and LM-input positions of what is present."""

    plan: SamplePlan | None
    orig: torch.Tensor  # [n] original sequence index of every present token (sorted)
    lm: torch.Tensor  # [n] position in the LM-input sequence of every present token
    next_stage: int = 0
    kept: dict[int, torch.Tensor] = field(default_factory=dict)  # layer -> original indices present from it on
    injected_orig: torch.Tensor | None = None  # [m] original indices of the tokens receiving injected levels
    injected: torch.Tensor | None = None  # [n_levels, m, D] their levels (DeepStack), pruned like the tokens


@dataclass
class CapturedInputs:
    """The top-level model's ``input_ids`` and 2-D ``attention_mask``, copied to the host as they arrive.

    The copy is queued before the vision tower, so by the time the LLM starts it has long finished and
    reading it does not wait for the vision tower (reading the device tensors would).
    """

    ids_host: torch.Tensor
    mask_host: torch.Tensor | None
    ready: torch.cuda.Event | None

    @classmethod
    def start(cls, ids: torch.Tensor, mask: Any) -> CapturedInputs:
        """Queue the host copies of ``ids`` and ``mask`` (a non-2-D mask is not copied)."""
        mask = mask if isinstance(mask, torch.Tensor) and mask.ndim == 2 else None
        if ids.device.type != "cuda":
            return cls(ids, mask, None)
        mask_host = None if mask is None else device_to_host(mask)
        ids_host = device_to_host(ids)
        ready = torch.cuda.Event()
        ready.record()
        return cls(ids_host, mask_host, ready)

    def on_host(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The host copies (waits for the copies only, which were queued before the vision tower)."""
        if self.ready is not None:
            self.ready.synchronize()
        return self.ids_host, self.mask_host


@dataclass
class Current:
    """What the decoder layers from the latest in-LLM stage on receive instead of the full tensors."""

    valid: torch.Tensor  # [B, Lc]
    lm_index: torch.Tensor  # [B, Lc] LM-input position of every current token (0 for padding)
    position_embeddings: tuple[torch.Tensor, torch.Tensor]
    position_ids: torch.Tensor | None
    attention_mask: torch.Tensor | None

    def on(self, device: torch.device) -> Current:
        """This state with its tensors on ``device`` (each layer of a sharded model gets its own copy)."""
        if self.valid.device == device:
            return self
        cache = self.__dict__.setdefault("_copies", {})
        if device not in cache:
            move = (lambda t: None if t is None else t.to(device))  # noqa: E731
            cos, sin = self.position_embeddings
            cache[device] = Current(move(self.valid), move(self.lm_index), (move(cos), move(sin)),
                                    move(self.position_ids), move(self.attention_mask))
        return cache[device]


@dataclass
class ForwardState:
    """Everything one prefill decided, kept for its decode steps."""

    input_len: int  # L0: the unpruned sequence length
    lm_len: int  # L1: the sequence length entering the LLM
    lm_valid: torch.Tensor  # [B, L1]
    tracks: list[Track]
    stage_layers: set[int]
    layer_valid: dict[int, torch.Tensor] = field(default_factory=dict)  # layer -> [B, Lc] at prefill
    current: Current | None = None
    previous_attention: torch.Tensor | None = None  # [B, Lc] layer K-1's, for a stage at K that scores by it
    text_counts: list[int] = field(default_factory=list)  # valid tokens per sample (unpruned)
    recorded: bool = False
    generated: int = 0  # tokens decoded since the prefill (the newest columns of every decode mask)
    injecting: bool = False  # whether the runtime adds per-token levels (DeepStack) after the first layers


class PruneSession:
    """Owns the hooks of one `prunekit.apply` and the state of the latest forward."""

    def __init__(self, model: nn.Module, adapter: ModelAdapter, pipeline: Pipeline) -> None:
        self.model, self.adapter, self.pipeline = model, adapter, pipeline
        self.layers = adapter.layers
        self.num_layers = len(self.layers)
        self.pending: CapturedInputs | None = None
        self.state: ForwardState | None = None
        self.last_stats: ForwardStats | None = None
        self.last_kept: list[dict[int, torch.Tensor]] = []
        self.timer = StageTimer()
        self._decode_masks = DecodeMasks()
        # the encoder level (inside the vision tower), only for pipelines that have one
        self.encoder_hooks = EncoderHooks(model, adapter, pipeline, self.num_layers) \
            if pipeline.encoder is not None else None
        self._warned = False
        self._hooks: list[Any] = []

    # -- lifecycle ----------------------------------------------------------------------------
    def install(self) -> None:
        """Register every hook (instance level only)."""
        self._hooks.append(self.model.register_forward_pre_hook(self._capture_ids, with_kwargs=True))
        lm = self.adapter.language_model
        self._hooks.append(lm.register_forward_pre_hook(self._lm_hook, with_kwargs=True))
        self._hooks.append(lm.register_forward_hook(self._lm_done))
        for index, layer in enumerate(self.layers):
            hook = self._make_layer_hook(index)
            self._hooks.append(layer.register_forward_pre_hook(hook, with_kwargs=True))
        for index in range(self.adapter.injection_levels):
            self._hooks.append(self.layers[index].register_forward_hook(self._make_injection_hook(index)))
        if self.encoder_hooks is not None:
            self.encoder_hooks.install()

    def remove(self) -> None:
        """Unregister every hook and forget all state."""
        for handle in self._hooks:
            handle.remove()
        self._hooks.clear()
        if self.encoder_hooks is not None:
            self.encoder_hooks.remove()
        self.state, self.pending = None, None
        self._decode_masks.clear()

    # -- hooks ---------------------------------------------------------------------------------
    def _capture_ids(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        ids = kwargs.get("input_ids", args[0] if args else None)
        if isinstance(ids, torch.Tensor) and ids.ndim == 2 and ids.shape[1] > 1:
            self.pending = CapturedInputs.start(ids, kwargs.get("attention_mask"))

    def _lm_hook(self, module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict] | None:
        embeds = kwargs.get("inputs_embeds")
        if embeds is None:
            return None
        cache = kwargs.get("cache", kwargs.get("past_key_values"))
        is_prefill = embeds.shape[1] > 1 and (cache is None or cache.get_seq_length() == 0)
        if is_prefill:
            with torch.no_grad():
                return self._prefill(args, kwargs, embeds, cache)
        if self.state is not None:
            self.state.generated += embeds.shape[1]
            self._decode_lm(kwargs)
            return args, kwargs
        return None

    def _lm_done(self, module: nn.Module, args: tuple, output: Any) -> None:
        state = self.state
        if state is not None and not state.recorded:
            state.recorded = True
            for track in state.tracks:  # the prefill's queued contract checks: one sync, after the LLM
                if track.plan is not None:
                    track.plan.verify()
            self._record_stats(state)

    def _make_layer_hook(self, index: int):  # noqa: ANN202 - a hook closure
        def hook(module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict] | None:
            state = self.state
            scores_next = state is not None and self.pipeline.scores_previous_layer and \
                index + 1 in state.stage_layers
            if state is None or (state.current is None and index not in state.stage_layers and not scores_next):
                return None
            hidden = args[0] if args else kwargs["hidden_states"]
            if hidden.shape[1] == 1:
                return self._decode_layer(index, args, kwargs)
            with torch.no_grad():
                if index in state.stage_layers:
                    hidden = self._layer_stage(index, hidden, kwargs)
                    args = (hidden, *args[1:]) if args else args
                    if not args:
                        kwargs["hidden_states"] = hidden
                if scores_next:  # FastV: the next layer's stage ranks by this layer's attention
                    state.previous_attention = self._stage_attention(index, hidden, kwargs)
            if state.current is None:
                return None
            current = state.current.on(_execution_device(module, hidden))
            kwargs["position_embeddings"] = current.position_embeddings
            if "position_ids" in kwargs:
                kwargs["position_ids"] = current.position_ids
            kwargs["attention_mask"] = self.adapter.layer_attention_mask(index, current.attention_mask, current.valid)
            return args, kwargs

        return hook

    def _make_injection_hook(self, index: int):  # noqa: ANN202 - a hook closure
        def hook(module: nn.Module, args: tuple, output: Any) -> Any:
            state = self.state
            hidden = output[0] if isinstance(output, tuple) else output
            if state is None or not state.injecting or hidden.shape[1] == 1:
                return None
            hidden = self._inject(index, hidden)
            return (hidden, *output[1:]) if isinstance(output, tuple) else hidden

        return hook

    def _inject(self, level: int, hidden: torch.Tensor) -> torch.Tensor:
        """Add injected ``level`` to the present tokens that receive it (the LM's own add, on kept rows)."""
        hidden = hidden.clone()
        width = hidden.shape[1]
        for b, track in enumerate(self.state.tracks):
            if track.injected is None or track.injected_orig.numel() == 0:
                continue
            orig = track.orig.to(hidden.device)
            rows = width - orig.numel() + torch.searchsorted(orig, track.injected_orig.to(hidden.device))
            add_level(hidden[b], rows, track.injected[level].to(hidden.device))
        return hidden

    # -- prefill, before the LLM -----------------------------------------------------------------
    def _prefill(self, args: tuple, kwargs: dict, embeds: torch.Tensor, cache: Any) -> tuple[tuple, dict] | None:
        self.state = None
        self._decode_masks.clear()
        self.timer.reset()
        captured, self.pending = self.pending, None
        length, batch = embeds.shape[1], embeds.shape[0]
        if captured is None or tuple(captured.ids_host.shape) != tuple(embeds.shape[:2]):
            self._warn_once("prunekit saw no input_ids for this forward, so it cannot locate the video tokens; "
                            "call the model with input_ids (and pixel_values_videos) rather than inputs_embeds.")
            return None
        positions = kwargs.get("position_ids")
        ids_host, mask_host = captured.on_host()
        # layouts are worked out on the host copy: reading the device ids would stop the GPU
        layout_positions = positions.cpu() if positions is not None and self.adapter.layout_needs_positions \
            else None
        layouts = self.adapter.layouts(ids_host, layout_positions)
        reductions = self.encoder_hooks.take() if self.encoder_hooks is not None else None
        if self.encoder_hooks is not None and reductions is None:
            self._warn_if_encoder_skipped(layouts)
        layouts, dropped, n_original = reduce_layouts(  # frames the vision tower dropped
            layouts, reductions, reductions is not None and self.encoder_hooks.access.frame_layout_tokens)
        if all(layout is None for layout in layouts):
            return None
        # index tables live where the embeddings are, so later stages copy nothing host-to-device
        layouts = [None if lay is None else lay.to(embeds.device) for lay in layouts]
        mask_in = kwargs.get("attention_mask")
        if isinstance(mask_in, torch.Tensor) and mask_in.ndim == 2:
            valid0 = mask_in.bool()
            same = mask_host is not None and mask_host.shape == mask_in.shape
            valid_host = (mask_host if same else mask_in.cpu()).bool()
        else:
            valid0 = torch.ones(batch, length, dtype=torch.bool, device=embeds.device)
            valid_host = torch.ones(batch, length, dtype=torch.bool)
        tracks: list[Track] = []
        text_counts = [int(valid_host[b].sum()) for b in range(batch)]  # valid tokens per sample, before pruning
        if any(d is not None for d in dropped):  # the dropped frames' placeholders never enter the LLM
            valid_host = valid_host.clone()
            valid0 = valid0.clone()
            for b, gone in enumerate(dropped):
                if gone is not None:
                    valid_host[b, gone] = False
                    valid0[b, gone.to(valid0.device)] = False
        with self.timer("plan"):
            for b, layout in enumerate(layouts):
                orig = host_to_device(torch.nonzero(valid_host[b]).flatten(), embeds.device)
                plan = None
                if layout is not None:
                    feats = embeds[b, layout.token_index]
                    plan = self.pipeline.start(feats, layout, self.num_layers, n_original=n_original[b])
                tracks.append(Track(plan, orig, orig.clone()))
        if not any(t.plan is not None and t.plan.stages for t in tracks):  # retain = 1.0: touch nothing
            self._record_stats(ForwardState(length, length, valid0, tracks, set(), text_counts=text_counts))
            return None
        embeds = embeds.clone()
        injection = self.adapter.take_layer_injection(kwargs)  # the runtime adds these to the kept tokens now
        if injection is not None:
            for track, (rows, levels) in zip(tracks, injection.per_sample()):
                track.injected_orig, track.injected = rows.to(embeds.device), levels.to(embeds.device)
        if any(_prunes_before_llm(t) for t in tracks):
            attention = self._layer0_attention(embeds, positions, valid0) if self.pipeline.needs_relevance else None
            for b, track in enumerate(tracks):
                if _prunes_before_llm(track):
                    keep = self._run_stage(track, embeds[b], track.orig, track.orig,
                                           None if attention is None else attention[b])
                    track.orig, track.lm = track.orig[keep], track.lm[keep]
                    track.kept[0] = track.orig.clone()
        index, valid = left_pad_index([t.orig for t in tracks])
        kwargs["inputs_embeds"] = gather_tokens(embeds, index, 1)
        if positions is None:
            positions = torch.arange(length, device=embeds.device)[None].expand(batch, -1)
        kwargs["position_ids"] = gather_tokens(positions, index, positions.ndim - 1)
        if isinstance(mask_in, torch.Tensor) and mask_in.ndim == 2:
            kwargs["attention_mask"] = valid.to(mask_in.dtype)
        elif mask_in is None and (len({t.orig.numel() for t in tracks}) > 1 or cache is None):
            kwargs["attention_mask"] = valid.long()  # also avoids the packed-sequence trap for gapped positions
        self.adapter.restart_lm_kwargs(kwargs, index.shape[1], embeds.device)
        lm_len = index.shape[1]
        for track in tracks:
            n = track.orig.numel()
            track.lm = torch.arange(lm_len - n, lm_len, device=embeds.device)
        stage_layers = {s.layer for t in tracks if t.plan for s in t.plan.stages if s.layer > 0}
        self.state = ForwardState(length, lm_len, valid, tracks, stage_layers, text_counts=text_counts,
                                  injecting=injection is not None)
        return args, kwargs

    def _layer0_attention(self, embeds: torch.Tensor, positions: torch.Tensor | None,
                          valid: torch.Tensor) -> torch.Tensor:
        with self.timer("relevance"):
            cos, sin = self.adapter.rotary_tables(embeds, positions)
            return self._attention(0, embeds, cos, sin, valid).to(embeds.device)

    def _run_stage(self, track: Track, hidden: torch.Tensor, present_pos: torch.Tensor, present_orig: torch.Tensor,
                   attention: torch.Tensor | None) -> torch.Tensor:
        """Run the track's next stage; edit ``hidden`` in place for merges; return the kept present rows
        (ascending indices into ``present_orig``; their number is known on the host)."""
        plan = track.plan
        vis_orig = plan.layout.sequence_index(plan.live).to(present_orig.device)
        rows = torch.searchsorted(present_orig, vis_orig)
        positions = present_pos[rows]
        feats = hidden[positions]
        with self.timer("select"):
            result = self.pipeline.step(plan, track.next_stage, feats,
                                        None if attention is None else attention[positions])
        track.next_stage += 1
        if len(result.merge):
            hidden[positions] = result.merge.apply(feats).to(hidden.dtype)
        if track.injected is not None:
            _prune_injected(track, vis_orig, result)
        keep = torch.ones(present_orig.numel(), dtype=torch.bool, device=present_orig.device)
        keep.index_fill_(0, rows, False)  # index_fill_, not keep[rows] = ...: a scalar index_put copies (and syncs)
        keep.index_fill_(0, rows[result.keep.to(rows.device)], True)
        return true_indices(keep, present_orig.numel() - rows.numel() + result.keep.numel())

    def _attention(self, index: int, hidden: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                   valid: torch.Tensor) -> torch.Tensor:
        """The adapter's last-query attention for a stage at ``index``, computed where the scoring layer's
        weights are (device_map-sharded models)."""
        device = _execution_device(self.layers[self.adapter.relevance_layer(index)], hidden)
        return self.adapter.last_query_attention(index, hidden.to(device), cos.to(device), sin.to(device),
                                                 valid.to(device))

    # -- prefill, inside the LLM -----------------------------------------------------------------
    def _layer_stage(self, index: int, hidden: torch.Tensor, kwargs: dict) -> torch.Tensor:
        state = self.state
        valid = state.lm_valid if state.current is None else state.current.valid
        # with device_map sharding, work where this layer computes (its weights' device; accelerate would
        # move the input there next anyway), so the stage's indices live beside the layer they feed
        device = _execution_device(self.layers[index], hidden)
        hidden = hidden.to(device)
        valid = valid.to(device)
        for track in state.tracks:
            track.orig, track.lm = track.orig.to(device), track.lm.to(device)
        attention = None
        if self.pipeline.needs_relevance:
            attention, state.previous_attention = state.previous_attention, None
            if attention is None:  # the stage's own layer (PDrop's convention)
                attention = self._stage_attention(index, hidden, kwargs)
        hidden = hidden.clone()
        rows = []
        width = valid.shape[1]
        for b, track in enumerate(state.tracks):
            present = torch.arange(width - track.orig.numel(), width, device=device)  # rows are left-padded
            due = track.plan is not None and track.next_stage < len(track.plan.stages) and \
                track.plan.stages[track.next_stage].layer == index
            if due:
                keep = self._run_stage(track, hidden[b], present, track.orig,
                                       None if attention is None else attention[b])
                track.orig, track.lm, present = track.orig[keep], track.lm[keep], present[keep]
                track.kept[index] = track.orig.clone()
            rows.append(present)
        gather, new_valid = left_pad_index(rows)
        hidden = gather_tokens(hidden, gather, 1)
        lm_index, _ = left_pad_index([t.lm for t in state.tracks])
        # the LM hands every layer the same LM-level rotary tables, positions and mask: slice those
        full_cos, full_sin = (t.to(device) for t in kwargs["position_embeddings"])
        token_dim = full_cos.ndim - 2
        position_embeddings = (gather_tokens(full_cos, lm_index, token_dim),
                               gather_tokens(full_sin, lm_index, token_dim))
        position_ids = kwargs.get("position_ids")
        if position_ids is not None:
            position_ids = gather_tokens(position_ids.to(device), lm_index, position_ids.ndim - 1)
        mask_in = kwargs.get("attention_mask")
        attends = index in self.adapter.attention_layers
        if not attends:  # a linear-attention layer's 2-D mask says nothing of the causal masks' format
            mask_in = _mask_format_of(self.model)
        mask = None
        if mask_in is not None or len({r.numel() for r in rows}) > 1:  # ragged rows need a padding mask
            mask = prefill_mask(new_valid, mask_in, hidden.dtype)
        state.current = Current(new_valid, lm_index, position_embeddings, position_ids, mask)
        for layer in range(index, self.num_layers):
            state.layer_valid[layer] = new_valid
        return hidden

    def _stage_attention(self, index: int, hidden: torch.Tensor, kwargs: dict) -> torch.Tensor:
        """Last-query attention of layer ``index`` over the tokens present at its input: ``[B, Lc]``."""
        cur = self.state.current
        (cos, sin), valid = (kwargs["position_embeddings"], self.state.lm_valid) if cur is None else \
            (cur.position_embeddings, cur.valid)
        device = _execution_device(self.layers[index], hidden)
        with self.timer("relevance"):
            return self._attention(index, hidden, cos, sin, valid).to(device)

    # -- decode ------------------------------------------------------------------------------------
    def _decode_lm(self, kwargs: dict) -> None:
        mask = kwargs.get("attention_mask")
        if isinstance(mask, torch.Tensor) and mask.ndim == 2:
            state = self.state
            prefix = state.lm_valid.to(device=mask.device, dtype=mask.dtype)
            kwargs["attention_mask"] = torch.cat([prefix, mask[:, state.input_len:]], 1)

    def _decode_layer(self, index: int, args: tuple, kwargs: dict) -> tuple[tuple, dict] | None:
        mask = kwargs.get("attention_mask")
        valid = self.state.layer_valid.get(index)
        if valid is None or not isinstance(mask, torch.Tensor) or mask.ndim != 4:
            return None
        # the LM sizes its mask for one layer's cache (the first full-attention layer's on hybrid models):
        # its newest columns are the decoded tokens whatever that length was
        kwargs["attention_mask"] = self._decode_masks.get(mask, valid, self.state.generated)
        return args, kwargs

    # -- bookkeeping -------------------------------------------------------------------------------
    def _record_stats(self, state: ForwardState) -> None:
        shape = self.adapter.flops_shape()
        samples = []
        for track, total in zip(state.tracks, state.text_counts):
            plan = track.plan
            if plan is None:
                samples.append(SampleStats.unpruned(total, self.num_layers))
                continue
            samples.append(SampleStats.from_plan(
                plan.stages, plan.kept_per_stage, plan.n_visual, total - plan.n_visual,
                len(plan.segments), self.num_layers, **shape,
                encoder_frames=_encoder_frames(plan) if self.encoder_hooks is not None else None))
        scoring = {} if not self.pipeline.needs_relevance else {
            layer: self.adapter.relevance_layer(layer) for layer in sorted(
                {s.layer for t in state.tracks if t.plan for s in t.plan.stages})}
        self.last_stats = ForwardStats(samples, self.timer.snapshot(), scoring)
        self.last_kept = [dict(t.kept) for t in state.tracks]

    def _warn_if_encoder_skipped(self, layouts: list) -> None:
        """Warn when the encoder stage could have dropped frames but the tower did not run under the hooks
        (e.g. ``mm_encoder_outputs`` computed before `apply`): only the LLM-side stages prune then."""
        per_frame = self.encoder_hooks.access.tokens_per_frame
        if any(lay is not None and self.pipeline.encoder_min_frames(lay.num_visual // per_frame, per_frame,
                                                                    self.num_layers) < lay.num_visual // per_frame
               for lay in layouts):
            self._warn_once("the video features of this forward were not computed under prunekit.apply (were "
                            "mm_encoder_outputs passed in?), so the pipeline's encoder stage did not run and only its "
                            "LLM-side stages pruned; pass pixel_values_videos to prune inside the vision tower.")

    def _warn_once(self, message: str) -> None:
        if not self._warned:
            warnings.warn(message, RuntimeWarning, stacklevel=4)
            self._warned = True


class DecodeMasks:
    """The decode step's per-layer masks, built once per distinct kept set (stage) and step, not per layer.

    Every layer of one decode step receives the same 4-D mask object from the language model; the
    layers after one stage share one validity row. So a mask is keyed by that pair and the cache is
    dropped as soon as a new step's mask arrives (it is compared by identity and held, so a freed
    tensor's id cannot be mistaken for it).
    """

    def __init__(self) -> None:
        self.step_mask: torch.Tensor | None = None
        self.built: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}  # id(valid) -> (valid, mask)
        self.builds = 0  # masks built so far (tests count them)

    def get(self, mask: torch.Tensor, valid: torch.Tensor, generated: int) -> torch.Tensor:
        """``valid`` (the layer's kept prefix) followed by the newest ``generated`` columns of ``mask``
        (the decoded tokens)."""
        if mask is not self.step_mask:
            self.step_mask, self.built = mask, {}
        hit = self.built.get(id(valid))
        if hit is not None and hit[0] is valid:
            return hit[1]
        allowed = valid.to(mask.device)[:, None, None, :].expand(-1, 1, mask.shape[2], -1)
        prefix = to_mask_format(allowed, mask, mask.dtype)
        out = torch.cat([prefix, mask[..., mask.shape[-1] - generated:]], -1)
        self.built[id(valid)] = (valid, out)
        self.builds += 1
        return out

    def clear(self) -> None:
        """Forget the step (releases its tensors)."""
        self.step_mask, self.built = None, {}


def _prune_injected(track: Track, vis_orig: torch.Tensor, result: Any) -> None:
    """Give the track's injected levels the stage's merges and keep (``vis_orig``: the live visual tokens)."""
    inj_orig = track.injected_orig.to(vis_orig.device)
    rows = torch.searchsorted(inj_orig, vis_orig)  # every visual token receives the levels
    levels = fold_levels(track.injected.to(vis_orig.device), rows, result.merge)
    keep = torch.ones(inj_orig.numel(), dtype=torch.bool, device=inj_orig.device)
    keep.index_fill_(0, rows, False)
    keep.index_fill_(0, rows[result.keep.to(rows.device)], True)
    kept = true_indices(keep, inj_orig.numel() - rows.numel() + result.keep.numel())
    track.injected_orig, track.injected = inj_orig[kept], levels[:, kept]


def _mask_format_of(model: nn.Module) -> torch.Tensor | None:
    """A stand-in for the causal mask the LM builds: an additive float mask for eager attention (which needs
    one), None (boolean, or SDPA's implicit causal mask) otherwise."""
    eager = getattr(model.config, "_attn_implementation", None) == "eager"
    return torch.zeros(0, dtype=model.dtype) if eager else None


def _encoder_frames(plan: SamplePlan) -> tuple[int, int]:
    """``(frames that reached the LLM, frames of the video)`` of a sample planned after an encoder stage."""
    return plan.layout.num_frames, plan.n_visual // plan.layout.tokens_per_frame


def _prunes_before_llm(track: Track) -> bool:
    """Whether this sample's first stage acts on the LLM input (layer 0)."""
    return track.plan is not None and bool(track.plan.stages) and track.plan.stages[0].layer == 0


def _execution_device(layer: nn.Module, hidden: torch.Tensor) -> torch.device:
    """Where ``layer`` computes: its weights' device, or the input's when the weights are offloaded (meta)."""
    param = next(layer.parameters(), None)
    return hidden.device if param is None or param.device.type == "meta" else param.device


