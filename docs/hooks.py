"""mkdocs hooks for the prunekit site (declared under ``hooks:`` in ``mkdocs.yml``).

The strategy catalogue (``docs/strategies.md``) is generated from prunekit's registry at build
time, so it cannot drift from the code: the page holds the placeholder `PLACEHOLDER`, which
`on_page_markdown` replaces with one section per registered stage and preset. Only the built-in
plugins are listed (third-party plugins installed in the building environment are ignored), so
the site is the same wherever it is built.
"""

from __future__ import annotations

import inspect
import os
import re
import typing
from typing import Any

from mkdocs.exceptions import PluginError

PLACEHOLDER = "<!-- prunekit:catalogue -->"
CATALOGUE_PAGE = "strategies.md"

# kind -> (section title, one sentence on what the kind does); presets first, then pipeline order
SECTIONS = {
    "preset": ("Presets", "Named, complete pipelines: `prunekit.apply(model, NAME)`."),
    "encoder": ("Encoder stages",
                "Drop and fold whole frames inside the vision tower ([encoder level](encoder-level.md))."),
    "segmenter": ("Segmenters", "Split the frames into contiguous temporal segments."),
    "merger": ("Token mergers", "Fold redundant tokens into kept ones before the LLM (layer 0 only)."),
    "allocator": ("Budget allocators", "Split a stage's keep count across segments, summing exactly."),
    "frame_selector": ("Frame selectors", "Choose the surviving tokens inside one segment (all its frames)."),
    "layer_scheduler": ("Layer schedulers", "Decide where pruning happens and how many tokens each stage keeps."),
}
STAGE_FIELDS = ("encoder", "segmenter", "merger", "allocator", "selector", "scheduler")
FIELD_KIND = {
    "encoder": "encoder",
    "segmenter": "segmenter",
    "merger": "merger",
    "allocator": "allocator",
    "selector": "frame_selector",
    "scheduler": "layer_scheduler",
}
# the reference shape of the preset table: LLaVA-OV-7B, 32 frames x 196 tokens, Qwen2-7B (28 layers)
REF_VISUAL, REF_LAYERS = 32 * 196, 28


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any, **kwargs: Any) -> str:
    """Fill the catalogue page's placeholder; leave every other page alone."""
    if page.file.src_uri != CATALOGUE_PAGE:
        return markdown
    if PLACEHOLDER not in markdown:
        raise PluginError(f"docs/{CATALOGUE_PAGE} lost its placeholder {PLACEHOLDER!r}; the catalogue has no place.")
    return markdown.replace(PLACEHOLDER, render_catalogue())


# -- the registry ---------------------------------------------------------------------------------


def builtin_entries() -> list[Any]:
    """Registry entries of the built-in plugins, from `prunekit.list_strategies` (adapters excluded)."""
    import prunekit
    from prunekit.plugins import DISABLE_ENV, get_registry, reload_plugins

    previous = os.environ.get(DISABLE_ENV)
    os.environ[DISABLE_ENV] = "1"
    try:
        reload_plugins()
        registry = get_registry()
        entries = [registry.entry(kind, name) for kind, name, _ in prunekit.list_strategies()]
    finally:
        if previous is None:
            os.environ.pop(DISABLE_ENV, None)
        else:
            os.environ[DISABLE_ENV] = previous
        reload_plugins()
    return entries


def anchor(kind: str, name: str) -> str:
    """The heading id of an entry, e.g. ``frame_selector-dpp`` (other pages link to these)."""
    return f"{kind}-{re.sub(r'[^a-z0-9_-]+', '-', name.lower())}"


# -- rendering ------------------------------------------------------------------------------------


def render_catalogue() -> str:
    """Markdown of the whole catalogue: an index table, then one section per kind."""
    entries = builtin_entries()
    by_kind: dict[str, list[Any]] = {kind: [] for kind in SECTIONS}
    for entry in entries:
        by_kind.setdefault(entry.kind, []).append(entry)
    parts = [_index(by_kind)]
    for kind, (title, blurb) in SECTIONS.items():
        if not by_kind.get(kind):
            continue
        parts.append(f"## {title} {{#{kind}s}}\n\n{blurb}\n")
        render = _preset if kind == "preset" else _stage
        parts.extend(render(entry) for entry in by_kind[kind])
    return "\n".join(parts)


def _index(by_kind: dict[str, list[Any]]) -> str:
    count = sum(len(v) for v in by_kind.values())
    rows = ["| kind | name | summary |", "|---|---|---|"]
    for kind in SECTIONS:
        for entry in by_kind.get(kind, []):
            summary = _cell(_summary(entry))
            rows.append(f"| {kind} | [`{entry.name}`](#{anchor(kind, entry.name)}) | {summary} |")
    return f"{count} entries are registered by the built-in plugins.\n\n" + "\n".join(rows) + "\n"


def _stage(entry: Any) -> str:
    cls = entry.obj
    lines = [f"### `{entry.name}` {{#{anchor(entry.kind, entry.name)}}}", ""]
    facts = [
        f"{entry.kind.replace('_', ' ')}",
        f"class `{cls.__module__}.{cls.__qualname__}`",
        f"source `{entry.source}`",
    ]
    needs = _needs_relevance(cls)
    if needs is not None:
        facts.append("reads last-query attention" if needs else "does not read attention")
    lines += [" · ".join(facts), "", _docstring(cls), ""]
    fields = [(n, f) for n, f in cls.Config.model_fields.items() if n != "name"]
    if fields:
        columns = ["config field", "type", "default"]
        constrained = any(_constraints(field) for _, field in fields)
        described = any(field.description for _, field in fields)
        columns += ["constraint"] * constrained + ["description"] * described
        lines += ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        for name, field in fields:
            cells = [f"`{name}`", _code(_type_name(field.annotation)), _code(_value(field.default))]
            cells += [_cell(_constraints(field))] * constrained + [_cell(field.description or "")] * described
            lines.append("| " + " | ".join(cells) + " |")
    else:
        lines.append("No parameters besides `name`.")
    return "\n".join(lines) + "\n"


def _preset(entry: Any) -> str:
    config = entry.obj()
    lines = [f"### `{entry.name}` {{#{anchor('preset', entry.name)}}}", ""]
    summary = _summary(entry)
    if summary and not config.description.startswith(summary.rstrip(".")):
        lines += [f"*{summary}*", ""]
    if config.description:
        lines += [config.description, ""]
    if config.citation:
        lines += [f"**Source:** {config.citation}", ""]
    lines += ["| part | configuration |", "|---|---|"]
    for field in STAGE_FIELDS:
        stage = getattr(config, field)
        if stage is None:
            continue
        params = {k: v for k, v in stage.model_dump().items() if k != "name"}
        shown = ", ".join(f"{k}={_value(v)}" for k, v in params.items())
        link = f"[`{stage.name}`](#{anchor(FIELD_KIND[field], stage.name)})"
        lines.append(f"| {field} | {link}" + (f" {_code(shown)}" if shown else "") + " |")
    budget = config.budget
    lines.append(
        "| budget | "
        + (
            f"`Budget(retain={budget.retain:g}, mode={budget.mode!r})`"
            if budget
            else "none: the scheduler's published fractions"
        )
        + " |"
    )
    lines.append(f"| planned at N={REF_VISUAL}, L={REF_LAYERS} | {_cell(_planned(entry.name))} |")
    return "\n".join(lines) + "\n"


def _planned(name: str) -> str:
    """Stages and realized retention of a preset at the reference shape (one segment assumed)."""
    from prunekit.budget import realized_retention
    from prunekit.pipeline import Pipeline

    pipeline = Pipeline.from_preset(name)
    stages = [s for s in pipeline.scheduler.plan(REF_VISUAL, REF_LAYERS, pipeline.budget) if s.keep < REF_VISUAL]
    if not stages:
        return "no stage: nothing is pruned"
    retention = realized_retention(stages, REF_VISUAL, REF_LAYERS)
    plan = ", ".join(f"layer {s.layer}: {s.keep}" for s in stages)
    return f"{plan}; input retention {retention['input']:.1%}, layer-average {retention['layer_average']:.1%}"


# -- small helpers --------------------------------------------------------------------------------


def _summary(entry: Any) -> str:
    """The registered description, else the docstring's first sentence, else (for a preset) the
    description of the config it builds: the same rule as ``prunekit strategies``."""
    doc = inspect.getdoc(entry.obj) or ""
    text = entry.description
    if not text or doc.startswith(text):
        paragraph = " ".join(_first_paragraph(doc).split())
        text = paragraph.split(". ")[0].rstrip(".:") + "." if paragraph else ""
    if not text and entry.kind == "preset":
        text = _first_paragraph(entry.obj().description)
    return " ".join(text.split())


def _docstring(obj: Any) -> str:
    doc = inspect.getdoc(obj) or "*(no docstring)*"
    return doc


def _first_paragraph(text: str) -> str:
    return text.split("\n\n")[0]


def _needs_relevance(cls: Any) -> bool | None:
    if "needs_relevance" not in dir(cls):
        return None
    try:
        return bool(cls().needs_relevance)
    except Exception:  # a stage whose defaults do not instantiate: say nothing rather than guess
        return None


def _type_name(annotation: Any) -> str:
    if typing.get_origin(annotation) is typing.Literal:
        return "Literal[" + ", ".join(repr(a) for a in typing.get_args(annotation)) + "]"
    text = annotation.__name__ if isinstance(annotation, type) and not typing.get_args(annotation) else str(annotation)
    return text.replace("typing.", "")


def _value(value: Any) -> str:
    """A config value as it reads in YAML/JSON terms: lists for tuples, floats to 6 digits."""
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    return repr(value)


def _constraints(field: Any) -> str:
    symbols = {"ge": "≥", "gt": ">", "le": "≤", "lt": "<"}
    parts = []
    for meta in field.metadata:
        for attr, symbol in symbols.items():
            value = getattr(meta, attr, None)
            if value is not None:
                parts.append(f"{symbol} {value:g}" if isinstance(value, float) else f"{symbol} {value}")
    return ", ".join(parts)


def _code(text: str) -> str:
    """An inline code span that is safe inside a table cell."""
    return "<code>" + _escape(text).replace("|", "&#124;") + "</code>"


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")
