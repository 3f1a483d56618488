"""yamlio reads every text as PyYAML's pure-Python parser does, LibYAML fast path or not."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import yaml

from labctl import yaml_parse, yamlio
from labctl.errors import ValidationError

REPO = Path(__file__).resolve().parent.parent


def _python_answer(text: str):
    """What loads() gave before the fast path: the pure-Python parser's data and marks,
    or an error."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return "error"
    if node is None:
        return "None", {(): (1, 1)}
    conv = yaml_parse.Converter("f")
    try:
        return repr(conv.convert(node, (), 0)), conv.marks
    except ValidationError:
        return "error"


def _answer(text: str):
    try:
        doc = yamlio.loads(text, "f")
    except ValidationError:
        return "error"
    return repr(doc.data), doc.marks


def _same(text: str) -> bool:
    a, b = _python_answer(text), _answer(text)
    if a == "error" or b == "error":
        return a == b
    return a == b


@pytest.mark.parametrize("path", sorted(p for p in REPO.glob("**/*.yaml")
                                        if ".git" not in p.parts)[:200],
                         ids=lambda p: str(p.relative_to(REPO)))
def test_the_repository_files_read_the_same(path):
    assert _same(path.read_text(encoding="utf-8", errors="replace"))


@pytest.mark.parametrize("text", [
    "a: 1\nb:\n", "a: [1,\n  ]", "x:\n  y:", "a: 'it''s'\nb: \"q\\\"\"", "a: |\n  t\nb: 2",
    "a: \ud800", "a: \x00b", "a:\tb", "\ufeffa: 1", "a: >#c\n  x", "---\na: 1", "? a\n: b",
    "a: !!str 1", "a: &x 1\nb: *x", "- [1, {a: b}]\n- c",
])
def test_edge_cases_read_the_same(text):
    assert _same(text)


def test_random_texts_read_the_same():
    rng = random.Random(16)
    alphabet = list("ab:- \n[]{},#'\"&*!|>%@`012.e+?") + [
        "\r\n", "\u00e9", "null", "true", "0x1F", "1e3", "<<: *a", "&a", "---", "...",
        "\n  ", "\n    - ", "\x85", "\u2028", "\ufeff", "\t", ": ", "\n- ", "|2", ">-"]
    for _ in range(3000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 60)))
        assert _same(text), repr(text)
