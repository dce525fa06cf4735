"""Qwen2-VL and Qwen2.5-VL: M-RoPE, temporal patch 2 (one token frame covers two video frames)."""

from __future__ import annotations

import torch

from prunekit.adapters.llava_onevision import stack_layouts, video_runs
from prunekit.errors import InvalidInputError
from prunekit.model_adapter import ModelAdapter
from prunekit.types import VideoLayout


def merge_mrope(cos: torch.Tensor, section: list[int]) -> torch.Tensor:
    """Recombine Qwen-VL's ``[3, B, L, hd]`` rotary tables (transformers <= 5.10) into ``[B, L, hd]``."""
    chunks = cos.split(list(section) * 2, dim=-1)
    return torch.cat([chunk[i % 3] for i, chunk in enumerate(chunks)], dim=-1)


class Qwen2VLAdapter(ModelAdapter):
    """``Qwen2VLForConditionalGeneration``: video tokens in ``(t, h, w)`` raster order of the merged
    grid. The grid of each video is read from its M-RoPE positions (rows h and w)."""

    name = "qwen2_vl"
    model_classes = ("Qwen2VLForConditionalGeneration",)
    layout_needs_positions = True

    def rope_position_ids(self, position_ids: torch.Tensor | None, seq_len: int,
                          batch: int, device: torch.device) -> torch.Tensor:
        if position_ids is None:
            return torch.arange(seq_len, device=device).view(1, 1, -1).expand(3, batch, -1)
        if position_ids.ndim == 3 and position_ids.shape[0] == 4:
            return position_ids[1:]
        if position_ids.ndim == 2:
            return position_ids[None].expand(3, -1, -1)
        return position_ids

    def last_query_attention(self, index: int, hidden: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                             key_valid: torch.Tensor | None = None) -> torch.Tensor:
        if cos.ndim == 4:  # transformers <= 5.10 hands the layers the three M-RoPE tables apart: [3, B, L, hd]
            section = self._mrope_section()
            cos, sin = merge_mrope(cos, section), merge_mrope(sin, section)
        return super().last_query_attention(index, hidden, cos, sin, key_valid)

    def _mrope_section(self) -> list[int]:
        config = self.text_config
        params = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {}
        return list(params["mrope_section"])

    def layouts(self, input_ids: torch.Tensor, position_ids: torch.Tensor | None) -> list[VideoLayout | None]:
        if position_ids is None or position_ids.ndim != 3:
            raise InvalidInputError("Qwen-VL pruning needs the model's 3-D M-RoPE position ids; call the model "
                                    "through its own forward or generate.")
        rope = position_ids[-3:]  # [3, B, L]: t, h, w
        video_id = self.model.config.video_token_id
        out: list[VideoLayout | None] = []
        for b, row in enumerate(input_ids):
            blocks, grid = [], None
            for start, end in video_runs(row == video_id):
                h_pos, w_pos = rope[1, b, start:end], rope[2, b, start:end]
                this = (int(h_pos.max() - h_pos.min()) + 1, int(w_pos.max() - w_pos.min()) + 1)
                per_frame = this[0] * this[1]
                if (end - start) % per_frame:
                    raise InvalidInputError(f"video block of {end - start} tokens is not a whole number of "
                                            f"{this[0]}x{this[1]} frames.")
                if grid is not None and grid != this:
                    raise InvalidInputError(
                        f"videos of one sample have different token grids ({grid} and {this}); prune them in "
                        "separate samples.")
                grid = this
                blocks.append(torch.arange(start, end).view(-1, per_frame))
            out.append(stack_layouts(blocks, grid, row.numel(), []) if blocks else None)
        return out


class Qwen25VLAdapter(Qwen2VLAdapter):
    """``Qwen2_5_VLForConditionalGeneration``: same token layout as Qwen2-VL (window attention only
    changes the vision tower; its output is back in raster order)."""

    name = "qwen2_5_vl"
    model_classes = ("Qwen2_5_VLForConditionalGeneration",)
