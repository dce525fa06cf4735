"""vLLM model subclasses whose video post-processing keeps the tokens a prunekit strategy chooses.

vLLM's prompt processor has already reserved ``count`` video tokens (from ``video_pruning_rate``)
before the vision tower runs; each subclass asks `prunekit.pre_llm.keep_before_llm` for exactly
that many, so the prompt and the embeddings always agree. Positions of the kept tokens are their
original M-RoPE positions (vLLM's ``recompute_mrope_positions`` reads them from the embeddings).
Without a strategy setting, every method defers to vLLM's own class unchanged.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

import torch
from vllm.model_executor.models import qwen2_5_vl, qwen3_vl
from vllm.multimodal.video_prune import evs, vidcom2

from prunekit.integrations.vllm.settings import check_rate, load_strategy, strategy_setting
from prunekit.pipeline import Pipeline
from prunekit.pre_llm import PreLLMKeep, keep_before_llm

logger = logging.getLogger("prunekit.vllm")

KEEP_LOG_ENV = "PRUNEKIT_VLLM_KEEP_LOG"  # a JSON-lines file that receives every video's kept ids (auditing)


class _PrunekitVideo:
    """The strategy set-up and the exact-count keep shared by the subclasses."""

    prunekit_pipeline: Pipeline | None = None

    def _prunekit_setup(self, vllm_config: Any) -> None:
        """Load and check the strategy at model construction: bad settings fail at start-up."""
        setting = strategy_setting(vllm_config.model_config.hf_config)
        if setting is None:
            return
        mm_config = vllm_config.model_config.multimodal_config
        rate = None if mm_config is None else mm_config.video_pruning_rate
        pipeline = load_strategy(setting)
        check_rate(pipeline, rate)
        if not rate:
            logger.warning("prunekit strategy %r is set but video_pruning_rate is 0: videos are not pruned. "
                           "Pass --video-pruning-rate to prune.", pipeline.config.name)
        else:
            logger.info("prunekit strategy %r prunes videos at video_pruning_rate=%g", pipeline.config.name, rate)
        self.prunekit_pipeline = pipeline

    def _prunekit_count(self, num_frames: int, tokens_per_frame: int) -> int:
        """The number of tokens vLLM's processor reserved for this video."""
        return evs.compute_retained_tokens_count(tokens_per_frame, num_frames, self.video_pruning_rate)

    def _prunekit_keep(self, features: torch.Tensor, thw: list[int], merge_size: int) -> PreLLMKeep:
        """Kept tokens of one video: ``features [N, D]`` are the merged embeddings (main level only)."""
        t, h, w = (int(v) for v in thw)
        grid = (h // merge_size, w // merge_size)
        count = self._prunekit_count(t, grid[0] * grid[1])
        with torch.no_grad():
            kept = keep_before_llm(self.prunekit_pipeline, features, grid, count)
        _log_keep(type(self).__name__, self.prunekit_pipeline.config.name, thw, kept)
        return kept


class PrunekitQwen2_5_VL(_PrunekitVideo, qwen2_5_vl.Qwen2_5_VLForConditionalGeneration):
    """vLLM's Qwen2.5-VL with prunekit choosing which video tokens survive."""

    def __init__(self, *, vllm_config: Any, prefix: str = "") -> None:
        super().__init__(vllm_config=vllm_config, prefix=prefix)
        self._prunekit_setup(vllm_config)

    def _postprocess_video_embeds_evs(self, video_embeds_split: tuple[torch.Tensor, ...],
                                      video_input: Any) -> tuple[torch.Tensor, ...]:
        """vLLM's EVS post-processing with prunekit's keep in place of the EVS mask."""
        if self.prunekit_pipeline is None:
            return super()._postprocess_video_embeds_evs(video_embeds_split, video_input)
        grid_thw = video_input["video_grid_thw"].tolist()
        seconds = video_input.get("second_per_grid_ts")
        if seconds is None:
            raise ValueError("second_per_grid_ts is required to prune videos (vLLM's EVS needs it too).")
        merge_size = self.visual.spatial_merge_size
        tokens_per_second = self.config.vision_config.tokens_per_second
        out = []
        for emb, thw, second in zip(video_embeds_split, grid_thw, seconds.long()):
            kept = self._prunekit_keep(emb, thw, merge_size)
            positions = qwen2_5_vl.compute_mrope_for_media(
                thw, merge_size, tokens_per_second=tokens_per_second, video_second_per_grid=second.item())
            positions = positions.to(emb.device)[kept.keep.to(emb.device)]  # [k, 4] original positions
            out.append(torch.cat([kept.apply(emb), positions.to(emb.dtype)], dim=1))
        return tuple(out)


class PrunekitQwen3VL(_PrunekitVideo, qwen3_vl.Qwen3VLForConditionalGeneration):
    """vLLM's Qwen3-VL with prunekit choosing which video tokens survive (DeepStack levels in step)."""

    def __init__(self, *, vllm_config: Any, prefix: str = "model") -> None:
        super().__init__(vllm_config=vllm_config, prefix=prefix)
        self._prunekit_setup(vllm_config)

    def _prunekit_count(self, num_frames: int, tokens_per_frame: int) -> int:
        count = vidcom2.compute_retained_tokens_count if self.video_pruning_method == "vidcom2" \
            else evs.compute_retained_tokens_count
        return count(tokens_per_frame=tokens_per_frame, num_frames=num_frames, q=self.video_pruning_rate)

    def _postprocess_video_embeds_evs(self, video_embeds_split: tuple[torch.Tensor, ...],
                                      video_input: Any) -> tuple[torch.Tensor, ...]:
        """vLLM's pruning post-processing with prunekit's keep in place of the EVS/VidCom2 mask.

        Each row holds the main merger output (``visual_dim`` wide) followed by the DeepStack
        levels; prunekit scores the main output and one keep (and merge) acts on the whole row.
        """
        if self.prunekit_pipeline is None or not self.is_multimodal_pruning_enabled:
            return super()._postprocess_video_embeds_evs(video_embeds_split, video_input)
        merge_size = self.visual.spatial_merge_size
        out = []
        for index, (emb, thw) in enumerate(zip(video_embeds_split, video_input["video_grid_thw"].tolist())):
            t, h, w = thw
            kept = self._prunekit_keep(emb[:, : self.visual_dim], thw, merge_size)
            mask = torch.zeros(emb.shape[0], dtype=torch.bool, device=emb.device)
            mask[kept.keep.to(emb.device)] = True
            per_frame = mask.view(t, h // merge_size, w // merge_size).sum(dim=(1, 2)).tolist()
            out.append(self._create_final_video_embeddings(
                video_embeddings=kept.apply(emb), num_tokens_per_frame=per_frame,
                timestamps=video_input.timestamps[index], video_grid_thw=thw, retention_mask=mask))
        return tuple(out)


def _log_keep(model: str, strategy: str, thw: list[int], kept: PreLLMKeep) -> None:
    path = os.environ.get(KEEP_LOG_ENV)
    if not path:
        return
    record = {"model": model, "strategy": strategy, "grid_thw": [int(v) for v in thw],
              "keep": kept.keep.tolist(), "merged": len(kept.merge)}
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")
