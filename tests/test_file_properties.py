"""Hostile and broken station and cell files: a result or a clear error, never a traceback."""

from __future__ import annotations

import string

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labctl.cells import load_cell
from labctl.errors import ValidationError
from labctl.stations.load import load_station
from labctl.yamlio import loads

SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-10**30, 10**30),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=40),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=5),
                            st.dictionaries(st.text(string.ascii_letters + "_", max_size=12),
                                            inner, max_size=5)),
    max_leaves=30,
)
cell_keys = st.sampled_from(["name", "chemistry", "capacity_ah", "nominal_voltage_v", "limits",
                             "model", "max_voltage_v", "ocv_v", "r0_ohm", "rc_pairs", "soc",
                             "values", "csv", "column", "thermal", "nonsense"])
station_keys = st.sampled_from(["name", "clock", "speed", "instruments", "cycler", "chamber",
                                "driver", "ranges", "max_current_a", "calibration_due", "toaster"])


def _structured(keys):
    return st.recursive(
        scalars,
        lambda inner: st.one_of(st.lists(inner, max_size=4),
                                st.dictionaries(keys, inner, max_size=6)),
        max_leaves=25,
    )


def _dump(data) -> str:
    return yaml.safe_dump(data, allow_unicode=True)


@SETTINGS
@given(st.text(max_size=400))
def test_any_text_is_yaml_or_a_located_error(text):
    try:
        loads(text, "fuzz.yaml")
    except ValidationError as exc:
        assert exc.problems and exc.problems[0].file == "fuzz.yaml"


@SETTINGS
@given(_structured(cell_keys))
def test_cell_files_load_or_explain(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("cells") / "cell.yaml"
    path.write_text(_dump(data))
    try:
        cell = load_cell(path)
    except ValidationError as exc:
        assert all(p.file for p in exc.problems) and all(p.message for p in exc.problems)
    else:  # anything accepted must be a usable cell
        assert cell.capacity_ah > 0 and cell.limits.max_voltage_v > cell.limits.min_voltage_v


@SETTINGS
@given(_structured(station_keys))
def test_station_files_load_or_explain(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("stations") / "station.yaml"
    path.write_text(_dump(data))
    try:
        station = load_station(path)
    except ValidationError as exc:
        assert all(p.message for p in exc.problems)
    else:
        assert station.instruments


def test_alias_bomb_is_refused_quickly(tmp_path):
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + k)}: &{chr(98 + k)} [*{chr(97 + k)}, *{chr(97 + k)}, *{chr(97 + k)}, "
        f"*{chr(97 + k)}, *{chr(97 + k)}, *{chr(97 + k)}, *{chr(97 + k)}, *{chr(97 + k)}]\n"
        for k in range(9))
    path = tmp_path / "bomb.yaml"
    path.write_text(bomb)
    try:
        load_station(path)
    except ValidationError as exc:
        assert "too large" in str(exc)
    else:
        raise AssertionError("an alias bomb was accepted")


def test_deep_nesting_is_refused(tmp_path):
    path = tmp_path / "deep.yaml"
    path.write_text("a: " + "[" * 500 + "]" * 500 + "\n")
    try:
        load_cell(path)
    except ValidationError as exc:
        assert "nesting" in str(exc) or "deep" in str(exc)
    else:
        raise AssertionError("500 levels of nesting were accepted")
