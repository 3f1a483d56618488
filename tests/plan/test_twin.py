"""The twin of a station: simulators of the cell file's model in every role, the station's
own ranges kept (compared with the station files' text), noise off."""

from __future__ import annotations

import yaml

from labctl.plan.twin import twin_spec
from labctl.stations.load import load_station
from tests.support import REPO


def _file(name: str) -> dict:
    return yaml.safe_load((REPO / "instruments" / name).read_text())["instruments"]


def test_a_real_cycler_becomes_the_simulated_channel_with_its_ranges():
    spec = twin_spec(load_station(REPO / "instruments" / "example-keithley-sim.yaml"))
    cycler = spec.instruments["cycler"]
    assert cycler.driver == "sim-cycler"
    ranges = _file("example-keithley-sim.yaml")["cycler"]["ranges"]
    assert cycler.ranges == {k: float(v) for k, v in ranges.items()}
    assert "address" not in cycler.settings and "visa_library" not in cycler.settings
    assert spec.clock == "virtual" and spec.speed is None


def test_pybamm_is_replaced_by_the_cell_file_model_from_the_same_state():
    spec = twin_spec(load_station(REPO / "instruments" / "sim-pybamm.yaml"))
    cycler = spec.instruments["cycler"]
    raw = _file("sim-pybamm.yaml")["cycler"]
    assert cycler.driver == "sim-cycler"
    assert cycler.settings == {"initial_soc": raw["initial_soc"]}
    assert cycler.ranges["max_current_a"] == raw["ranges"]["max_current_a"]


def test_simulators_of_the_cell_file_stay_but_lose_their_noise():
    spec = twin_spec(load_station(REPO / "instruments" / "sim.yaml"))
    raw = _file("sim.yaml")
    cycler = spec.instruments["cycler"]
    assert cycler.driver == "sim-cycler" and "noise" not in cycler.settings
    assert "resolution" not in cycler.settings and cycler.settings["seed"] == raw["cycler"]["seed"]
    assert spec.instruments["pstat"].driver == "sim-pstat"
    assert "noise" not in spec.instruments["pstat"].settings
    abuse = twin_spec(load_station(REPO / "instruments" / "sim-abuse.yaml"))
    assert abuse.instruments["chamber"].driver == _file("sim-abuse.yaml")["chamber"]["driver"]
