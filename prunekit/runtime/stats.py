"""What `PruneHandle.stats()` reports about the latest forward."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import asdict, dataclass, field

from prunekit.budget import realized_retention, visual_tokens_per_layer
from prunekit.flops import flops_ratio
from prunekit.types import Stage


@dataclass(frozen=True)
class SampleStats:
    """One sample: visual/text token counts, kept tokens per stage, retention and FLOPs ratio."""

    n_visual: int
    """Visual tokens N of the sample (layout tokens excluded)."""
    n_text: int
    """All other tokens of the sample (text, special and layout tokens)."""
    segments: int
    """Temporal segments found."""
    stages: list[tuple[int, int]]
    """``(layer, visual tokens kept from that layer on)`` per stage that ran."""
    input_retention: float
    """Fraction of visual tokens entering the LLM."""
    layer_average_retention: float
    """Visual tokens summed over layers / (N * L)."""
    flops_ratio: float
    """Prefill FLOPs against the unpruned model (FastV's formula, text counted)."""
    encoder_frames: tuple[int, int] | None = None
    """``(frames kept, frames)`` by an encoder stage inside the vision tower (None: no encoder stage ran)."""

    @classmethod
    def unpruned(cls, n_tokens: int, num_layers: int) -> SampleStats:
        """A sample without video (or with retain = 1.0)."""
        return cls(0, n_tokens, 0, [], 1.0, 1.0, 1.0)

    @classmethod
    def from_plan(cls, stages: list[Stage], kept: list[int], n_visual: int, n_text: int, segments: int,
                  num_layers: int, hidden_size: int, intermediate_size: int, linear_layers: Collection[int] = (),
                  state_size: int = 0, encoder_frames: tuple[int, int] | None = None) -> SampleStats:
        """Stats of the stages that ran (``kept`` = realized counts, one per stage run); ``linear_layers`` and
        ``state_size`` give linear-attention layers their own FLOPs term (`prunekit.flops.flops`)."""
        realized = [Stage(s.layer, k) for s, k in zip(stages, kept)]
        retention = realized_retention(realized, n_visual, num_layers)
        per_layer = visual_tokens_per_layer(realized, n_visual, num_layers)
        ratio = flops_ratio(per_layer, n_visual, n_text, hidden_size, intermediate_size, linear_layers, state_size)
        return cls(n_visual, n_text, segments, [(s.layer, s.keep) for s in realized], retention["input"],
                   retention["layer_average"], ratio, encoder_frames)


@dataclass(frozen=True)
class ForwardStats:
    """Per-sample stats of the latest prefill, with batch means and prunekit's own time per part."""

    samples: list[SampleStats]
    timings_ms: dict[str, float] = field(default_factory=dict)
    scoring_layers: dict[int, int] = field(default_factory=dict)
    """Stage layer -> the layer whose query/key projections scored it, for stages that used relevance. They
    differ on hybrid models (Qwen3.5), where a stage at a linear-attention layer borrows a full-attention one."""

    def _mean(self, name: str, video_only: bool = False) -> float:
        samples = [s for s in self.samples if s.n_visual > 0] if video_only else self.samples
        values = [getattr(s, name) for s in samples]
        return sum(values) / len(values) if values else 1.0

    @property
    def input_retention(self) -> float:
        """Mean fraction of visual tokens that entered the LLM, over the samples with video (1.0 if none)."""
        return self._mean("input_retention", video_only=True)

    @property
    def layer_average_retention(self) -> float:
        """Mean layer-averaged visual retention, over the samples with video (1.0 if none)."""
        return self._mean("layer_average_retention", video_only=True)

    @property
    def flops_ratio(self) -> float:
        """Mean prefill FLOPs ratio (FastV's formula, text counted) against the unpruned model."""
        return self._mean("flops_ratio")

    def to_dict(self) -> dict:
        """Plain mapping (for JSON records)."""
        return {
            "input_retention": self.input_retention,
            "layer_average_retention": self.layer_average_retention,
            "flops_ratio": self.flops_ratio,
            "samples": [asdict(s) for s in self.samples],
            "timings_ms": dict(self.timings_ms),
            "scoring_layers": dict(self.scoring_layers),
        }

    def __str__(self) -> str:
        stages = "; ".join(
            f"sample {i}: " + ", ".join(f"L{layer}:{keep}" for layer, keep in s.stages) for i, s in
            enumerate(self.samples))
        borrowed = ", ".join(f"L{stage} scored by L{source}" for stage, source in self.scoring_layers.items()
                             if stage != source)
        return (f"input retention {self.input_retention:.1%}, layer-average {self.layer_average_retention:.1%}, "
                f"FLOPs ratio {self.flops_ratio:.3f} [{stages}]" + (f" ({borrowed})" if borrowed else ""))
