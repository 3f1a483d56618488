"""The peer half of bench/sim_cycling.py: the same experiment in PyBaMM's Thevenin ECM.

Run by sim_cycling.py in a subprocess (so PyBaMM may live in another virtualenv:
`--pybamm-python PATH`). Prints one JSON line: wall time, samples, final capacity.
"""

from __future__ import annotations

import json
import os
import sys
import time

os.environ.setdefault("PYBAMM_DISABLE_TELEMETRY", "true")


def main(n_cycles: int) -> None:
    import pybamm

    pybamm.telemetry.disable() if hasattr(pybamm, "telemetry") else None
    cycle = [
        "Discharge at 1C until 3.2 V",
        "Rest for 10 minutes",
        "Charge at 1C until 4.1 V",
        "Hold at 4.1 V until C/20",
        "Rest for 10 minutes",
    ]
    experiment = pybamm.Experiment([tuple(cycle)] * n_cycles, period="1 second")
    model = pybamm.equivalent_circuit.Thevenin()
    t0 = time.perf_counter()
    sim = pybamm.Simulation(model, experiment=experiment)
    solution = sim.solve()
    wall = time.perf_counter() - t0
    samples = int(len(solution["Time [s]"].entries))
    print(json.dumps({"tool": "pybamm", "version": pybamm.__version__, "wall_s": wall,
                      "samples": samples, "cycles": n_cycles}))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100)
