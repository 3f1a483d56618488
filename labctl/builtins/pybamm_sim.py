"""Optional PyBaMM plugin: the `sim-pybamm` driver (role cycler).

Registered always, so a station file naming it validates; PyBaMM itself is imported
only when the station is opened, and its absence gives a LabctlError that says how to
install it (`pip install -e '.[pybamm]'`). See labctl/drivers/sim_pybamm.py and
docs/characterization.md ("Checking against PyBaMM").
"""

from __future__ import annotations

from typing import Any

from labctl.errors import LabctlError
from labctl.plugins import DriverInfo, hookimpl

_SETTINGS = {"model", "parameter_set", "parameters", "options", "initial_soc", "noise",
             "resolution", "seed", "name", "channel", "ambient_c", "check_capacity"}


def make_sim_pybamm(binding: Any, context: Any) -> Any:
    """Station settings: model (thevenin | spme | spm | dfn; default thevenin), parameter_set
    (a PyBaMM parameter set; default ECM_Example for thevenin, Chen2020 otherwise),
    parameters (PyBaMM parameter values to override), options (PyBaMM model options),
    initial_soc (default 1), noise, resolution, seed, name/channel, ambient_c (when there
    is no chamber), check_capacity (default true: the cell file's capacity must match)."""
    from labctl.drivers.sim_pybamm import import_pybamm

    import_pybamm()  # first, so a missing PyBaMM is the message, whatever else is wrong
    from labctl.capabilities.cycler import CyclerRanges
    from labctl.drivers.sim_drivers import _world
    from labctl.drivers.sim_pybamm import PybammCyclerChannel, check_cell_matches

    s, r = binding.settings, binding.ranges
    unknown = sorted(set(s) - _SETTINGS)
    if unknown:
        raise LabctlError(f"{binding.role}: unknown setting(s) {', '.join(unknown)} for driver "
                          f"'sim-pybamm'; allowed: {', '.join(sorted(_SETTINGS))}")
    for key in ("parameters", "options"):
        if s.get(key) is not None and not isinstance(s[key], dict):
            raise LabctlError(f"{binding.role}: {key} is a mapping of PyBaMM names to values")
    ranges = CyclerRanges(
        max_current_a=r.get("max_current_a", 20.0),
        max_voltage_v=r.get("max_voltage_v", 5.0),
        min_voltage_v=r.get("min_voltage_v", 0.0),
        max_power_w=r.get("max_power_w"),
    )
    channel = PybammCyclerChannel(
        _world(context, float(s.get("ambient_c", 25.0))),
        ranges=ranges,
        model=str(s.get("model", "thevenin")),
        parameter_set=s.get("parameter_set"),
        parameters=s.get("parameters"),
        options=s.get("options"),
        initial_soc=float(s.get("initial_soc", 1.0)),
        noise=s.get("noise"),
        resolution=s.get("resolution"),
        seed=int(s.get("seed", 0)),
        name=str(s.get("name", s.get("channel", "pybamm"))),
    )
    if s.get("check_capacity", True):
        check_cell_matches(context.cell, channel)
    return channel


@hookimpl
def labctl_drivers() -> list[DriverInfo]:
    return [
        DriverInfo(
            "sim-pybamm",
            ("cycler",),
            make_sim_pybamm,
            "Simulated cycler channel on a PyBaMM model (Thevenin ECM, SPM(e), DFN); "
            "needs the 'pybamm' extra",
        ),
    ]
