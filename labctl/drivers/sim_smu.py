"""`sim-smu`: a simulated Keithley-style SMU in-process, behind labctl's real SMU channel.

The same `SimSmu` that `labctl sim serve` puts on a socket, here called directly
(no SCPI), so the software step loop, the station and the qualification suites run
on it fast. Beyond a perfect instrument it can be mis-calibrated (`gain_error`,
`offset_v`, `offset_a`), and it carries an ideal reference meter and a digitiser of
its current loop's step response (`loop_natural_hz`, `loop_damping`) for the
qualification suites.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from labctl.drivers.keithley_smu import HARDWARE, SmuCyclerChannel, smu_ranges
from labctl.drivers.software_loop import Reading
from labctl.drivers.step_response import second_order_step
from labctl.drivers.visa_link import check_settings, number
from labctl.errors import LabctlError
from labctl.stations.spec import InstrumentSpec

SETTINGS = {"time_per_read_s", "gain_error", "offset_v", "offset_a", "noise_v", "noise_a",
            "seed", "initial_soc", "loop_natural_hz", "loop_damping", "poll_period_s", "name",
            "serial"}


class SimSmuLink:
    """`SmuLink` on a `SimSmu` (direct calls, the semantics of the SCPI commands)."""

    def __init__(self, smu: Any, serial: str = "SIM-SMU-0"):
        self.smu = smu
        self.serial = serial

    def identify(self) -> dict[str, str]:
        import labctl

        return {"idn": f"LABCTL,SIM-SMU,{self.serial},{labctl.__version__}", "make": "LABCTL",
                "model": "SIM-SMU", "serial": self.serial, "firmware": labctl.__version__}

    def source_current(self, current_a: float, voltage_limit_v: float) -> None:
        self.smu.set_function("CURR")
        self.smu.set_voltage_limit(voltage_limit_v)
        self.smu.set_current_level(current_a)
        self.smu.set_output(True)

    def source_voltage(self, voltage_v: float, current_limit_a: float) -> None:
        self.smu.set_function("VOLT")
        self.smu.set_current_limit(current_limit_a)
        self.smu.set_voltage_level(voltage_v)
        self.smu.set_output(True)

    def set_current(self, current_a: float) -> None:
        self.smu.set_current_level(current_a)

    def read(self) -> Reading:
        r = self.smu.read()
        return Reading(r.voltage_v, r.current_a, r.time_s)

    def read_voltage(self) -> float:
        return self.smu.read().voltage_v

    def output_off(self) -> None:
        self.smu.set_output(False)


class SimReferenceMeter:
    """An ideal meter on the simulated cell's terminals (and a digitiser on its current).

    `accuracy` states what it is trusted to: (relative, absolute) per quantity.
    """

    accuracy = {"voltage_v": (0.0, 0.0), "current_a": (0.0, 0.0)}

    def __init__(self, smu: Any, natural_hz: float, damping: float):
        self.smu = smu
        self.natural_hz = natural_hz
        self.damping = damping

    def identify(self) -> dict[str, str]:
        return {"make": "LABCTL", "model": "SIM-REFERENCE", "serial": "SIM-REF-0", "firmware": ""}

    def read(self) -> Reading:
        """The true voltage and current at the SMU's last reading."""
        r = self.smu.true_reading()
        return Reading(r.voltage_v, r.current_a, r.time_s)

    def capture_current_step(self, channel: Any, from_a: float, to_a: float,
                             duration_s: float = 5e-3, rate_hz: float = 1e6
                             ) -> tuple[np.ndarray, np.ndarray]:
        """Digitise the current while the channel steps its source from one level to another.

        The simulated source's loop is second order; what the cell gets in steady state
        includes the channel's calibration error (so the trace ends where the cell's
        current really goes).
        """
        t = np.arange(0.0, duration_s, 1.0 / rate_hz)
        g, off = self.smu.gain_error, self.smu.offset_a
        true_from = (from_a - off) / (1 + g) if from_a else 0.0
        true_to = (to_a - off) / (1 + g) if to_a else 0.0
        return t, second_order_step(t, true_from, true_to, self.natural_hz, self.damping)


class SimSmuChannel(SmuCyclerChannel):
    def __init__(self, *args: Any, reference: SimReferenceMeter, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._reference = reference

    def reference_meter(self) -> SimReferenceMeter:
        return self._reference

    def get_state(self) -> dict:
        return self.link.smu.channel.get_state()

    def set_state(self, state: dict) -> None:
        self.link.smu.channel.set_state(state)


def make_sim_smu(binding: InstrumentSpec, context: Any) -> SimSmuChannel:
    from labctl.sim.world import SimWorld
    from labctl.simserve.smu import SimSmu

    check_settings(binding, SETTINGS)
    if context.cell.model is None:
        raise LabctlError(f"cell {context.cell.name!r} has no 'model:' section; sim-smu needs one")
    ranges = smu_ranges(binding, HARDWARE["keithley-2400"])
    noise_v = number(binding, "noise_v", 0.0)
    noise_a = number(binding, "noise_a", 0.0)
    noise = {"voltage_v": noise_v, "current_a": noise_a} if (noise_v or noise_a) else None
    world = context.shared_object("sim-world", lambda: SimWorld(context.clock))
    gain = binding.settings.get("gain_error", 0.0)
    if isinstance(gain, bool) or not isinstance(gain, int | float) or not -0.5 < gain < 0.5:
        raise LabctlError(f"{binding.role}: gain_error must be a number in (-0.5, 0.5), got {gain!r}")
    offsets = {}
    for key in ("offset_v", "offset_a"):
        value = binding.settings.get(key, 0.0)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise LabctlError(f"{binding.role}: {key} must be a number, got {value!r}")
        offsets[key] = float(value)
    smu = SimSmu(world, context.cell, time_per_read_s=number(binding, "time_per_read_s", 0.1, 1e-6),
                 noise=noise, seed=int(number(binding, "seed", 0.0)),
                 initial_soc=binding.settings.get("initial_soc"), gain_error=float(gain), **offsets)
    reference = SimReferenceMeter(smu, number(binding, "loop_natural_hz", 2000.0, 1.0),
                                  number(binding, "loop_damping", 0.7, 0.05))
    link = SimSmuLink(smu, str(binding.settings.get("serial", "SIM-SMU-0")))
    return SimSmuChannel(link, context.clock, ranges, name=str(binding.settings.get("name", "sim-smu")),
                         poll_period_s=number(binding, "poll_period_s", 0.1, 1e-4),
                         time_source="instrument", calibration_due=binding.calibration_due,
                         driver="sim-smu", reference=reference)
