"""The batch file format: `parameters` as in procedures (`params` an alias), `bench` per channel."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from labctl.cli import main
from labctl.engine.multi import load_batch, prepare_all
from labctl.errors import ValidationError
from tests.support import REPO

QUICK = REPO / "procedures" / "quickstart.yaml"


def _write(tmp_path, text: str):
    path = tmp_path / "batch.yaml"
    path.write_text(text)
    return path


def test_parameters_and_its_alias_params_reach_the_procedure(tmp_path):
    cycling = REPO / "procedures" / "cycling.yaml"
    path = _write(tmp_path, f"""
channels:
  - {{channel: 1, procedure: {cycling}, parameters: {{n_cycles: 4}}}}
  - {{channel: 2, procedure: {cycling}, params: {{n_cycles: 6}}}}
""")
    jobs = load_batch(path)
    assert [j.params for j in jobs] == [{"n_cycles": "4"}, {"n_cycles": "6"}]
    prepared = prepare_all(jobs)
    assert [p.procedure.parameters["n_cycles"] for p in prepared] == [4, 6]


def test_both_keys_unknown_fields_and_duplicate_channels_are_refused_with_their_line(tmp_path):
    path = _write(tmp_path, f"""
bench: A
benches: [A]
channels:
  - {{channel: 1, procedure: {QUICK}, parameters: {{}}, params: {{}}}}
  - {{channel: 2, procedure: {QUICK}, bench: B}}
  - {{channel: 2, procedure: {QUICK}, bench: B}}
  - {{channel: 2, procedure: {QUICK}}}
""")
    with pytest.raises(ValidationError) as err:
        load_batch(path)
    text = "\n".join(str(p) for p in err.value.problems)
    assert "unknown field 'benches'" in text and "batch.yaml:3" in text
    assert "not both" in text and "batch.yaml:5" in text
    assert "channel 2 of bench B is listed twice" in text and "batch.yaml:7" in text
    assert "batch.yaml:8" not in text  # channel 2 of bench A is another channel


def test_the_shipped_example_batch_files_validate():
    for name, benches in (("batch.yaml", {None}), ("batch-benches.yaml", {"A", "B"})):
        jobs = load_batch(REPO / "procedures" / "examples" / name)
        assert {j.bench for j in jobs} == benches
        assert len(prepare_all(jobs)) == len(jobs)


def test_scheduler_needs_a_bench_for_every_channel(tmp_path):
    path = _write(tmp_path, f"channels:\n  - {{channel: 1, procedure: {QUICK}}}\n")
    res = CliRunner().invoke(main, ["run", "--batch", str(path), "--scheduler",
                                    "tcp://127.0.0.1:9", "--results", str(tmp_path / "r")])
    assert res.exit_code == 2 and "names its bench" in res.output
    assert not (tmp_path / "r").exists()
    res = CliRunner().invoke(main, ["run", str(QUICK), "--scheduler", "tcp://127.0.0.1:9"])
    assert res.exit_code == 2 and "--batch" in res.output
