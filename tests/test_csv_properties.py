"""Hostile CSV imports: cell-table CSVs and impedance spectrum files.

Any bytes give either a valid result or a clear LabctlError naming the file,
never a traceback, a hang or a half-built object.
"""

from __future__ import annotations

import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labctl.analysis.eis.io import read_spectrum
from labctl.cells import load_cell
from labctl.errors import LabctlError

SETTINGS = settings(max_examples=120, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])

CELL = """\
name: CSV cell
chemistry: LFP
capacity_ah: 2.2
nominal_voltage_v: 3.2
limits: {max_voltage_v: 3.65, min_voltage_v: 2.5, max_charge_current_a: 2.2,
         max_discharge_current_a: 6.6, max_temperature_c: 60, min_temperature_c: -20}
model:
  ocv_v: {csv: table.csv, column: ocv_v}
  r0_ohm: 0.02
  rc_pairs: [{r_ohm: 0.01, tau_s: 30}]
  thermal: {heat_capacity_j_per_k: 90.0, heat_transfer_w_per_k: 0.12}
"""

numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.integers(-10**40, 10**40),
    st.sampled_from(["", "nan", "inf", "-inf", "1e400", "0x10", "1,5", "３.３", "—", "3.3V"]),
)
cells = st.one_of(numbers.map(str), st.text(max_size=12))
headers = st.lists(st.sampled_from(["soc", "temperature_c", "ocv_v", "SOC", "", "ocv", "x",
                                    "soc ", "\ufeffsoc", "ocv_v,ocv_v"]), min_size=0, max_size=4)


def _csv(header: list[str], rows: list[list[str]], sep: str) -> str:
    lines = [sep.join(header)] + [sep.join(r) for r in rows]
    return "\n".join(lines)


@SETTINGS
@given(header=headers, rows=st.lists(st.lists(cells, max_size=4), max_size=8),
       sep=st.sampled_from([",", ";", "\t"]))
def test_cell_table_csv_loads_or_explains(tmp_path_factory, header, rows, sep):
    folder = tmp_path_factory.mktemp("cellcsv")
    (folder / "table.csv").write_text(_csv(header, rows, sep), encoding="utf-8")
    (folder / "cell.yaml").write_text(CELL)
    try:
        cell = load_cell(folder / "cell.yaml")
    except LabctlError as exc:
        assert "table.csv" in str(exc) or "cell.yaml" in str(exc)
        return
    table = cell.model.ocv_v
    soc = [float(x) for x in table.soc]
    assert all(math.isfinite(x) for x in soc)
    assert soc == sorted(soc) and len(set(soc)) == len(soc)


@SETTINGS
@given(data=st.binary(max_size=300))
def test_cell_table_csv_random_bytes(tmp_path_factory, data):
    folder = tmp_path_factory.mktemp("cellbytes")
    (folder / "table.csv").write_bytes(data)
    (folder / "cell.yaml").write_text(CELL)
    try:
        load_cell(folder / "cell.yaml")
    except LabctlError as exc:
        assert "table.csv" in str(exc)


spectrum_headers = st.lists(st.sampled_from(["freq/Hz", "Re(Z)/Ohm", "-Im(Z)/Ohm", "frequency_hz",
                                             "z_real_ohm", "z_imag_ohm", "Z'", "Z''", "", "foo"]),
                            max_size=4)


@SETTINGS
@given(header=spectrum_headers, rows=st.lists(st.lists(cells, max_size=4), max_size=10),
       sep=st.sampled_from([",", ";", "\t", " "]))
def test_spectrum_files_read_or_explain(tmp_path_factory, header, rows, sep):
    path = tmp_path_factory.mktemp("spec") / "spectrum.csv"
    path.write_text(_csv(header, rows, sep), encoding="utf-8")
    try:
        spectrum = read_spectrum(path)
    except LabctlError as exc:
        assert "spectrum.csv" in str(exc)
        return
    f = spectrum.frequency_hz
    assert len(f) >= 1 and len(f) == len(spectrum.z_real_ohm) == len(spectrum.z_imag_ohm)
    assert all(math.isfinite(x) and x > 0 for x in f)


@SETTINGS
@given(data=st.binary(max_size=400))
def test_spectrum_random_bytes(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("specbytes") / "spectrum.txt"
    path.write_bytes(data)
    try:
        read_spectrum(path)
    except LabctlError as exc:
        assert "spectrum.txt" in str(exc)


def test_a_good_cell_csv_and_a_good_spectrum_load(tmp_path):
    # The properties above must not pass only because everything is refused.
    (tmp_path / "table.csv").write_text("soc,ocv_v\n0,2.5\n0.5,3.3\n1,3.6\n")
    (tmp_path / "cell.yaml").write_text(CELL)
    cell = load_cell(tmp_path / "cell.yaml")
    assert list(cell.model.ocv_v.soc) == [0, 0.5, 1]
    assert list(cell.model.ocv_v.values) == [2.5, 3.3, 3.6]
    path = tmp_path / "s.csv"
    path.write_text("frequency_hz,z_real_ohm,z_imag_ohm\n1000,0.1,-0.01\n1,0.2,-0.05\n")
    spectrum = read_spectrum(path)
    assert list(spectrum.frequency_hz) == [1000, 1]
    assert list(spectrum.z_real_ohm) == [0.1, 0.2]
