"""The plugin step-type API end to end: a lab's own step type, compiled, checked, run, recorded."""

from __future__ import annotations

import textwrap

import pytest

from labctl.engine.session import prepare, start_run
from labctl.errors import ValidationError
from labctl.store.run import open_run
from tests.support import REPO

PLUGIN = '''
from dataclasses import dataclass, field
from labctl.capabilities.cycler import EndKind, StepEnd
from labctl.capabilities.steps import SourceRef
from labctl.plugins import StepTypeInfo, hookimpl
from labctl.units import TIME, VOLTAGE


@dataclass(frozen=True)
class Probe:
    """Wait a while on the cycler, then record the voltage twice."""
    wait_s: float
    max_voltage_v: float
    text: str = "probe"
    source: SourceRef = field(default_factory=SourceRef)
    kind: str = "probe"
    roles: tuple = ("cycler",)

    def check(self, checker):
        if self.max_voltage_v > checker.cell.limits.max_voltage_v:
            checker.add(f"max_voltage {self.max_voltage_v:g} V is above the cell's "
                        f"{checker.cell.limits.max_voltage_v:g} V")

    def execute(self, run):
        end = run.wait(self.wait_s)
        if end.kind is not EndKind.TIME:
            return end
        v = run.last_sample()["voltage_v"]
        run.record("probes", {"voltage_v": [v, v], "which": ["a", "b"]})
        return StepEnd(EndKind.CONDITION, f"probed {v:.3f} V")


def compile_probe(spec):
    if not spec.mapping(("wait", "max_voltage"), required=("wait",)):
        return None
    wait = spec.quantity("wait", TIME, positive=True)
    vmax = spec.quantity("max_voltage", VOLTAGE, default=3.0)
    if not spec.ok:
        return None
    return Probe(wait, vmax, text=f"probe after {wait:g} s", source=spec.source())


@hookimpl
def labctl_step_types():
    return [StepTypeInfo("probe", "test probe", compile=compile_probe)]
'''


@pytest.fixture
def station(tmp_path):
    (tmp_path / "probe_plugin.py").write_text(PLUGIN)
    path = tmp_path / "station.yaml"
    path.write_text("plugins: [probe_plugin.py]\n" + (REPO / "instruments" / "sim.yaml").read_text())
    return path


def _proc(tmp_path, body: str):
    p = tmp_path / "proc.yaml"
    p.write_text(textwrap.dedent(body))
    return p


def test_plugin_step_runs_and_records(tmp_path, station):
    proc = _proc(tmp_path, """
        steps:
          - Discharge at 1C for 60 s
          - probe: {wait: 2 min}
          - Rest for 10 s
    """)
    prep = prepare(proc, station_path=station)
    out = start_run(prep, results_root=tmp_path / "results")
    assert out.status == "completed", out.reason
    run = open_run(out.path)
    steps = run.steps
    probe = steps[steps.kind == "probe"].iloc[0]
    assert probe.duration_s == pytest.approx(120, abs=1.5)
    assert probe.end_reason.startswith("probed")
    rec = run.records("probes")
    assert list(rec.which) == ["a", "b"]
    assert (rec.step_index == probe.step_index).all()
    # the recorded voltage is the last sample of the rest inside the step
    ts = run.timeseries
    last = ts[ts.step_index == probe.step_index].voltage_v.iloc[-1]
    assert rec.voltage_v.iloc[0] == pytest.approx(last)
    # the cell relaxes upwards after a discharge: the rest samples show it
    assert last > ts[ts.step_index == probe.step_index].voltage_v.iloc[0]
    assert "probes" in run.record_tables()


def test_plugin_step_problems_are_located(tmp_path, station):
    proc = _proc(tmp_path, """
        steps:
          - probe: {wait: -5 s, colour: red}
          - probe: {wait: 1 min, max_voltage: 9 V}
    """)
    with pytest.raises(ValidationError) as info:
        prepare(proc, station_path=station)
    text = "\n".join(str(p) for p in info.value.problems)
    assert "colour" in text and "wait must be greater than zero" in text
    assert "above the cell's" in text
    lines = {p.line for p in info.value.problems}
    assert lines == {3, 4}


def test_unknown_structured_step_lists_plugin_keywords(tmp_path, station):
    proc = _proc(tmp_path, """
        steps:
          - wobble: {x: 1}
    """)
    with pytest.raises(ValidationError) as info:
        prepare(proc, station_path=station)
    assert "probe" in str(info.value.problems[0])
