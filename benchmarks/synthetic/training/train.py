"""Train the bundled tiny video LLM on the synthetic suite and write its asset directory.

    python -m benchmarks.synthetic.training.train --out DIR [--deadline SECONDS] [--steps N] [--device cuda]

The model is a ``LlavaOnevisionForConditionalGeneration`` built from a config (tiny SigLIP vision tower,
tiny Qwen2 language model) with a word-level tokenizer and a ``LlavaOnevisionProcessor``; nothing is
downloaded. Clips are generated in memory by a pool of worker processes into a ring buffer of items
held on the accelerator (fresh items keep replacing the oldest while training samples random batches
from it), normalised exactly as the processor does; prompts are the processor's token ids.

The model answers every question with one word: the chosen option's word for multiple choice (scored
by comparing the logits of the option words), a free word for open-ended questions.

Besides the answer loss, an auxiliary linear head (not saved) classifies each visual token's object
colour, shape and size class and its background colour from the generator's labels; it makes the tiny
vision tower learn useful features within minutes. Some training samples also have a random part of
their object-free visual tokens masked out (keys removed, positions kept), as after pruning. With
``--focus-weight``, one attention head of the language model is taught where to look: for the questions
about one object, a loss on the attention mass that the position predicting the answer puts on that
object's visual tokens (`focus_loss`).
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import shutil
import tarfile
import time
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # no spinning thread pools in the workers

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from ..generator import (  # noqa: E402
    ALL_TYPES,
    BACKGROUND_COLORS,
    GRID,
    NUM_FRAMES,
    OBJECT_COLORS,
    OPEN_TYPES,
    QUESTION_TYPES,
    SHAPES,
    SIZE,
    TARGET_TYPES,
    TRAINING_TYPES,
    make_item,
    target_tokens,
    vocabulary,
)

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>", "<video>"]
TOKENS_PER_FRAME = GRID * GRID
N_VIDEO_TOKENS = NUM_FRAMES * TOKENS_PER_FRAME + 1  # + the single LLaVA-OV newline
MAX_LEN = 320  # longest prompt + answer of the suite, padded
AUX_CLASSES = (1 + len(OBJECT_COLORS), 1 + len(SHAPES), 3, len(BACKGROUND_COLORS))


@dataclass
class TrainConfig:
    seed: int = 0
    steps: int = 40000  # upper bound; --deadline shrinks it to fit the time
    deadline: float = 0.0  # > 0: the whole run (data, training, evaluation, saving) ends within this many s
    batch_size: int = 64
    lr: float = 1e-3
    warmup: int = 300
    weight_decay: float = 0.05
    aux_weight: float = 0.5
    lm_aux_weight: float = 0.0  # > 0: the same per-token labels, read from the LM's last hidden states too
    drop_aug_prob: float = 0.2
    drop_aug_max: float = 0.75
    eval_every_s: float = 90.0
    eval_items: int = 900  # per evaluation split (100 per question type)
    pool_capacity: int = 120000  # items held on the device
    pool_min: int = 12288  # items generated before the first step
    chunk: int = 256  # items per worker task
    refresh_every: int = 4  # once the pool is full, replace one chunk every this many steps
    curriculum_share: float = 0.0  # share of training items that are training-only questions
    curriculum_types: str = "object_shape"  # which training-only types (comma-separated), in equal parts
    init: str = ""  # start from this saved model's weights (fine-tuning) instead of a random init
    focus_weight: float = 0.0  # > 0: supervise where the answer position looks (see focus_loss)
    focus_types: str = "scene_object,scene_object_color"  # question types whose items get that loss
    focus_layer: int = -1  # the LM layer whose head is supervised
    focus_head: int = 0  # that layer's head that must do the lookup
    teacher: str = ""  # a saved tiny model whose answer logits the student also learns (distillation)
    distill_weight: float = 0.0  # > 0: weight of the KL to the teacher's answer distribution
    distill_temperature: float = 2.0  # softens both distributions in that KL
    init_vision: str = ""  # copy the vision tower (not the projector) from this saved model
    freeze_vision: int = 0  # 1: the vision tower is not trained (with --init-vision: kept as copied)
    save_dtype: str = "float32"  # dtype of the saved weights (float16 halves the file; loads exactly in fp32)
    # architecture
    vision_hidden: int = 128
    vision_layers: int = 4
    vision_heads: int = 4
    vision_mlp: int = 512
    text_hidden: int = 256
    text_layers: int = 4
    text_heads: int = 8
    text_kv_heads: int = 4
    text_mlp: int = 512
    patch: int = 8


# ------------------------------------------------------------------------------------ construction


def build_tokenizer():
    import tokenizers
    from transformers import PreTrainedTokenizerFast

    words = ["[UNK]", *vocabulary()]
    tk = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab={w: i for i, w in enumerate(words)},
                                                          unk_token="[UNK]"))
    tk.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    tk.decoder = tokenizers.decoders.WordPiece(prefix="##", cleanup=True)  # joins words with spaces
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="[UNK]", pad_token="<|endoftext|>",
                                  eos_token="<|im_end|>", model_max_length=1024)
    tok.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<image>", "<video>"]})
    tok.padding_side = "left"
    return tok


def build_processor(tok):
    from transformers import LlavaOnevisionImageProcessor, LlavaOnevisionProcessor, LlavaOnevisionVideoProcessor

    norm = dict(image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5])
    return LlavaOnevisionProcessor(
        image_processor=LlavaOnevisionImageProcessor(size={"height": SIZE, "width": SIZE},
                                                     image_grid_pinpoints=[[SIZE, SIZE]], **norm),
        video_processor=LlavaOnevisionVideoProcessor(size={"height": SIZE, "width": SIZE}, **norm),
        tokenizer=tok, num_image_tokens=(SIZE // 8) ** 2, vision_feature_select_strategy="full",
    )


def build_model(tok, cfg: TrainConfig):
    from transformers import GenerationConfig, LlavaOnevisionConfig, LlavaOnevisionForConditionalGeneration

    ids = {t: tok.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    text = dict(model_type="qwen2", vocab_size=len(tok), hidden_size=cfg.text_hidden,
                intermediate_size=cfg.text_mlp, num_hidden_layers=cfg.text_layers,
                num_attention_heads=cfg.text_heads, num_key_value_heads=cfg.text_kv_heads,
                max_position_embeddings=1024, rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
                bos_token_id=None, eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"],
                tie_word_embeddings=False)
    vision = dict(model_type="siglip_vision_model", hidden_size=cfg.vision_hidden,
                  intermediate_size=cfg.vision_mlp, num_hidden_layers=cfg.vision_layers,
                  num_attention_heads=cfg.vision_heads, image_size=SIZE, patch_size=cfg.patch)
    config = LlavaOnevisionConfig(vision_config=vision, text_config=text, image_token_id=ids["<image>"],
                                  video_token_id=ids["<video>"], vision_feature_layer=-1,
                                  vision_feature_select_strategy="full", image_grid_pinpoints=[[SIZE, SIZE]],
                                  tie_word_embeddings=False)
    torch.manual_seed(cfg.seed)
    model = LlavaOnevisionForConditionalGeneration(config)
    model.generation_config = GenerationConfig(eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"],
                                               bos_token_id=None, do_sample=False, max_new_tokens=4)
    return model


def use_fast_pooling(model) -> None:
    """Swap LLaVA-OneVision's bilinear 2x downsampling of the patch grid for the identical 2x2 average.

    For an even grid halved exactly, bilinear interpolation (``align_corners=False``) samples midway
    between pixel pairs, i.e. averages each 2x2 block, so the result is the same up to rounding; but
    torch's CUDA bilinear kernel parallelises over output pixels only and took 100 ms of a 145 ms
    training step at this shape. Only the training process is patched; the saved model is unchanged.
    """
    import types

    inner = model.model
    grid = inner.config.vision_config.image_size // inner.config.vision_config.patch_size
    if grid % 2:
        return  # an odd grid is not halved exactly: keep the original

    def apply_pooling(self, image_features: torch.Tensor) -> torch.Tensor:
        frames, _, dim = image_features.shape
        x = image_features.view(frames, grid, grid, dim).permute(0, 3, 1, 2)
        return F.avg_pool2d(x, 2).permute(0, 2, 3, 1).reshape(frames, -1, dim)

    probe = torch.randn(3, grid * grid, 8)
    expected = inner.apply_pooling(probe)
    inner.apply_pooling = types.MethodType(apply_pooling, inner)
    if not torch.allclose(inner.apply_pooling(probe), expected, atol=1e-5):
        raise RuntimeError("2x2 average pooling does not match the model's bilinear pooling")


# ------------------------------------------------------------------------------------------- data


def encode(tok, prompt: str) -> list[int]:
    """Token ids of ``prompt`` as the processor makes them: ``<video>`` expanded to the video's tokens."""
    video_id = tok.convert_tokens_to_ids("<video>")
    out = []
    for t in tok(prompt, add_special_tokens=False)["input_ids"]:
        out.extend([video_id] * N_VIDEO_TOKENS if t == video_id else [t])
    return out


def word_id(tok, word: str) -> int:
    ids = tok(word, add_special_tokens=False)["input_ids"]
    if len(ids) != 1 or ids[0] == tok.unk_token_id:
        raise ValueError(f"answer {word!r} is not one known token: {ids}")
    return ids[0]


_TOK = None
# one encoded item: field -> (shape, dtype); the workers' arrays, the staging slots and the device pool
_FIELDS = {"frames": ((NUM_FRAMES, SIZE, SIZE, 3), torch.uint8), "ids": ((MAX_LEN,), torch.int32),
           "n_prompt": ((), torch.int32), "answer": ((), torch.int32), "options": ((4,), torch.int32),
           "aux": ((4, NUM_FRAMES, GRID, GRID), torch.int8), "type": ((), torch.int8),
           "focus": ((NUM_FRAMES, GRID, GRID), torch.bool)}


def curriculum_type(index: int, share: float, types: tuple[str, ...] = TRAINING_TYPES[:1]) -> str | None:
    """The training-only question type replacing training item ``index`` (None: keep the suite's).

    A fixed hash of the index picks about ``share`` of the items and, among them, one of ``types`` in
    equal parts, so regenerating is deterministic.
    """
    if share <= 0 or (index * 2654435761 % 2**32) / 2**32 >= share:
        return None
    return types[(index * 40503 % 2**16) % len(types)]


def _named_types(option: str, names: str, allowed: tuple[str, ...], problem: str) -> tuple[str, ...]:
    """The comma-separated question types ``names`` of ``option``, each one of ``allowed`` (else ``problem``)."""
    types = tuple(t.strip() for t in names.split(",") if t.strip())
    unknown = [t for t in types if t not in allowed]
    if not types or unknown:
        raise ValueError(f"{option} {unknown or types} {problem}; use some of {allowed}")
    return types


def focus_types(cfg: TrainConfig) -> tuple[str, ...]:
    """The question types named by ``cfg.focus_types`` (each must have a target object)."""
    return _named_types("focus types", cfg.focus_types, TARGET_TYPES, "have no target object")


def curriculum_types(cfg: TrainConfig) -> tuple[str, ...]:
    """The training-only types named by ``cfg.curriculum_types`` (checked against the generator's)."""
    return _named_types("curriculum types", cfg.curriculum_types, TRAINING_TYPES, "are not training-only types")


def encode_chunk(job: tuple[str, int, int, float]) -> dict[str, np.ndarray]:
    """Items ``start .. start+n-1`` of ``split`` as arrays (runs in worker processes).

    ``job`` is ``(split, start, n, curriculum_share[, curriculum_types])``; a share above 0 is for the
    train split only.
    """
    global _TOK
    if _TOK is None:
        _TOK = build_tokenizer()
    tok = _TOK
    split, start, n, share, *rest = job
    types = rest[0] if rest else TRAINING_TYPES[:1]
    pad, end = tok.pad_token_id, tok.convert_tokens_to_ids("<|im_end|>")
    out = {k: torch.empty((n, *shape), dtype=dtype).numpy() for k, (shape, dtype) in _FIELDS.items()}
    out["ids"].fill(pad)
    out["options"].fill(-1)
    for j in range(n):
        item, clip = make_item(split, start + j, curriculum_type(start + j, share, types))
        prompt = encode(tok, item.prompt)
        answer = word_id(tok, item.answer_text)
        seq = prompt + [answer, end]
        assert len(seq) <= MAX_LEN, len(seq)
        out["frames"][j] = clip.frames
        out["ids"][j, : len(seq)] = seq
        out["n_prompt"][j] = len(prompt)
        out["answer"][j] = answer
        if item.options is not None:
            out["options"][j] = [word_id(tok, o) for o in item.options]
        out["aux"][j] = np.stack([clip.obj_color, clip.obj_shape, clip.obj_size, clip.background])
        out["type"][j] = ALL_TYPES.index(item.type)
        out["focus"][j] = target_tokens(item, clip)
    return out


_STAGING: dict[str, np.ndarray] | None = None  # shared-memory slots, inherited by forked workers


def fill_slot(job: tuple[str, int, int, int, float]) -> int:
    """Encode ``n`` items into the shared staging rows from ``row`` on (runs in worker processes).

    Writing into shared memory instead of returning the arrays keeps the main process free of
    unpickling ~200 KB per item, which is what bounded the training step before.
    """
    split, start, n, row, share, types = job
    for k, v in encode_chunk((split, start, n, share, types)).items():
        _STAGING[k][row: row + n] = v
    return n


class DevicePool:
    """A ring buffer of encoded items on ``device``, refilled by worker processes.

    Workers write chunks into shared-memory staging slots; the main process copies a finished slot
    to the device and hands the slot back, so only slot numbers cross the process boundary.
    """

    def __init__(self, capacity: int, device, chunk: int, slots: int, split: str = "train",
                 curriculum_share: float = 0.0, curriculum_types: tuple[str, ...] = TRAINING_TYPES[:1]):
        global _STAGING
        self.capacity, self.device, self.chunk, self.split = capacity, device, chunk, split
        self.curriculum_share = curriculum_share
        self.curriculum_types = curriculum_types
        self.data: dict[str, torch.Tensor] = {}
        self.staging = {k: torch.empty((slots * chunk, *s), dtype=dt).share_memory_() for k, (s, dt) in _FIELDS.items()}
        _STAGING = {k: v.numpy() for k, v in self.staging.items()}
        self.free = deque(range(slots))
        self.filled = self.cursor = self.generated = 0
        self.next_start = 0
        self.inflight: deque = deque()
        self.workers = None

    def start(self, workers) -> None:
        """Attach the worker pool (forked after the staging memory exists, before CUDA starts)."""
        self.workers = workers
        self.data = {k: torch.empty((self.capacity, *s), dtype=dt, device=self.device)
                     for k, (s, dt) in _FIELDS.items()}

    def submit(self) -> None:
        while self.free:
            slot = self.free.popleft()
            job = (self.split, self.next_start, self.chunk, slot * self.chunk, self.curriculum_share,
                   self.curriculum_types)
            self.inflight.append((slot, self.workers.apply_async(fill_slot, (job,))))
            self.next_start += self.chunk

    def ingest(self, max_chunks: int = 1, block: bool = False) -> int:
        got = 0
        while self.inflight and got < max_chunks and (block or self.inflight[0][1].ready()):
            slot, result = self.inflight.popleft()
            n = result.get()
            pos = ((torch.arange(n) + self.cursor) % self.capacity).to(self.device)
            lo = slot * self.chunk
            for k, v in self.staging.items():
                self.data[k][pos] = v[lo: lo + n].to(self.device)
            self.free.append(slot)
            self.cursor = (self.cursor + n) % self.capacity
            self.filled = min(self.capacity, self.filled + n)
            self.generated += n
            got += 1
        return got

    def sample(self, batch: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
        idx = torch.randint(self.filled, (batch,), generator=gen, device=gen.device)  # no host sync
        return {k: v[idx] for k, v in self.data.items()}


def make_set(workers, split: str, n: int, chunk: int, device) -> dict[str, torch.Tensor]:
    jobs = [(split, s, min(chunk, n - s), 0.0) for s in range(0, n, chunk)]
    parts = workers.map(encode_chunk, jobs)
    return {k: torch.from_numpy(np.concatenate([p[k] for p in parts])).to(device) for k in parts[0]}


def pixel_values(frames: torch.Tensor, processor) -> torch.Tensor:
    """``uint8 [B, F, H, W, 3]`` -> the processor's ``pixel_values_videos`` ``[B, F, 3, H, W]``."""
    vp = processor.video_processor
    mean = torch.tensor(vp.image_mean, device=frames.device).view(1, 1, 3, 1, 1)
    std = torch.tensor(vp.image_std, device=frames.device).view(1, 1, 3, 1, 1)
    x = frames.permute(0, 1, 4, 2, 3).float() * vp.rescale_factor
    return (x - mean) / std


# ---------------------------------------------------------------------------------------- forward


def forward(model, processor, batch, drop_mask=None, length: int | None = None, video_states: bool = False,
            focus_layer: int | None = None):
    """Hidden states ``[B, 2, D]`` predicting the answer word and the end token, and the visual features.

    The sequences are the prompt plus the answer word (right padded to ``length``, by default the
    longest in the batch); the visual features ``[B, 257, D]`` feed the auxiliary head. With
    ``video_states``, also the LM's last hidden states at the video tokens ``[B, 257, D]``. With
    ``focus_layer``, also that LM layer's attention probabilities ``[B, heads, 257]`` from the position
    that predicts the answer to the video tokens (see :func:`answer_attention`).
    """
    cfg = model.config
    n_prompt = batch["n_prompt"].long()
    length = int(n_prompt.max()) + 1 if length is None else length
    ids = batch["ids"][:, :length].long()
    positions = torch.arange(length, device=ids.device)[None].expand_as(ids)
    attn = (positions <= n_prompt[:, None]).long()  # right padding
    video = model.model.get_video_features(pixel_values_videos=pixel_values(batch["frames"], processor),
                                           vision_feature_layer=cfg.vision_feature_layer,
                                           vision_feature_select_strategy=cfg.vision_feature_select_strategy)
    feats = video.pooler_output  # [B, 257, D]
    embeds = model.get_input_embeddings()(ids)
    is_video = ids == cfg.video_token_id
    embeds = embeds.masked_scatter(is_video[..., None], feats.to(embeds.dtype))
    if drop_mask is not None:  # the k-th video token of a row takes drop_mask[row, k] (gather: no host sync)
        order = (is_video.cumsum(1) - 1).clamp(0, drop_mask.shape[1] - 1)
        attn = torch.where(is_video, attn * drop_mask.gather(1, order).to(attn), attn)
    lm = model.model.language_model
    with AttentionInputs(lm.layers[focus_layer].self_attn if focus_layer is not None else None) as seen:
        hidden = lm(inputs_embeds=embeds, attention_mask=attn, position_ids=positions).last_hidden_state
    rows = torch.arange(len(ids), device=ids.device)[:, None]
    at = torch.stack([n_prompt - 1, n_prompt], dim=1)  # [B, 2]: before the answer word, on it
    out = [hidden[rows, at], feats]
    if video_states:  # every prompt has the same video block, so the masked rows reshape evenly
        out.append(hidden[is_video].view(len(ids), -1, hidden.shape[-1]))
    if focus_layer is not None:
        probs = answer_attention(seen.module, seen.hidden, seen.rotary, n_prompt - 1, attn.bool())
        out.append(probs.transpose(1, 2)[is_video].view(len(ids), -1, probs.shape[1]).transpose(1, 2))
    return tuple(out)


class AttentionInputs:
    """Context manager that records what one LM attention module receives (hidden states, rotary cos/sin)."""

    def __init__(self, module):
        self.module, self.hidden, self.rotary, self._hook = module, None, None, None

    def __enter__(self):
        if self.module is not None:
            self._hook = self.module.register_forward_pre_hook(self._record, with_kwargs=True)
        return self

    def _record(self, module, args, kwargs):
        self.hidden = kwargs["hidden_states"] if "hidden_states" in kwargs else args[0]
        self.rotary = kwargs["position_embeddings"]

    def __exit__(self, *exc):
        if self._hook is not None:
            self._hook.remove()


def answer_attention(attn, hidden: torch.Tensor, rotary, query_at: torch.Tensor, key_mask: torch.Tensor):
    """Attention probabilities ``[B, heads, T]`` of each row's position ``query_at`` in module ``attn``.

    Recomputes what the (Qwen2) attention module does at that one query: its projections, rotary
    embedding, grouped keys, scaling, and a softmax over the keys that are not masked and not after the
    query. It is the row of the eager attention matrix (no dropout), with gradients.
    """
    from transformers.models.qwen2.modeling_qwen2 import rotate_half

    b, t, _ = hidden.shape
    d = attn.head_dim
    rows = torch.arange(b, device=hidden.device)
    cos, sin = (r.to(hidden.dtype) for r in rotary)  # [B, T, d]
    q = attn.q_proj(hidden[rows, query_at]).view(b, -1, 1, d)  # [B, H, 1, d]
    q = q * cos[rows, query_at][:, None, None] + rotate_half(q) * sin[rows, query_at][:, None, None]
    k = attn.k_proj(hidden).view(b, t, -1, d).transpose(1, 2)  # [B, KVH, T, d]
    k = k * cos[:, None] + rotate_half(k) * sin[:, None]
    k = k.repeat_interleave(q.shape[1] // k.shape[1], dim=1)
    scores = (q @ k.transpose(-1, -2)).squeeze(2).float() * attn.scaling  # [B, H, T]
    allowed = key_mask & (torch.arange(t, device=hidden.device)[None] <= query_at[:, None])
    return scores.masked_fill(~allowed[:, None], float("-inf")).softmax(-1)


def focus_loss(video_probs: torch.Tensor, focus: torch.Tensor, use: torch.Tensor, head: int = 0) -> torch.Tensor:
    """``-log`` of the attention mass that ``head`` puts on the target object's tokens.

    ``video_probs`` ``[B, H, 257]`` (from :func:`forward`), ``focus`` ``[B, F, 4, 4]`` the target tokens,
    ``use`` ``[B]`` which rows count; the rows without a target add nothing. The head is fixed: with
    the best head of each item instead, training found heads that each watch one object, so some head
    always hit the target and none looked it up (loss near 0, no gain in accuracy).
    """
    mass = (video_probs[:, head, :-1] * focus.flatten(1).to(video_probs)).sum(-1)  # [B]
    nll = -torch.log(mass + 1e-4)
    use = use & focus.flatten(1).any(1)
    return (nll * use).sum() / use.sum().clamp_min(1)


def distill_loss(student: torch.Tensor, teacher: torch.Tensor, temperature: float = 2.0) -> torch.Tensor:
    """``T^2 KL(teacher || student)`` of the answer-word distributions ``[B, V]`` softened by ``T``."""
    t = temperature
    return F.kl_div(F.log_softmax(student / t, -1), F.log_softmax(teacher / t, -1), log_target=True,
                    reduction="batchmean") * t * t


def load_teacher(path: str, device):
    """The saved tiny model at ``path``, frozen, in eval mode, for distillation."""
    from transformers import LlavaOnevisionForConditionalGeneration

    if not path:
        raise ValueError("--distill-weight needs --teacher DIR (a saved tiny model)")
    teacher = LlavaOnevisionForConditionalGeneration.from_pretrained(path, dtype=torch.float32)
    teacher = teacher.to(device).eval().requires_grad_(False)
    use_fast_pooling(teacher)
    return teacher


def copy_vision_tower(model, path: str) -> None:
    """Load the vision tower of the saved model at ``path`` into ``model`` (same vision config)."""
    from transformers import LlavaOnevisionForConditionalGeneration

    source = LlavaOnevisionForConditionalGeneration.from_pretrained(path, dtype=torch.float32)
    keys = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "image_size", "patch_size")
    if any(getattr(source.config.vision_config, k) != getattr(model.config.vision_config, k) for k in keys):
        raise ValueError(f"--init-vision {path}: its vision tower differs from this model's (--vision-* options)")
    model.model.vision_tower.load_state_dict(source.model.vision_tower.state_dict())


def drop_mask(batch, cfg: TrainConfig, gen: torch.Generator) -> torch.Tensor:
    """``[B, 257]`` 1 = keep: for some samples, drop a random share of object-free visual tokens."""
    b = batch["aux"].shape[0]
    has_obj = (batch["aux"][:, 0] > 0).reshape(b, -1)  # [B, 256]
    dev = has_obj.device
    rate = torch.rand(b, 1, generator=gen, device=gen.device).to(dev) * cfg.drop_aug_max
    use = torch.rand(b, 1, generator=gen, device=gen.device).to(dev) < cfg.drop_aug_prob
    rate = torch.where(use, rate, torch.zeros_like(rate))
    drop = (torch.rand(b, has_obj.shape[1], generator=gen, device=gen.device).to(dev) < rate) & ~has_obj
    keep = torch.cat([~drop, torch.ones(b, 1, dtype=torch.bool, device=dev)], dim=1)  # newline kept
    return keep.long()


def auxiliary_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-token classification of object colour, shape, size class and background colour.

    Objects cover a few percent of the tokens, so a plain mean would let the object heads ignore
    them (the first runs never learned shapes: shape questions stayed at chance). The object heads
    average half over all tokens and half over object tokens only.
    """
    labels = labels.long().flatten(2)  # [B, 4, 256]
    has_obj = (labels[:, 0] > 0).float()  # [B, 256]
    total = logits.new_zeros(())
    for k, head in enumerate(logits.split(AUX_CLASSES, dim=-1)):
        ce = F.cross_entropy(head.flatten(0, 1), labels[:, k].flatten(), reduction="none").view_as(has_obj)
        if k < 3:
            total = total + 0.5 * ce.mean() + 0.5 * (ce * has_obj).sum() / has_obj.sum().clamp_min(1.0)
        else:
            total = total + ce.mean()
    return total / len(AUX_CLASSES)


# ------------------------------------------------------------------------------------------- eval


@torch.no_grad()
def quick_eval(model, processor, data: dict[str, torch.Tensor], batch: int = 150) -> dict:
    """Accuracy per type on in-memory clips: option-word logits (multiple choice), argmax word (open)."""
    model.eval()
    hits = {t: [] for t in QUESTION_TYPES}
    n = len(data["type"])
    dev = data["type"].device
    for s in range(0, n, batch):
        b = {k: v[s: s + batch] for k, v in data.items()}
        with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
            last, _ = forward(model, processor, b)
            logits = model.lm_head(last[:, 0]).float()
        opts = b["options"].long()
        mc = logits.gather(1, opts.clamp(min=0)).argmax(1)
        mc_ok = opts.gather(1, mc[:, None])[:, 0] == b["answer"].long()
        open_ok = logits.argmax(1) == b["answer"].long()
        for j in range(len(mc)):
            qtype = QUESTION_TYPES[int(b["type"][j])]
            hits[qtype].append(bool(open_ok[j] if qtype in OPEN_TYPES else mc_ok[j]))
    model.train()
    acc = {t: float(np.mean(v)) for t, v in hits.items() if v}
    acc["overall"] = float(np.mean([x for v in hits.values() for x in v]))
    return acc


# ------------------------------------------------------------------------------------------- main


def train(cfg: TrainConfig, out: Path, device: str = "cuda", procs: int = 8, tar: Path | None = None) -> dict:
    t_start = time.time()
    pool = DevicePool(cfg.pool_capacity, torch.device(device), cfg.chunk, slots=2 * procs + 2,
                      curriculum_share=cfg.curriculum_share, curriculum_types=curriculum_types(cfg))
    workers = mp.get_context("fork").Pool(procs, initializer=torch.set_num_threads, initargs=(1,))  # before CUDA
    pool.start(workers)
    torch.set_num_threads(2)  # the main process only launches kernels: no OpenMP spinning against the workers
    device = torch.device(device)
    torch.manual_seed(cfg.seed)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick the fastest patch-embedding conv
    tok = build_tokenizer()
    processor = build_processor(tok)
    pool.submit()
    val = make_set(workers, "val", cfg.eval_items, cfg.chunk, device)
    t0 = time.time()
    while pool.filled < min(cfg.pool_min, cfg.pool_capacity) and time.time() - t0 < 120:
        pool.ingest(block=True)
        pool.submit()
    print(f"data: {pool.filled} items in {time.time() - t0:.1f}s "
          f"({pool.filled / (time.time() - t0):.0f} items/s with {procs} processes)", flush=True)

    model = build_model(tok, cfg)
    if cfg.init:  # same architecture and vocabulary: take the saved weights
        from transformers import LlavaOnevisionForConditionalGeneration

        model.load_state_dict(LlavaOnevisionForConditionalGeneration.from_pretrained(cfg.init).state_dict())
    if cfg.init_vision:
        copy_vision_tower(model, cfg.init_vision)
    if cfg.freeze_vision:
        model.model.vision_tower.requires_grad_(False)
    model = model.to(device).train()
    use_fast_pooling(model)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"parameters: {n_params / 1e6:.2f}M", flush=True)
    aux_head = torch.nn.Linear(cfg.text_hidden, sum(AUX_CLASSES)).to(device)
    lm_aux_head = torch.nn.Linear(cfg.text_hidden, sum(AUX_CLASSES)).to(device)  # used when lm_aux_weight > 0
    teacher = load_teacher(cfg.teacher, device) if cfg.distill_weight > 0 else None
    params = [p for p in model.parameters() if p.requires_grad] + list(aux_head.parameters()) + \
        (list(lm_aux_head.parameters()) if cfg.lm_aux_weight > 0 else [])
    opt = torch.optim.AdamW([{"params": [p for p in params if p.ndim >= 2], "weight_decay": cfg.weight_decay},
                             {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}],
                            lr=cfg.lr, betas=(0.9, 0.98), fused=device.type == "cuda")
    gen = torch.Generator(device=device).manual_seed(cfg.seed)
    focus_ids = torch.tensor([ALL_TYPES.index(t) for t in focus_types(cfg)], device=device)
    focus = torch.zeros(())
    distill = torch.zeros(())
    log = {"step": [], "loss": [], "lm_loss": [], "aux_loss": [], "focus_loss": [], "distill_loss": [], "eval": []}
    log["compute_ms_per_step"] = _time_compute(model, processor, pool.sample(cfg.batch_size, gen), device,
                                               steps=12 if device.type == "cuda" else 2)
    print(f"compute only (forward + backward, fixed batch): {log['compute_ms_per_step']:.1f} ms/step", flush=True)
    total, step, t_train, last_eval = cfg.steps, 0, time.time(), time.time()
    reserve = 30.0
    while step < total:
        if step == 10:
            t_measure = time.time()
        if step == 60 and cfg.deadline > 0:  # fit the schedule to the time left
            per_step = (time.time() - t_measure) / 50
            left = cfg.deadline - (time.time() - t_start) - reserve
            evals = left / cfg.eval_every_s * 3.0  # seconds the periodic evaluations take
            total = min(total, 60 + int((left - evals) / per_step))
            print(f"{per_step * 1000:.1f} ms/step -> {total} steps", flush=True)
        if pool.filled < pool.capacity or step % cfg.refresh_every == 0:  # each ingest syncs the host
            pool.ingest(1)
            pool.submit()
        lr = cfg.lr * min(1.0, (step + 1) / cfg.warmup) * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * step / total)))
        for g in opt.param_groups:
            g["lr"] = lr
        batch = pool.sample(cfg.batch_size, gen)
        keep = drop_mask(batch, cfg, gen) if cfg.drop_aug_prob > 0 else None
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            last, feats, *extra = forward(model, processor, batch, drop_mask=keep, length=MAX_LEN,  # fixed: no sync
                                          video_states=cfg.lm_aux_weight > 0,
                                          focus_layer=cfg.focus_layer if cfg.focus_weight > 0 else None)
            logits = model.lm_head(last).float()  # [B, 2, V]
            end = torch.full_like(batch["answer"], tok.eos_token_id)
            lm_loss = F.cross_entropy(logits.flatten(0, 1), torch.stack([batch["answer"], end], 1).long().flatten())
            aux_loss = auxiliary_loss(aux_head(feats[:, :-1].float()), batch["aux"])
            loss = lm_loss + cfg.aux_weight * aux_loss
            if cfg.lm_aux_weight > 0:  # the LM must carry what each visual token shows, where later layers read it
                states = extra.pop(0)[:, :-1].float()
                loss = loss + cfg.lm_aux_weight * auxiliary_loss(lm_aux_head(states), batch["aux"])
            if cfg.focus_weight > 0:  # the answer position must look at the object the question is about
                use = torch.isin(batch["type"].long(), focus_ids)
                focus = focus_loss(extra.pop(0), batch["focus"], use, cfg.focus_head)
                loss = loss + cfg.focus_weight * focus
            if teacher is not None:  # the teacher's answer distribution: which wrong answers are plausible
                with torch.no_grad():
                    t_last, _ = forward(teacher, processor, batch, drop_mask=keep, length=MAX_LEN)
                    t_logits = teacher.lm_head(t_last[:, 0]).float()
                distill = distill_loss(logits[:, 0], t_logits, cfg.distill_temperature)
                loss = loss + cfg.distill_weight * distill
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        if step % 50 == 0 or step == 1:
            log["step"].append(step)
            log["loss"].append(loss.item())
            log["lm_loss"].append(lm_loss.item())
            log["aux_loss"].append(aux_loss.item())
            log["focus_loss"].append(focus.item())
            log["distill_loss"].append(distill.item())
        if step % 500 == 0:
            print(f"step {step}/{total} loss {loss.item():.4f} lm {lm_loss.item():.4f} aux {aux_loss.item():.4f} "
                  f"focus {focus.item():.4f} distill {distill.item():.4f} "
                  f"lr {lr:.2e} items {pool.generated} t {time.time() - t_start:.0f}s", flush=True)
        if time.time() - last_eval > cfg.eval_every_s or step == total:
            acc = quick_eval(model, processor, val)
            log["eval"].append({"step": step, **acc})
            print(f"eval step {step}: " + " ".join(f"{k}={v:.3f}" for k, v in acc.items()), flush=True)
            last_eval = time.time()
            if step < total and out is not None:  # checkpoint: survive a run cut short
                _checkpoint(model, processor, out, log, cfg, step, t_train, n_params, device, pool, tar)
    test = make_set(workers, "test", cfg.eval_items, cfg.chunk, device)
    test_acc = quick_eval(model, processor, test)
    print("test (in memory): " + " ".join(f"{k}={v:.3f}" for k, v in test_acc.items()), flush=True)
    fresh_acc = quick_eval(model, processor, make_set(workers, "fresh", cfg.eval_items, cfg.chunk, device))
    print("fresh (in memory): " + " ".join(f"{k}={v:.3f}" for k, v in fresh_acc.items()), flush=True)
    workers.terminate()
    result = _checkpoint(model, processor, out, log, cfg, step, t_train, n_params, device, pool, tar)
    result["test_in_memory"] = test_acc
    result["fresh_in_memory"] = fresh_acc
    (out / "training_log.json").write_text(json.dumps({"log": log, "result": result}, indent=1))
    if tar:
        _tar(out, tar)
    return result


def _time_compute(model, processor, batch, device, steps: int = 12) -> float:
    """Milliseconds per forward + backward on one fixed batch (no data, no optimizer): a diagnostic."""
    def run():
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            last, feats = forward(model, processor, batch, length=MAX_LEN)
            (model.lm_head(last).float().logsumexp(-1).mean() + feats.float().pow(2).mean()).backward()
    run()
    if device.type == "cuda":
        torch.cuda.synchronize()
    t = time.time()
    for _ in range(steps):
        run()
    if device.type == "cuda":
        torch.cuda.synchronize()
    elapsed = time.time() - t
    if device.type == "cuda":  # where the step's GPU time goes (a diagnostic for the log)
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            run()
            torch.cuda.synchronize()
        print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=12, max_name_column_width=70), flush=True)
    model.zero_grad(set_to_none=True)
    return elapsed / steps * 1000


def _checkpoint(model, processor, out, log, cfg, step, t_train, n_params, device, pool, tar) -> dict:
    cfg = TrainConfig(**{**asdict(cfg), "steps": step})
    result = {"config": asdict(cfg), "train_seconds": time.time() - t_train, "final_loss": log["loss"][-1],
              "final_lm_loss": log["lm_loss"][-1], "final_aux_loss": log["aux_loss"][-1],
              "val_in_memory": log["eval"][-1] if log["eval"] else None, "parameters": n_params,
              "items_generated": pool.generated, "samples_seen": step * cfg.batch_size,
              "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu", "torch": torch.__version__}
    state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
    save(model, state, processor, out, log, result, dtype=getattr(torch, cfg.save_dtype))
    if tar:
        _tar(out, tar)
    return result


def _tar(folder: Path, tar: Path) -> None:
    tmp = tar.with_suffix(".tmp")
    with tarfile.open(tmp, "w") as tf:
        tf.add(folder, arcname=folder.name)
    tmp.replace(tar)


def save(model, state, processor, out: Path, log: dict, result: dict, dtype: torch.dtype = torch.float32) -> None:
    import transformers

    result["transformers"] = transformers.__version__
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    model.save_pretrained(out, state_dict={k: v.to(dtype) for k, v in state.items()}, safe_serialization=True)
    processor.save_pretrained(out)
    (out / "training_log.json").write_text(json.dumps({"log": log, "result": result}, indent=1))
    plot_loss(out / "training_log.json", out / "loss.png")


def plot_loss(log_path: Path, png: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover
        print("matplotlib missing: no loss plot")
        return
    log = json.loads(Path(log_path).read_text())["log"]
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.6))
    ax[0].plot(log["step"], log["lm_loss"], label="answer loss")
    ax[0].plot(log["step"], log["aux_loss"], label="auxiliary token loss")
    ax[0].set_yscale("log")
    ax[0].set_xlabel("step")
    ax[0].legend()
    ax[0].set_title("training loss")
    if log["eval"]:
        steps = [e["step"] for e in log["eval"]]
        for k in [*QUESTION_TYPES, "overall"]:
            ax[1].plot(steps, [e.get(k, np.nan) for e in log["eval"]], label=k, lw=2.5 if k == "overall" else 1)
        ax[1].set_ylim(0, 1.02)
        ax[1].set_xlabel("step")
        ax[1].set_title("val accuracy (in-memory clips)")
        ax[1].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--procs", type=int, default=max(1, min(10, (os.cpu_count() or 2) - 4)))
    p.add_argument("--tar", type=Path, help="also pack the output folder into this .tar (at every checkpoint)")
    for k, v in asdict(TrainConfig()).items():
        p.add_argument(f"--{k.replace('_', '-')}", type=type(v), default=v)
    args = p.parse_args(argv)
    cfg = TrainConfig(**{k: getattr(args, k) for k in asdict(TrainConfig())})
    result = train(cfg, args.out, args.device, args.procs, args.tar)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
