"""The documentation: the site builds with ``mkdocs build --strict``, and its Python examples run.

Every fenced ``python`` block in ``docs/**/*.md`` and ``README.md`` is executed, in page order,
blocks of one page sharing a namespace (a page may build on its earlier blocks). Two kinds of
block are not run:

* a block right after an HTML comment ``<!-- skip-test -->`` (it needs a real checkpoint or a
  GPU; keep these rare — runnable examples use ``prunekit.adapters.random_models``'s tiny random models);
* a block that only includes a file with ``--8<--`` (pymdownx.snippets): the included file is
  tested where it lives (e.g. ``tests/plugin_example``).

Examples run in a temporary working directory, with the example plugin's sources importable
(``tests/plugin_example/src``), as a reader who followed the plugin page would have them.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import traceback
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PLUGIN_SRC = ROOT / "tests" / "plugin_example" / "src"
SKIP_MARK = "<!-- skip-test -->"
OPENING = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^`]*)$")
MAX_LINE = 84  # characters of code visible in the site's content column without scrolling


@dataclass(frozen=True)
class CodeBlock:
    """One fenced block: where it starts (1-based line of the fence), its language and code."""

    path: Path
    line: int
    language: str
    code: str
    skip: bool

    @property
    def included(self) -> bool:
        """The block only pulls in files through pymdownx.snippets."""
        lines = [line for line in self.code.splitlines() if line.strip()]
        return bool(lines) and all(line.strip().startswith("--8<--") for line in lines)

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def code_blocks(path: Path) -> list[CodeBlock]:
    """Every fenced block of a markdown file (fences of backticks or tildes, possibly indented)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks, index = [], 0
    while index < len(lines):
        opening = OPENING.match(lines[index])
        if not opening:
            index += 1
            continue
        fence = opening["fence"]
        closing = re.compile(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$")
        end = index + 1
        while end < len(lines) and not closing.match(lines[end]):
            end += 1
        info = opening["info"].strip().lstrip("{").lstrip(".")
        language = info.split()[0].lower() if info else ""
        previous = next((lines[i].strip() for i in range(index - 1, -1, -1) if lines[i].strip()), "")
        code = textwrap.dedent("\n".join(lines[index + 1:end]))
        blocks.append(CodeBlock(path, index + 1, language, code, previous == SKIP_MARK))
        index = end + 1
    return blocks


def python_blocks(path: Path) -> list[CodeBlock]:
    """The fenced ``python`` blocks of a page."""
    return [b for b in code_blocks(path) if b.language in ("python", "py", "python3")]


def documentation_pages() -> list[Path]:
    """Markdown pages of the site, and the README."""
    return sorted(DOCS.rglob("*.md")) + [ROOT / "README.md"]


PAGES_WITH_PYTHON = [p for p in documentation_pages() if python_blocks(p)]


def test_the_collector_sees_skip_marks_includes_and_indented_fences(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "Text\n\n```python\nx = 1\n```\n\n<!-- skip-test -->\n```python title=\"real.py\"\nload_checkpoint()\n```\n\n"
        "```python\n--8<-- \"some/file.py\"\n```\n\n"
        "!!! note\n    ```python\n    y = 2\n    ```\n\n```bash\nls\n```\n")
    blocks = python_blocks(page)
    assert [(b.line, b.skip, b.included, b.code) for b in blocks] == [
        (3, False, False, "x = 1"),
        (8, True, False, "load_checkpoint()"),
        (12, False, True, '--8<-- "some/file.py"'),
        (17, False, False, "y = 2"),
    ]


@pytest.mark.parametrize("page", PAGES_WITH_PYTHON, ids=lambda p: str(p.relative_to(ROOT)))
def test_python_examples_run(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every runnable ``python`` block of the page executes without error, in page order."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(PLUGIN_SRC))
    namespace: dict[str, object] = {"__name__": f"docs_example_{page.stem.replace('-', '_')}"}
    ran = 0
    for block in python_blocks(page):
        if block.skip or block.included:
            continue
        try:
            exec(compile(block.code, block.where, "exec"), namespace)
        except Exception:
            pytest.fail(f"the example at {block.where} failed:\n{block.code}\n\n{traceback.format_exc()}")
        ran += 1
    if ran == 0:
        pytest.skip(f"{page.relative_to(ROOT)} has only skipped or included python blocks")


def test_skipped_examples_are_rare() -> None:
    """Examples marked ``<!-- skip-test -->`` (real checkpoints, GPUs) stay the exception."""
    blocks = [b for p in documentation_pages() for b in python_blocks(p)]
    skipped = [b.where for b in blocks if b.skip]
    assert len(skipped) <= max(2, len(blocks) // 5), f"too many untested examples: {skipped}"


@pytest.mark.parametrize("page", sorted(DOCS.rglob("*.md")), ids=lambda p: str(p.relative_to(ROOT)))
def test_python_examples_fit_the_page(page: Path) -> None:
    """Python examples written in the docs fit the site's content column (no sideways scrolling)."""
    long = [f"{b.where}+{i}: {len(line)} characters" for b in python_blocks(page) if not b.included
            for i, line in enumerate(b.code.splitlines(), start=1) if len(line) > MAX_LINE]
    assert not long, "shorten these lines:\n" + "\n".join(long)


def test_site_builds_strictly(tmp_path: Path, builtin_plugins_only) -> None:  # noqa: ANN001
    """``mkdocs build --strict`` succeeds (any warning fails it), and the strategy catalogue that
    the docs hook generates lists every built-in stage and preset under its anchor."""
    for module, what in (("mkdocs", "mkdocs"), ("material", "mkdocs-material"),
                         ("mkdocstrings_handlers.python", "mkdocstrings[python]")):
        pytest.importorskip(module, reason=f"{what} is not installed; pip install -e '.[docs]' to build the site")
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}  # silence mkdocs-material's banner
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
                          cwd=ROOT, capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout}\n{proc.stderr}"
    catalogue = (site / "strategies" / "index.html").read_text(encoding="utf-8")
    assert "prunekit:catalogue" not in catalogue, "the catalogue placeholder was not replaced"
    for entry in builtin_plugins_only.entries():
        if entry.kind == "adapter":
            continue
        anchor = f"{entry.kind}-{re.sub(r'[^a-z0-9_-]+', '-', entry.name.lower())}"
        assert f'id="{anchor}"' in catalogue, f"{entry.kind} {entry.name!r} is missing from the catalogue"
