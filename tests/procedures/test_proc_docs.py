"""The YAML examples in docs/procedures.md compile (docs that cannot rot silently)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from labctl.procedures import load_procedure

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "procedures.md"


def yaml_blocks() -> list[str]:
    blocks = re.findall(r"```yaml\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)
    return [b for b in blocks if b.lstrip().startswith(("name:", "steps:", "- ", "parameters:"))]


@pytest.mark.parametrize("index", range(len(yaml_blocks())))
def test_doc_example_compiles(index, tmp_path, lfp, bench_chamber):
    text = yaml_blocks()[index]
    if text.lstrip().startswith("- "):  # a fragment of a steps list
        text = "steps:\n" + "".join("  " + line + "\n" for line in text.splitlines())
    elif "steps:" not in text:  # a parameters block
        text += "steps: [Rest for 1 s]\n"
    for where in (tmp_path, tmp_path / "lib"):
        where.mkdir(exist_ok=True)
        shutil.copy(REPO / "procedures" / "capacity.yaml", where / "capacity.yaml")
    path = tmp_path / "example.yaml"
    path.write_text(text, encoding="utf-8")
    proc = load_procedure(path, cell=lfp, station=bench_chamber)
    assert next(proc.plan()) is not None
