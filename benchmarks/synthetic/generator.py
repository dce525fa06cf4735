"""Deterministic generator of the synthetic video-QA suite.

Every item is a 16-frame 64x64 clip of flat or softly textured backgrounds (scenes separated by hard
cuts, so most frames repeat their neighbours) with coloured shapes that stay, move or flash, and one
question whose answer needs specific moments of the clip. ``make_item(split, index)`` is a pure
function of ``(split, index)``: the random generator is seeded with ``(SPLIT_SEEDS[split], index)``, so
the splits never share a seed and regenerating an item gives the same pixels.

The question type of item ``index`` is ``QUESTION_TYPES[index % len(QUESTION_TYPES)]``, so every
prefix of a split is balanced across types.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from prunekit.tiny import OPTION_LETTERS, build_prompt

NUM_FRAMES = 16
SIZE = 64
CELL = 16  # one visual token of the tiny model covers 16x16 pixels (8x8 patches, 2x2 pooled)
GRID = SIZE // CELL
SMALL = 10  # needles are at most this many pixels wide; every other object is wider

# "fresh" is a held-out check of generalisation: no training or tuning run ever reads it
SPLIT_SEEDS = {"train": 0, "val": 1, "test": 2, "fresh": 7}

OBJECT_COLORS = {
    "red": (230, 30, 30), "green": (30, 200, 50), "blue": (40, 90, 255), "yellow": (240, 230, 40),
    "white": (245, 245, 245), "purple": (180, 60, 220), "orange": (255, 140, 0), "cyan": (40, 230, 230),
}
BACKGROUND_COLORS = {
    "black": (18, 18, 18), "gray": (110, 110, 110), "brown": (105, 62, 30), "navy": (18, 22, 92),
    "olive": (92, 92, 22), "maroon": (92, 18, 40), "teal": (18, 84, 84), "indigo": (52, 22, 96),
}
SHAPES = ("square", "circle", "triangle", "cross")
DIRECTIONS = ("left", "right", "up", "down")
NUMBERS = ("one", "two", "three", "four")
TEXTURES = ("flat", "gradient", "stripes", "checker")

QUESTION_TYPES = (
    "scene_count", "event_order", "needle_color", "needle_shape", "motion_direction",
    "scene_object", "counting", "open_needle_color", "open_motion",
)
OPEN_TYPES = frozenset({"open_needle_color", "open_motion"})
# Question types for training only (a curriculum), never in val or test: the shape of a named object
# that stays on screen (the easy form of the two shape questions above), and the colour of the
# object of the scene with a named background (scene_object's clip, with the easier attribute), and two
# that tie background words to what the frames show: which background is shown, and the background
# shown with a named object (scene_object's question turned around).
TRAINING_TYPES = ("object_shape", "scene_object_color", "background_color", "object_background")
ALL_TYPES = QUESTION_TYPES + TRAINING_TYPES

_Q = {
    "scene_count": "How many scenes does the video contain?",
    "event_order": "What color is the object that appears {which} in the video?",
    "needle_color": "A small object appears for a moment. What color is it?",
    "needle_shape": "A small object appears for a moment. What shape is it?",
    "motion_direction": "In which direction does the {obj} move?",
    "scene_object": "What shape is the object shown in the scene with the {bg} background?",
    "counting": "How many times does a {color} object appear?",
    "object_shape": "What shape is the {color} object?",
    "scene_object_color": "What color is the object shown in the scene with the {bg} background?",
    "background_color": "What color is the background in the video?",
    "object_background": "What color is the background shown with the {color} object?",
}


@dataclass(frozen=True)
class Item:
    """One question about one clip. ``answer`` is a letter for multiple choice, a word otherwise."""

    id: str
    split: str
    index: int
    type: str
    question: str
    options: tuple[str, ...] | None
    answer: str
    answer_text: str
    video: str = ""  # path of the mp4, relative to the items file's folder
    meta: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def prompt(self) -> str:
        return build_prompt(self.question, self.options)

    def to_json(self) -> dict:
        d = {k: getattr(self, k) for k in
             ("id", "split", "index", "type", "question", "options", "answer", "answer_text", "video", "meta")}
        d["options"] = list(self.options) if self.options is not None else None
        return d

    @classmethod
    def from_json(cls, d: dict) -> Item:
        d = dict(d)
        d["options"] = tuple(d["options"]) if d.get("options") is not None else None
        return cls(**d)


@dataclass
class Clip:
    """Frames ``uint8 [F, 64, 64, 3]`` and per-token labels ``[F, 4, 4]`` (for auxiliary training)."""

    frames: np.ndarray
    obj_color: np.ndarray  # 0 = no object, 1 + index into OBJECT_COLORS
    obj_shape: np.ndarray  # 0 = no object, 1 + index into SHAPES
    obj_size: np.ndarray  # 0 = no object, 1 = small (<= SMALL pixels), 2 = larger
    background: np.ndarray  # index into BACKGROUND_COLORS


# --------------------------------------------------------------------------------------- rendering


def _shape_mask(shape: str, size: int) -> np.ndarray:
    y, x = np.mgrid[0:size, 0:size] + 0.5
    c = size / 2
    if shape == "square":
        return np.ones((size, size), bool)
    if shape == "circle":
        return (x - c) ** 2 + (y - c) ** 2 <= c * c
    if shape == "triangle":  # apex up
        return np.abs(x - c) <= y / 2
    if shape == "cross":
        t = max(size / 3, 2)
        return (np.abs(x - c) <= t / 2) | (np.abs(y - c) <= t / 2)
    raise ValueError(shape)


@dataclass
class _Obj:
    color: str
    shape: str
    size: int
    # frame index -> top-left (y, x)
    where: dict[int, tuple[int, int]]
    rgb: tuple[int, int, int]

    @property
    def name(self) -> str:
        return f"{self.color} {self.shape}"


class _Canvas:
    """A clip under construction: scenes (background per frame) plus objects."""

    def __init__(self, rng: np.random.Generator, cuts: list[int], backgrounds: list[str]):
        self.rng = rng
        self.cuts = cuts  # start frame of every scene, cuts[0] == 0
        self.backgrounds = backgrounds
        self.objects: list[_Obj] = []

    def scene_of(self, frame: int) -> int:
        return int(np.searchsorted(self.cuts, frame, side="right") - 1)

    def scene_frames(self, scene: int) -> range:
        end = self.cuts[scene + 1] if scene + 1 < len(self.cuts) else NUM_FRAMES
        return range(self.cuts[scene], end)

    def add(self, color: str, shape: str, size: int, where: dict[int, tuple[int, int]]) -> _Obj:
        jitter = self.rng.integers(-12, 13, 3)
        rgb = tuple(int(v) for v in np.clip(np.array(OBJECT_COLORS[color]) + jitter, 0, 255))
        obj = _Obj(color, shape, size, where, rgb)
        self.objects.append(obj)
        return obj

    def render(self) -> Clip:
        rng = self.rng
        frames = np.empty((NUM_FRAMES, SIZE, SIZE, 3), np.uint8)
        owner = np.full((NUM_FRAMES, SIZE, SIZE), -1, np.int16)
        textures = [_texture(rng, BACKGROUND_COLORS[b]) for b in self.backgrounds]
        for f in range(NUM_FRAMES):
            frames[f] = textures[self.scene_of(f)]
        for k, obj in enumerate(self.objects):
            mask = _shape_mask(obj.shape, obj.size)
            for f, (y, x) in obj.where.items():
                region = frames[f, y:y + obj.size, x:x + obj.size]
                region[mask] = obj.rgb
                owner[f, y:y + obj.size, x:x + obj.size][mask] = k
        obj_color = np.zeros((NUM_FRAMES, GRID, GRID), np.int64)
        obj_shape = np.zeros((NUM_FRAMES, GRID, GRID), np.int64)
        obj_size = np.zeros((NUM_FRAMES, GRID, GRID), np.int64)
        cells = owner.reshape(NUM_FRAMES, GRID, CELL, GRID, CELL).transpose(0, 1, 3, 2, 4)
        cells = cells.reshape(NUM_FRAMES, GRID, GRID, CELL * CELL)
        for k, obj in enumerate(self.objects):
            cover = (cells == k).sum(-1)  # [F, 4, 4] pixels of object k per token
            best = cover >= 12
            obj_color[best] = 1 + list(OBJECT_COLORS).index(obj.color)
            obj_shape[best] = 1 + SHAPES.index(obj.shape)
            obj_size[best] = 1 if obj.size <= SMALL else 2
        bg_ids = [list(BACKGROUND_COLORS).index(b) for b in self.backgrounds]
        background = np.array([bg_ids[self.scene_of(f)] for f in range(NUM_FRAMES)], np.int64)
        background = np.broadcast_to(background[:, None, None], (NUM_FRAMES, GRID, GRID)).copy()
        return Clip(frames, obj_color, obj_shape, obj_size, background)


def _texture(rng: np.random.Generator, rgb: tuple[int, int, int]) -> np.ndarray:
    base = np.array(rgb, np.float32) + rng.integers(-10, 11, 3)
    kind = TEXTURES[rng.integers(len(TEXTURES))]
    y, x = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    amp = float(rng.integers(6, 16))
    if kind == "flat":
        delta = np.zeros((SIZE, SIZE), np.float32)
    elif kind == "gradient":
        angle = rng.uniform(0, 2 * np.pi)
        delta = amp * ((np.cos(angle) * x + np.sin(angle) * y) / SIZE)
    elif kind == "stripes":
        period = int(rng.integers(6, 17))
        delta = amp * (((x if rng.random() < 0.5 else y) // (period / 2)) % 2 - 0.5)
    else:
        period = int(rng.integers(8, 17))
        delta = amp * ((((x // period) + (y // period)) % 2) - 0.5)
    return np.clip(base + delta[..., None], 0, 255).astype(np.uint8)


# ------------------------------------------------------------------------------- clip ingredients


def _scenes(rng: np.random.Generator, n: int, min_len: int = 2) -> tuple[list[int], list[str]]:
    """``n`` scenes: start frames (each scene at least ``min_len`` frames) and distinct backgrounds."""
    while True:
        starts = sorted(rng.choice(np.arange(1, NUM_FRAMES), n - 1, replace=False).tolist()) if n > 1 else []
        bounds = [0, *starts, NUM_FRAMES]
        if all(b - a >= min_len for a, b in zip(bounds, bounds[1:])):
            break
    backgrounds = [str(b) for b in rng.choice(list(BACKGROUND_COLORS), n, replace=False)]
    return [0, *starts], backgrounds


def _pos(rng: np.random.Generator, size: int, avoid: list[tuple[int, int, int]] = ()) -> tuple[int, int]:
    """A random top-left corner whose box (with a 2-pixel margin) overlaps none of ``avoid`` (y, x, size)."""
    for _ in range(200):
        y, x = (int(v) for v in rng.integers(0, SIZE - size + 1, 2))
        if all(y + size + 2 <= ay or ay + asz + 2 <= y or x + size + 2 <= ax or ax + asz + 2 <= x
               for ay, ax, asz in avoid):
            return y, x
    raise RuntimeError("no free position")  # pragma: no cover - never with the sizes used here


def _distinct_objects(rng: np.random.Generator, n: int) -> list[tuple[str, str]]:
    """``n`` (color, shape) pairs that differ pairwise in both color and shape (n <= 4)."""
    colors = rng.choice(list(OBJECT_COLORS), n, replace=False)
    shapes = rng.choice(SHAPES, n, replace=False)
    return [(str(c), str(s)) for c, s in zip(colors, shapes)]


def _shuffled_absent(rng, names, shown) -> list[str]:
    """``names`` that are not in ``shown``, in random order (distractors that are not on screen)."""
    return [str(x) for x in rng.permutation([k for k in names if k not in shown])]


def _multiple_choice(rng: np.random.Generator, correct: str, wrong: list[str]) -> tuple[tuple[str, ...], str]:
    options = [correct, *wrong[:3]]
    order = rng.permutation(len(options))
    options = [options[i] for i in order]
    return tuple(options), OPTION_LETTERS[options.index(correct)]


def _static(frames, y, x) -> dict[int, tuple[int, int]]:
    return {f: (y, x) for f in frames}


def _add_scene_props(c: _Canvas, rng: np.random.Generator, per_scene_max: int = 1) -> None:
    """Background objects that stay (or drift) within a scene: redundancy without relevance."""
    for s in range(len(c.cuts)):
        for _ in range(int(rng.integers(0, per_scene_max + 1))):
            size = int(rng.integers(12, 19))
            y, x = _pos(rng, size)
            frames = c.scene_frames(s)
            dy, dx = (int(v) for v in rng.integers(-1, 2, 2))
            where = {f: (int(np.clip(y + dy * i, 0, SIZE - size)), int(np.clip(x + dx * i, 0, SIZE - size)))
                     for i, f in enumerate(frames)}
            c.add(str(rng.choice(list(OBJECT_COLORS))), str(rng.choice(SHAPES)), size, where)


# --------------------------------------------------------------------------------- question types


def _scene_count(rng):
    n = int(rng.integers(1, 5))
    c = _Canvas(rng, *_scenes(rng, n))
    _add_scene_props(c, rng)
    question = _Q["scene_count"]
    options = NUMBERS
    return c, question, options, OPTION_LETTERS[n - 1], {"scenes": n, "cuts": c.cuts}


def _event_order(rng):
    c = _Canvas(rng, *_scenes(rng, int(rng.integers(1, 3))))
    (ca, sa), (cb, sb) = _distinct_objects(rng, 2)
    la, lb = int(rng.integers(2, 5)), int(rng.integers(2, 5))
    gap = int(rng.integers(1, NUM_FRAMES - la - lb + 1))
    start_a = int(rng.integers(0, NUM_FRAMES - la - lb - gap + 1))
    start_b = start_a + la + gap
    size_a, size_b = int(rng.integers(12, 17)), int(rng.integers(12, 17))
    a = c.add(ca, sa, size_a, _static(range(start_a, start_a + la), *_pos(rng, size_a)))
    b = c.add(cb, sb, size_b, _static(range(start_b, start_b + lb), *_pos(rng, size_b)))
    which = "first" if rng.random() < 0.5 else "last"
    correct, other = (a, b) if which == "first" else (b, a)
    others = _shuffled_absent(rng, OBJECT_COLORS, (ca, cb))
    options, answer = _multiple_choice(rng, correct.color, [other.color, *others[:2]])
    meta = {"first": a.name, "last": b.name, "frames_first": [start_a, start_a + la],
            "frames_last": [start_b, start_b + lb]}
    return c, _Q["event_order"].format(which=which), options, answer, meta


def _needle_clip(rng):
    c = _Canvas(rng, *_scenes(rng, int(rng.integers(1, 3))))
    (dc, ds), (nc, ns) = _distinct_objects(rng, 2)
    dsize = int(rng.integers(16, 21))
    dy, dx = _pos(rng, dsize)
    vy, vx = (int(v) for v in rng.choice([-1, 0, 1], 2))
    where = {f: (int(np.clip(dy + vy * f, 0, SIZE - dsize)), int(np.clip(dx + vx * f, 0, SIZE - dsize)))
             for f in range(NUM_FRAMES)}
    c.add(dc, ds, dsize, where)
    length = int(rng.integers(1, 3))
    start = int(rng.integers(0, NUM_FRAMES - length + 1))
    nsize = int(rng.integers(8, 11))
    frames = range(start, start + length)
    avoid = [(*where[f], dsize) for f in frames]
    needle = c.add(nc, ns, nsize, _static(frames, *_pos(rng, nsize, avoid)))
    meta = {"needle_frames": list(frames), "needle": needle.name, "distractor": f"{dc} {ds}"}
    return c, needle, (dc, ds), meta


def _needle_color(rng):
    c, needle, (dc, _), meta = _needle_clip(rng)
    others = _shuffled_absent(rng, OBJECT_COLORS, (needle.color, dc))
    options, answer = _multiple_choice(rng, needle.color, [dc, *others[:2]])
    return c, _Q["needle_color"], options, answer, meta


def _needle_shape(rng):
    c, needle, (_, ds), meta = _needle_clip(rng)
    others = [s for s in SHAPES if s not in (needle.shape, ds)]
    options, answer = _multiple_choice(rng, needle.shape, [ds, *others])
    return c, _Q["needle_shape"], options, answer, meta


def _motion_clip(rng):
    c = _Canvas(rng, *_scenes(rng, int(rng.integers(1, 3))))
    (mc, ms), (sc, ss) = _distinct_objects(rng, 2)
    direction = DIRECTIONS[int(rng.integers(4))]
    size = int(rng.integers(12, 15))
    length = int(rng.integers(10, NUM_FRAMES + 1))
    first = int(rng.integers(0, NUM_FRAMES - length + 1))
    travel = int(rng.integers(26, SIZE - size + 1))
    lo = int(rng.integers(0, SIZE - size - travel + 1))
    across = int(rng.integers(0, SIZE - size + 1))
    where = {}
    for i, f in enumerate(range(first, first + length)):
        step = round(travel * i / (length - 1))
        along = lo + step if direction in ("right", "down") else lo + travel - step
        where[f] = (along, across) if direction in ("up", "down") else (across, along)
    c.add(mc, ms, size, where)
    ssize = int(rng.integers(12, 17))
    avoid = [(y, x, size) for y, x in where.values()]
    try:
        c.add(sc, ss, ssize, _static(range(NUM_FRAMES), *_pos(rng, ssize, avoid)))
    except RuntimeError:  # pragma: no cover - the moving object's path left no room
        pass
    meta = {"direction": direction, "frames": [first, first + length]}
    return c, f"{mc} {ms}", direction, meta


def _motion_direction(rng):
    c, name, direction, meta = _motion_clip(rng)
    options, answer = _multiple_choice(rng, direction, [d for d in DIRECTIONS if d != direction])
    return c, _Q["motion_direction"].format(obj=name), options, answer, meta


def _scene_object_clip(rng):
    """Two or three scenes, one object each (distinct colours and shapes); a target scene."""
    n = int(rng.integers(2, 4))
    c = _Canvas(rng, *_scenes(rng, n, min_len=3))
    objs = _distinct_objects(rng, n)
    for s, (oc, os_) in enumerate(objs):
        size = int(rng.integers(12, 19))
        y, x = _pos(rng, size)
        dy, dx = (int(v) for v in rng.integers(-1, 2, 2))
        frames = c.scene_frames(s)
        where = {f: (int(np.clip(y + dy * i, 0, SIZE - size)), int(np.clip(x + dx * i, 0, SIZE - size)))
                 for i, f in enumerate(frames)}
        c.add(oc, os_, size, where)
    target = int(rng.integers(n))
    meta = {"scene": target, "cuts": c.cuts, "objects": [f"{a} {b}" for a, b in objs]}
    return c, objs, target, meta


def _scene_object(rng):
    c, objs, target, meta = _scene_object_clip(rng)
    shape = objs[target][1]
    options, answer = _multiple_choice(rng, shape, [x for x in SHAPES if x != shape])
    return c, _Q["scene_object"].format(bg=c.backgrounds[target]), options, answer, meta


def _scene_object_color(rng):
    c, objs, target, meta = _scene_object_clip(rng)
    color = objs[target][0]
    shown = [oc for oc, _ in objs if oc != color]
    options, answer = _multiple_choice(rng, color, [*shown, *_shuffled_absent(rng, OBJECT_COLORS, [color, *shown])][:3])
    return c, _Q["scene_object_color"].format(bg=c.backgrounds[target]), options, answer, meta


def _background_color(rng):
    c, _, target, meta = _scene_object_clip(rng)
    absent = _shuffled_absent(rng, BACKGROUND_COLORS, c.backgrounds)  # only the answer is on screen
    options, answer = _multiple_choice(rng, c.backgrounds[target], absent[:3])
    return c, _Q["background_color"], options, answer, meta


def _object_background(rng):
    c, objs, target, meta = _scene_object_clip(rng)
    bg = c.backgrounds[target]
    others = [b for b in c.backgrounds if b != bg]
    options, answer = _multiple_choice(rng, bg, [*others, *_shuffled_absent(rng, BACKGROUND_COLORS, c.backgrounds)][:3])
    return c, _Q["object_background"].format(color=objs[target][0]), options, answer, meta


def _object_shape(rng):
    c = _Canvas(rng, *_scenes(rng, int(rng.integers(1, 3))))
    objs = _distinct_objects(rng, 2)
    placed = []
    for oc, os_ in objs:
        size = int(rng.integers(12, 19))
        y, x = _pos(rng, size, placed)
        placed.append((y, x, size))
        c.add(oc, os_, size, _static(range(NUM_FRAMES), y, x))
    color, shape = objs[int(rng.integers(2))]
    options, answer = _multiple_choice(rng, shape, [x for x in SHAPES if x != shape])
    return c, _Q["object_shape"].format(color=color), options, answer, {"objects": [f"{a} {b}" for a, b in objs]}


def _counting(rng):
    c = _Canvas(rng, *_scenes(rng, int(rng.integers(1, 3))))
    k = int(rng.integers(1, 5))
    n_distract = int(rng.integers(0, 4 - k + 1)) if k < 4 else 0
    flashes = k + n_distract
    # flashes of 2 frames, separated by at least one empty frame
    slack = NUM_FRAMES - (3 * flashes - 1)
    extra = np.sort(rng.integers(0, slack + 1, flashes + 1))
    gaps = np.diff(np.concatenate([[0], extra[:-1], [slack]]))
    starts, t = [], int(gaps[0])
    for i in range(flashes):
        starts.append(t)
        t += 3 + (int(gaps[i + 1]) if i + 1 < len(gaps) else 0)
    color = str(rng.choice(list(OBJECT_COLORS)))
    distract_colors = [str(x) for x in rng.choice([x for x in OBJECT_COLORS if x != color], n_distract)]
    kinds = [color] * k + distract_colors
    kinds = [kinds[i] for i in rng.permutation(flashes)]
    for start, col in zip(starts, kinds):
        size = int(rng.integers(12, 15))
        c.add(col, str(rng.choice(SHAPES)), size, _static(range(start, start + 2), *_pos(rng, size)))
    options = NUMBERS
    meta = {"count": k, "starts": [int(s) for s in starts], "colors": kinds}
    return c, _Q["counting"].format(color=color), options, OPTION_LETTERS[k - 1], meta


def _open_needle_color(rng):
    c, needle, _, meta = _needle_clip(rng)
    return c, _Q["needle_color"], None, needle.color, meta


def _open_motion(rng):
    c, name, direction, meta = _motion_clip(rng)
    return c, _Q["motion_direction"].format(obj=name), None, direction, meta


_MAKERS = {
    "scene_count": _scene_count, "event_order": _event_order, "needle_color": _needle_color,
    "needle_shape": _needle_shape, "motion_direction": _motion_direction, "scene_object": _scene_object,
    "counting": _counting, "open_needle_color": _open_needle_color, "open_motion": _open_motion,
    "object_shape": _object_shape, "scene_object_color": _scene_object_color,
    "background_color": _background_color, "object_background": _object_background,
}
assert tuple(_MAKERS) == ALL_TYPES


# --------------------------------------------------------------------------------------- public API


def item_type(index: int) -> str:
    return QUESTION_TYPES[index % len(QUESTION_TYPES)]


def make_item(split: str, index: int, qtype: str | None = None) -> tuple[Item, Clip]:
    """The item ``index`` of ``split`` and its clip; a pure function of its arguments."""
    if split not in SPLIT_SEEDS:
        raise ValueError(f"unknown split {split!r}; use one of {sorted(SPLIT_SEEDS)}")
    if index < 0:
        raise ValueError(f"index must be >= 0, got {index}")
    qtype = qtype or item_type(index)
    if qtype not in ALL_TYPES:
        raise ValueError(f"unknown question type {qtype!r}; use one of {ALL_TYPES}")
    if qtype in TRAINING_TYPES and split != "train":
        raise ValueError(f"{qtype!r} is a training-only question type; {split!r} holds only {QUESTION_TYPES}")
    seed = [SPLIT_SEEDS[split], index, ALL_TYPES.index(qtype)]
    rng = np.random.default_rng(seed)
    canvas, question, options, answer, meta = _MAKERS[qtype](rng)
    clip = canvas.render()
    if options is None:
        answer_text = answer
    else:
        answer_text = options[OPTION_LETTERS.index(answer)]
    item = Item(id=f"{split}-{index:05d}", split=split, index=index, type=qtype, question=question,
                options=options, answer=answer, answer_text=answer_text, meta=_jsonable(meta))
    return item, clip


# question types whose clip has one target object: the named object of motion_direction, the object of
# the named scene for the scene_object family
TARGET_TYPES = ("motion_direction", "open_motion", "scene_object", "scene_object_color", "object_background")


def target_color(item: Item) -> str:
    """Colour of the one object ``item``'s question is about (only for :data:`TARGET_TYPES`)."""
    if item.type in ("motion_direction", "open_motion"):
        return item.question.split("does the ")[1].split()[0]
    if item.type in TARGET_TYPES:
        return item.meta["objects"][item.meta["scene"]].split()[0]
    raise ValueError(f"no target object for question type {item.type!r}; use one of {TARGET_TYPES}")


def target_tokens(item: Item, clip: Clip) -> np.ndarray:
    """Bool ``[F, 4, 4]``: the visual tokens that show ``item``'s target object (all False without one)."""
    if item.type not in TARGET_TYPES:
        return np.zeros_like(clip.obj_color, dtype=bool)
    return clip.obj_color == 1 + list(OBJECT_COLORS).index(target_color(item))


def _jsonable(meta: dict) -> dict:
    return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in meta.items()}


_WORD = re.compile(r"\w+|[^\w\s]+")


def vocabulary() -> list[str]:
    """Every word and punctuation token the suite's prompts and answers can contain (sorted)."""
    texts = [build_prompt("x", ["x"] * 4), build_prompt("x")]
    texts += list(_Q.values()) + ["first last"]
    texts += list(OBJECT_COLORS) + list(BACKGROUND_COLORS) + list(SHAPES) + list(DIRECTIONS) + list(NUMBERS)
    words = set()
    for t in texts:
        t = re.sub(r"<\|\w+\|>|<video>|\{\w+\}", " ", t)
        words.update(_WORD.findall(t))
    words.discard("x")
    words.update(OPTION_LETTERS)
    return sorted(words)
