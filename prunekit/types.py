"""Plain data types passed between stages: layouts, segments, selections, merge maps, stages.

Stages speak in *visual token ids*: the flat, frame-major index ``f * P + p`` of a video token,
``0 <= id < F * P``. The `VideoLayout` maps ids to sequence positions; only the runtime does that.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from prunekit.errors import InvalidInputError
from prunekit.ops.nosync import host_to_device, index_add


@dataclass(frozen=True)
class VideoLayout:
    """Where one sample's video tokens sit in the LLM input sequence.

    Attributes:
        token_index: ``[F, P]`` sequence index of every visual token, frames in time order and
            tokens of a frame in raster order of its ``grid``.
        grid: ``(h, w)`` of a frame's token grid; ``h * w == P``.
        layout_index: sequence indices of layout tokens (e.g. newlines) that are never scored,
            merged or pruned.
        seq_len: length of the whole input sequence, text included.
    """

    token_index: torch.Tensor
    grid: tuple[int, int]
    seq_len: int
    layout_index: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))

    def __post_init__(self) -> None:
        if self.token_index.ndim != 2 or self.token_index.numel() == 0:
            raise InvalidInputError(
                f"VideoLayout.token_index must be a non-empty [frames, tokens_per_frame] tensor, "
                f"got shape {tuple(self.token_index.shape)}: a video needs at least one frame."
            )
        h, w = self.grid
        if h * w != self.token_index.shape[1]:
            raise InvalidInputError(
                f"grid {self.grid} holds {h * w} tokens but each frame has {self.token_index.shape[1]}."
            )
        if int(self.token_index.max()) >= self.seq_len or int(self.token_index.min()) < 0:
            raise InvalidInputError("VideoLayout.token_index points outside the sequence.")

    @classmethod
    def contiguous(cls, offset: int, num_frames: int, grid: tuple[int, int], seq_len: int,
                   trailing_layout_tokens: int = 0) -> VideoLayout:
        """Layout of ``num_frames`` frames of ``h*w`` tokens stored back to back from ``offset``."""
        per_frame = grid[0] * grid[1]
        index = torch.arange(num_frames * per_frame).view(num_frames, per_frame) + offset
        end = offset + num_frames * per_frame
        layout = torch.arange(end, end + trailing_layout_tokens)
        return cls(token_index=index, grid=grid, seq_len=seq_len, layout_index=layout)

    def to(self, device: torch.device | str) -> VideoLayout:
        """This layout with its token index table on ``device``.

        Moving changes no value, so the copy skips `__post_init__`'s checks, which would read the
        table back from the device (two host syncs per sample).
        """
        if self.token_index.device == torch.device(device):
            return self
        moved = copy.copy(self)
        object.__setattr__(moved, "token_index", host_to_device(self.token_index, device))  # pinned: no sync
        return moved

    @property
    def num_frames(self) -> int:
        """Number of (temporal) frames F."""
        return self.token_index.shape[0]

    @property
    def tokens_per_frame(self) -> int:
        """Visual tokens per frame P."""
        return self.token_index.shape[1]

    @property
    def num_visual(self) -> int:
        """Visual tokens N = F * P (layout tokens excluded)."""
        return self.token_index.numel()

    def keep_frames(self, frames: torch.Tensor) -> VideoLayout:
        """This layout restricted to the frames ``frames`` (sorted frame ids): what an encoder stage left."""
        moved = copy.copy(self)
        object.__setattr__(moved, "token_index", self.token_index[frames.to(self.token_index.device)])
        return moved

    def sequence_index(self, ids: torch.Tensor) -> torch.Tensor:
        """Sequence positions of visual token ids."""
        return self.token_index.reshape(-1).to(ids.device)[ids]

    def frame_of(self, ids: torch.Tensor) -> torch.Tensor:
        """Frame of each visual token id."""
        return torch.div(ids, self.tokens_per_frame, rounding_mode="floor")

    def position_of(self, ids: torch.Tensor) -> torch.Tensor:
        """Grid position (0..P-1) of each visual token id."""
        return ids % self.tokens_per_frame


@dataclass(frozen=True)
class Segments:
    """Contiguous temporal segments: ``starts[i]`` is the first frame of segment i."""

    starts: tuple[int, ...]
    num_frames: int

    def __post_init__(self) -> None:
        s = self.starts
        if not s or s[0] != 0 or any(b <= a for a, b in zip(s, s[1:])) or s[-1] >= self.num_frames:
            raise InvalidInputError(
                f"Segments must start at frame 0 and be strictly increasing below {self.num_frames}; got {s}."
            )

    @classmethod
    def single(cls, num_frames: int) -> Segments:
        """One segment spanning every frame."""
        return cls((0,), num_frames)

    def __len__(self) -> int:
        return len(self.starts)

    @property
    def bounds(self) -> list[tuple[int, int]]:
        """``[(first_frame, end_frame_exclusive), ...]``."""
        ends = list(self.starts[1:]) + [self.num_frames]
        return list(zip(self.starts, ends))

    def segment_of_frame(self) -> torch.Tensor:
        """``[F]`` segment id of every frame."""
        # plain Python, not torch.repeat_interleave: a CPU op that may run on torch's thread pool woke
        # it on a 16-core GPU host and cost the plan 5 ms in a side-by-side run (see the efficiency docs)
        return torch.tensor([i for i, (start, end) in enumerate(self.bounds) for _ in range(end - start)],
                            dtype=torch.long)


@dataclass(frozen=True)
class MergeMap:
    """Tokens folded into others: each ``target`` becomes the mean of itself and its ``source`` tokens.

    Both are indices into the same index space as the accompanying selection's input (visual ids
    at the first stage). Sources are never kept; targets always are.
    """

    source: torch.Tensor
    target: torch.Tensor

    @classmethod
    def empty(cls) -> MergeMap:
        """A merge map that merges nothing."""
        z = torch.zeros(0, dtype=torch.long)
        return cls(z, z.clone())

    def __len__(self) -> int:
        return int(self.source.numel())

    def apply(self, features: torch.Tensor) -> torch.Tensor:
        """Return ``features [n, D]`` with every target replaced by the mean of its group."""
        if len(self) == 0:
            return features
        out = features.clone()
        src, dst = self.source.to(features.device), self.target.to(features.device)
        index_add(out, dst, features[src])  # deterministic on CUDA too
        counts = torch.ones(features.shape[0], device=features.device, dtype=features.dtype)
        counts.index_add_(0, dst, torch.ones_like(dst, dtype=features.dtype))
        return out / counts[:, None]


@dataclass(frozen=True)
class FrameReduction:
    """What an encoder stage decided for one video: the frames that continue and how the rest fold.

    ``kept`` are sorted frame ids; ``merge`` maps dropped source frames to kept target frames (each
    target becomes the mean of its group). Frames neither kept nor merged are simply dropped.
    """

    num_frames: int
    kept: torch.Tensor  # [K] sorted frame ids
    merge: MergeMap

    def row_of_frame(self) -> torch.Tensor:
        """``[F]`` row in the kept set standing for every original frame (its own, or its merge target's).

        A frame dropped without a target points at the nearest kept frame before it (or the first):
        the row only fills the tower's output back to F frames, and those tokens never reach the LLM.
        """
        kept = self.kept.cpu()
        rows = torch.searchsorted(kept, torch.arange(self.num_frames), right=True).sub_(1).clamp_(min=0)
        targets = torch.searchsorted(kept, self.merge.target.cpu())
        rows[self.merge.source.cpu()] = targets
        return rows

    def fold(self, hidden: torch.Tensor) -> torch.Tensor:
        """``hidden [F, ...]`` folded by the merge map and restricted to the kept frames: ``[K, ...]``."""
        flat = hidden.reshape(self.num_frames, -1)
        return self.merge.apply(flat)[self.kept.to(hidden.device)].view(-1, *hidden.shape[1:])


@dataclass(frozen=True)
class Stage:
    """One pruning step: from the input of decoder ``layer`` on, ``keep`` visual tokens remain.

    ``layer == 0`` acts on the LLM input embeddings (before the LLM).
    """

    layer: int
    keep: int


@dataclass
class DeviceChecks:
    """Checks on device values that a sample's stages queue; `SamplePlan.verify` reads them all with one
    host sync after the forward, so no stage waits for the GPU.

    Attributes:
        conditions: ``(bool tensor, message)``: the sample fails with ``message()`` when the tensor is False.
        error_counters: ``(integer tensor, report)``: a kernel's error counters; ``report`` gets their sum.
    """

    conditions: list[tuple[torch.Tensor, Callable[[], str]]] = field(default_factory=list)
    error_counters: list[tuple[torch.Tensor, Callable[[int], None]]] = field(default_factory=list)

    def require(self, condition: torch.Tensor, message: Callable[[], str]) -> None:
        """Queue a condition that must hold; ``message`` builds the error text only on failure."""
        self.conditions.append((condition, message))

    def __bool__(self) -> bool:
        return bool(self.conditions or self.error_counters)


@dataclass
class SelectionContext:
    """What a `FrameSelector` may use besides the token features of one segment.

    Attributes:
        frame: ``[n]`` frame index of each token.
        position: ``[n]`` grid position (0..P-1) of each token.
        grid: ``(h, w)`` of a frame.
        relevance: ``[n]`` last-query attention, min-max normalised over all live visual tokens,
            or None when the selector did not ask for it.
        generator: seeded generator for stochastic selectors.
        layer: decoder layer whose input is being pruned (0 = before the LLM).
        llm_stage: index of this stage among the stages inside the LLM (-1 before the LLM).
        checks: the sample's `DeviceChecks`, where a stage queues checks on device values (e.g. a
            kernel's error counters) instead of reading them; None outside a pipeline.
    """

    frame: torch.Tensor
    position: torch.Tensor
    grid: tuple[int, int]
    relevance: torch.Tensor | None = None
    generator: torch.Generator | None = None
    layer: int = 0
    llm_stage: int = -1
    checks: DeviceChecks | None = None
