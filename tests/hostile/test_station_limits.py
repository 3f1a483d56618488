"""Station and cell values that passed `validate` and failed (or hung) at run time.

Issue 13 §3: unknown driver settings, `speed: 1e-300`, `capacity_ah: 1e-300`; and a
`visa_library: /path/lib.so` that loads native code (Medium).
"""

from __future__ import annotations

import pytest

from labctl.stations.settings import DRIVER_SETTINGS
from tests.support import REPO, json_out, labctl_cmd

QUICKSTART = str(REPO / "procedures" / "quickstart.yaml")
SIM = (REPO / "instruments" / "sim.yaml").read_text()


def _problems(proc):
    assert proc.returncode == 2, proc.stderr
    return json_out(proc)["problems"]


def _station(tmp_path, text):
    path = tmp_path / "st.yaml"
    path.write_text(text)
    return path


def test_unknown_driver_setting_is_refused_at_validate(tmp_path):
    st = _station(tmp_path, "instruments:\n  cycler:\n    driver: sim-cycler\n    noize: 0.1\n")
    (p,) = _problems(labctl_cmd("validate", QUICKSTART, "--station", str(st), "--json"))
    assert p["field"] == "instruments.cycler.noize" and p["line"] == 4
    assert "unknown setting 'noize'" in p["message"] and "noise" in p["message"]


def test_absurd_speed_in_the_station_and_on_the_command_line(tmp_path):
    st = _station(tmp_path, "speed: 1.0e-300\n" + SIM)
    (p,) = _problems(labctl_cmd("validate", QUICKSTART, "--station", str(st), "--json"))
    assert p["field"] == "speed" and p["line"] == 1
    proc = labctl_cmd("run", QUICKSTART, "--speed", "1e-300", "--results", str(tmp_path / "r"),
                      "--no-progress")
    assert proc.returncode == 2 and "--speed" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "r").exists() or not any(p.is_dir() for p in (tmp_path / "r").iterdir())


def test_absurd_capacity_is_refused_at_validate(tmp_path):
    lfp = (REPO / "fixtures" / "cells" / "lfp-2p2ah.yaml").read_text()
    cell = tmp_path / "cell.yaml"
    cell.write_text(lfp.replace("capacity_ah: 2.2", "capacity_ah: 1.0e-300"))
    problems = _problems(labctl_cmd("validate", QUICKSTART, "--cell", str(cell), "--json"))
    assert [p["field"] for p in problems] == ["capacity_ah"]


@pytest.mark.parametrize(("library", "extra", "ok"), [
    ("/tmp/lib.so", "", False),
    ("/tmp/lib.so", "    allow_native_visa_library: true\n", True),
    ("'@py'", "", True),
    ("'@sim'", "", True),
])
def test_visa_library_only_pyvisa_backends_unless_explicit(tmp_path, library, extra, ok):
    st = _station(tmp_path, "instruments:\n  cycler:\n    driver: keithley-2400\n"
                            "    address: GPIB0::24::INSTR\n"
                            f"    visa_library: {library}\n{extra}"
                            "    ranges: {max_current_a: 3, max_voltage_v: 21}\n")
    proc = labctl_cmd("validate", QUICKSTART, "--station", str(st), "--json")
    if ok:
        assert proc.returncode == 0, proc.stdout
    else:
        (p,) = _problems(proc)
        assert p["field"] == "instruments.cycler.visa_library" and "pyvisa backend" in p["message"]


def test_settings_table_matches_the_drivers():
    """The table validate uses repeats the drivers' own sets (kept apart for start-up speed)."""
    from labctl.builtins import abuse, impedance, pybamm_sim
    from labctl.drivers import (
        espec,
        keithley_2281s,
        keithley_smu,
        lcr,
        pressure_serial,
        sim_drivers,
        sim_smu,
        tc_logger,
        thermotron,
    )
    from labctl.drivers.serial_link import SERIAL_SETTINGS
    from labctl.drivers.visa_link import VISA_SETTINGS

    truth = {
        "sim-cycler": sim_drivers._CYCLER_SETTINGS, "sim-chamber": sim_drivers._CHAMBER_SETTINGS,
        "sim-pstat": impedance._PSTAT_SETTINGS, "sim-press": impedance._PRESS_SETTINGS,
        "sim-calorimeter": abuse._SETTINGS, "sim-pybamm": pybamm_sim._SETTINGS,
        "sim-smu": sim_smu.SETTINGS, "keithley-2400": keithley_smu.SMU_SETTINGS,
        "keithley-2450": keithley_smu.SMU_SETTINGS, "keithley-2281s": keithley_2281s.SETTINGS,
        "thermotron-3800": thermotron.SETTINGS, "espec": SERIAL_SETTINGS | {"safe_setpoint_c"},
        "keysight-e4980a": VISA_SETTINGS | {"name", "point_time_s"},
        "agilent-4284a": VISA_SETTINGS | {"name", "point_time_s"},
        "pressure-serial": SERIAL_SETTINGS | {"area_mm2", "max_force_n"},
        "tc-logger": SERIAL_SETTINGS | {"channels", "open_is_error"},
    }
    assert {k: set(v) for k, v in DRIVER_SETTINGS.items()} == {k: set(v) for k, v in truth.items()}
    # the modules that check inline sets really use the ones written above
    for module, text in ((espec, '"safe_setpoint_c"'), (lcr, '"point_time_s"'),
                         (pressure_serial, '"max_force_n"'), (tc_logger, '"open_is_error"')):
        assert text in open(module.__file__).read()
