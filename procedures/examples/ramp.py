"""Discharge in pulses of rising current until the cell sags near its minimum voltage.

A small Python procedure: it branches on what was measured. After a full CC-CV
charge it discharges in pulses; each pulse is a little stronger than the one
before (up to `max_c`), with a rest between pulses. It stops when a pulse ends
below the cell's min voltage + `margin_v`, or when a pulse was cut short by the
cell's voltage limit.
"""

NAME = "ramp"
DESCRIPTION = "Pulsed discharge with rising current until the voltage sags near the minimum"
REQUIRES = ["cycler"]
PARAMETERS = {
    "start_c": {"default": 0.5, "min": 0.05, "max": 5, "unit": "C", "description": "first pulse"},
    "step_c": {
        "default": 0.25,
        "min": 0,
        "max": 2,
        "unit": "C",
        "description": "increase per pulse",
    },
    "max_c": {"default": 2, "min": 0.05, "max": 10, "unit": "C", "description": "strongest pulse"},
    "pulse_s": {"default": 120, "min": 1, "max": 3600, "unit": "s"},
    "rest_s": {"default": 30, "min": 1, "max": 3600, "unit": "s"},
    "margin_v": {
        "default": 0.2,
        "min": 0,
        "max": 1,
        "unit": "V",
        "description": "stop this far above the min voltage",
    },
    "max_pulses": {"default": 500, "min": 1, "max": 100000, "type": "int"},
}


def procedure(ctx):
    lim = ctx.cell.limits
    p = ctx.params
    # Never ask for more than the cell allows, whatever the parameters say.
    top_c = min(p["max_c"], lim.max_discharge_current_a / ctx.cell.capacity_ah)
    threshold_v = lim.min_voltage_v + p["margin_v"]

    yield ctx.step(f"Charge at 1C until {lim.max_voltage_v:g} V")
    yield ctx.step(f"Hold at {lim.max_voltage_v:g} V until C/20")
    yield ctx.step("Rest for 10 minutes")

    rate_c = min(p["start_c"], top_c)
    for _ in range(p["max_pulses"]):
        result = yield ctx.step(f"Discharge at {rate_c:g}C for {p['pulse_s']:g} s, log every 5 s")
        if result.end_kind != "time" or result.end_voltage_v < threshold_v:
            break  # the cell sagged: stop pulsing
        yield ctx.step(f"Rest for {p['rest_s']:g} s, log every 10 s")
        rate_c = min(rate_c + p["step_c"], top_c)
    yield ctx.step("Rest for 10 minutes, log every 30 s")
