"""``docs/plugins.md`` quotes the example distribution: every code block whose header names a file
(```` ```python file=plugins/example/... ````) must be a verbatim part of that file (possibly
dedented), and the appendix must reproduce every source file of the example whole. A change to
the example that the page does not follow fails here."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
DOC = ROOT / "docs" / "plugins.md"
EXAMPLE = ROOT / "plugins" / "example"
FENCE = re.compile(r"^( *)```\w+ file=(\S+)\n(.*?)^\1```$", re.MULTILINE | re.DOTALL)


def quotes() -> list[tuple[str, list[str]]]:
    """(path, lines) of every block that names a file (a block inside a list item is indented)."""
    return [(path, [line.removeprefix(indent) for line in body.splitlines()])
            for indent, path, body in FENCE.findall(DOC.read_text())]


def is_part_of(block: list[str], lines: list[str]) -> bool:
    """Whether ``block`` equals consecutive lines of ``lines`` with one common indentation."""
    for start in range(len(lines) - len(block) + 1):
        first = lines[start]
        if not first.endswith(block[0]) or first[: len(first) - len(block[0])].strip():
            continue
        indent = first[: len(first) - len(block[0])]
        if all((line == indent + quoted) or (not line.strip() and not quoted.strip())
               for line, quoted in zip(lines[start:start + len(block)], block, strict=True)):
            return True
    return False


def test_the_page_quotes_the_example_at_all() -> None:
    assert len(quotes()) >= 10


@pytest.mark.parametrize("index", range(len(quotes())))
def test_each_quoted_block_is_verbatim_from_its_file(index: int) -> None:
    path, block = quotes()[index]
    source = ROOT / path
    assert source.is_file(), f"docs/plugins.md quotes {path}, which does not exist"
    assert block and is_part_of(block, source.read_text().splitlines()), \
        f"block {index} of docs/plugins.md is no longer a part of {path}: update the page"


def test_the_appendix_reproduces_every_example_file_whole() -> None:
    whole = {path for path, block in quotes()
             if block == (ROOT / path).read_text().splitlines()}
    files = [p for p in (EXAMPLE / "rlplug_example").rglob("*")
             if p.suffix in (".py", ".yaml") and p.name != "__init__.py"]
    files.append(EXAMPLE / "pyproject.toml")
    missing = sorted(str(p.relative_to(ROOT)) for p in files
                     if str(p.relative_to(ROOT)) not in whole)
    assert not missing, f"docs/plugins.md does not reproduce these files whole: {missing}"
