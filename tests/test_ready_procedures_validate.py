"""Every ready procedure file in procedures/ validates on the station and cell it is made for.

A ready file that no longer validates (a renamed parameter, a step type whose
settings changed) would only be noticed by a technician at the bench; this
catches it. New files must be listed here with their station and cell.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from labctl.engine.session import prepare
from tests.support import REPO

PROCEDURES = REPO / "procedures"
SIM = None  # the default station, instruments/sim.yaml
ABUSE = "instruments/sim-abuse.yaml"
BMS = "instruments/sim-bms.yaml"
BMS_OTHER = "instruments/sim-bms-other.yaml"
BMS_VEHICLE = "instruments/sim-bms-vehicle.yaml"  # pack-level values only

# file -> [(station, cell), ...]
TARGETS: dict[str, list[tuple[str | None, str | None]]] = {
    "quickstart.yaml": [(SIM, None), (SIM, "nmc-1p95ah"), (SIM, "lto-1p8ah")],
    "capacity.yaml": [(SIM, None), (SIM, "nmc-1p95ah")],
    "cycling.yaml": [(SIM, None), (SIM, "nmc-1p95ah")],
    "cycle-life.yaml": [(SIM, None), (SIM, "nmc-1p95ah")],
    "cycle-life-eis.yaml": [(SIM, "ssb-eis")],
    "rate-capability.yaml": [(SIM, None)],
    "pseudo-ocv.yaml": [(SIM, None), (SIM, "nmc-1p95ah")],
    "gitt.yaml": [(SIM, None), (SIM, "nmc-1p95ah")],
    "hppc.yaml": [(SIM, None), (SIM, "nmc-1p95ah")],
    "hppc-temperatures.yaml": [(SIM, "nmc-1p95ah")],
    "drive-cycle.yaml": [(SIM, None), (SIM, "nmc-1p95ah")],
    "eis.yaml": [(SIM, None), (SIM, "ssb-bulk")],
    "eis-vs-soc.yaml": [(SIM, None)],
    "eis-vs-soc-at-temperature.yaml": [(SIM, "ssb-eis")],
    "eis-vs-pressure.yaml": [(SIM, "ssb-bulk")],
    "conductivity-vs-temperature.yaml": [(SIM, "llzo-pellet")],
    "dsc-ramp.yaml": [(ABUSE, "nmc-1p95ah")],
    "arc-hws.yaml": [(ABUSE, "nmc-1p95ah")],
    "overcharge.yaml": [(ABUSE, "nmc-1p95ah")],
    "bms/protection.yaml": [(BMS, None), (BMS_OTHER, None)],
    "bms/balancing.yaml": [(BMS, None), (BMS_OTHER, None)],
    "bms/protection-vehicle.yaml": [(BMS_VEHICLE, None), (BMS, None), (BMS_OTHER, None)],
    "bms/current-limit.yaml": [(BMS_VEHICLE, None)],
    "bms/soc.yaml": [(BMS, None), (BMS_OTHER, None), (BMS_VEHICLE, None)],
    "bms/measurement.yaml": [(BMS, None), (BMS_OTHER, None), (BMS_VEHICLE, None)],
    "bms/can-timing.yaml": [(BMS, None), (BMS_OTHER, None), (BMS_VEHICLE, None)],
    "bms/fault-injection.yaml": [(BMS, None), (BMS_OTHER, None), (BMS_VEHICLE, None)],
    "bms/fault-injection-modular.yaml": [("instruments/sim-bms-modular.yaml", None),
                                         (BMS_OTHER, None)],
}


def _shipped() -> set[str]:
    return {str(p.relative_to(PROCEDURES)) for p in PROCEDURES.rglob("*.yaml")
            if "examples" not in p.parts}


def test_every_shipped_procedure_has_a_target():
    missing = sorted(_shipped() - set(TARGETS))
    assert not missing, f"add these ready procedures to TARGETS: {missing}"


CASES = [(f, s, c) for f, targets in TARGETS.items() for s, c in targets
         if (PROCEDURES / f).is_file()]


@pytest.mark.parametrize(("file", "station", "cell"), CASES)
def test_ready_procedure_validates(file: str, station: str | None, cell: str | None):
    prep = prepare(PROCEDURES / file, station_path=None if station is None else REPO / station,
                   cell_ref=cell)
    assert prep.procedure.plan() is not None
    assert set(prep.procedure.required_roles) <= set(prep.station.instruments)


def test_a_shipped_procedure_is_refused_on_the_wrong_station():
    # The abuse procedures must not validate on the ordinary bench (no abuse-rated chamber).
    from labctl.errors import ValidationError

    with pytest.raises(ValidationError):
        prepare(PROCEDURES / "overcharge.yaml", cell_ref="nmc-1p95ah")
    assert Path(REPO / "instruments" / "sim.yaml").is_file()
