"""Small files in vendor layouts, written from the vendors' documented formats, with a
known profile: per cycle, charge at +0.5 A for 1 h, rest 10 min, discharge at -0.5 A
for 1 h (records every 10 s). So every cycle moves exactly 0.5 Ah each way."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CURRENT_A = 0.5
STEP_S = 3600
REST_S = 600
DT = 10
CYCLES = 2
CAPACITY_AH = CURRENT_A * STEP_S / 3600.0  # 0.5


@dataclass
class Record:
    t: float  # test time, s
    step_t: float
    cycle: int  # 1-based
    step: int  # vendor step number (1 charge, 2 rest, 3 discharge)
    current: float  # A, positive = charge
    voltage: float
    q_step: float  # Ah moved in this step so far (unsigned)
    e_step: float  # Wh moved in this step so far
    qc_cycle: float  # charge Ah so far in this cycle
    qd_cycle: float


def profile() -> list[Record]:
    rows: list[Record] = []
    t = 0.0
    for c in range(1, CYCLES + 1):
        qc = qd = 0.0
        for step, current, duration in ((1, CURRENT_A, STEP_S), (2, 0.0, REST_S),
                                        (3, -CURRENT_A, STEP_S)):
            for k in range(1, duration // DT + 1):
                ts = k * DT
                q = abs(current) * ts / 3600.0
                v = 3.6 + 0.3 * (q / CAPACITY_AH) * (1 if current > 0 else -1 if current < 0
                                                      else 0)
                if current > 0:
                    qc = q
                elif current < 0:
                    qd = q
                rows.append(Record(t + ts, ts, c, step, current, v, q, q * 3.6, qc, qd))
            t += duration
    return rows


def expected_cycles() -> list[tuple[int, float, float]]:
    return [(c, CAPACITY_AH, CAPACITY_AH) for c in range(1, CYCLES + 1)]


def hms(seconds: float) -> str:
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{int(h):02d}:{int(m):02d}:{s:05.2f}"


def maccor_signed_minutes() -> str:
    """Comma-separated Maccor export, signed current, test time in minutes, 0-based cycles."""
    lines = ["Today's Date,12/01/2022", "Date of Test:,11/30/2022 09:00:00",
             "Rec,Cycle P,Cycle C,Step,Test (Min),Step (Min),Amp-hr,Watt-hr,Amps,Volts,ES,"
             "DPt Time"]
    for k, r in enumerate(profile(), 1):
        lines.append(f"{k},{r.cycle - 1},{r.cycle - 1},{r.step},{r.t / 60:.6f},"
                     f"{r.step_t / 60:.6f},{r.q_step:.6f},{r.e_step:.6f},{r.current:.5f},"
                     f"{r.voltage:.5f},0,11/30/2022 09:00:00")
    return "\n".join(lines) + "\n"


def mpt_decimal_comma() -> bytes:
    """EC-Lab ASCII export: latin-1, decimal commas, tab separated, 'Nb header lines'."""
    cols = ["mode", "ox/red", "error", "control changes", "Ns changes", "counter inc.", "Ns",
            "time/s", "control/mA", "Ewe/V", "I/mA", "dq/mA.h", "(Q-Qo)/mA.h",
            "Temperature/°C", "cycle number"]
    header = ["EC-Lab ASCII FILE", "Nb header lines : 6", "",
              "Galvanostatic Cycling with Potential Limitation", "Acquisition started on : "
              "11/30/2022 09:00:00", "\t".join(cols)]
    lines = list(header)
    prev_t, q = 0.0, 0.0
    for r in profile():
        dq = r.current * (r.t - prev_t) / 3.6  # mA.h moved since the previous record
        # the first record of a step: the interval leading into it is at the new current
        q += dq
        prev_t = r.t
        vals = ["1", "1" if r.current >= 0 else "0", "0", "0", "0", "0", str(r.step - 1),
                f"{r.t:.4f}", f"{r.current * 1000:.4f}", f"{r.voltage:.6f}",
                f"{r.current * 1000:.6f}", f"{dq:.9f}", f"{q:.9f}", "25,0",
                f"{r.cycle - 1}"]
        lines.append("\t".join(v.replace(".", ",") for v in vals))
    return ("\n".join(lines) + "\n").encode("latin-1")


def arbin_rows() -> tuple[list[str], list[list]]:
    names = ["Data_Point", "Date_Time", "Test_Time(s)", "Step_Time(s)", "Cycle_Index",
             "Step_Index", "Current(A)", "Voltage(V)", "Charge_Capacity(Ah)",
             "Discharge_Capacity(Ah)", "Charge_Energy(Wh)", "Discharge_Energy(Wh)"]
    rows = []
    for k, r in enumerate(profile(), 1):
        rows.append([k, "11/30/2022 09:00:00", r.t, r.step_t, r.cycle, r.step, r.current,
                     r.voltage, r.qc_cycle, r.qd_cycle, r.qc_cycle * 3.6, r.qd_cycle * 3.6])
    return names, rows


def arbin_csv() -> str:
    names, rows = arbin_rows()
    return ",".join(names) + "\n" + "".join(",".join(str(v) for v in row) + "\n"
                                            for row in rows)


def pec_csv() -> str:
    """PEC SBT export: results-check preamble, mV / mA / mAh / mWh columns."""
    lines = ["#RESULTS CHECK", "#Test:,1234", "#END RESULTS CHECK",
             "Test,Cell,Rack,Shelf,Position,Cell ID,Total_Time_Seconds,Step_Time_Seconds,"
             "Cycle,Step,Voltage_mV,Current_mA,Charge_Capacity_mAh,Discharge_Capacity_mAh,"
             "Charge_Energy_mWh,Discharge_Energy_mWh,Real_Time"]
    for r in profile():
        lines.append(f"1234,1,1,1,1,A1,{r.t},{r.step_t},{r.cycle},{r.step},"
                     f"{r.voltage * 1000:.3f},{r.current * 1000:.3f},{r.qc_cycle * 1000:.6f},"
                     f"{r.qd_cycle * 1000:.6f},{r.qc_cycle * 3600:.6f},{r.qd_cycle * 3600:.6f},"
                     "2022-11-30 09:00:00")
    return "\n".join(lines) + "\n"


def neware_three_level() -> str:
    """Neware BTS 7 three-level export: cycle rows, step rows, record rows (mA, mAh)."""
    names = {1: "CC_Chg", 2: "Rest", 3: "CC_DChg"}
    lines = ["Cycle ID,Cap_Chg(mAh),Cap_DChg(mAh),Charge/Discharge Efficiency(%)",
             ",Step ID,Step Name,Step Time(h:min:s.ms),Capacity(mAh)",
             ",,Record ID,Time(h:min:s.ms),Voltage(V),Current(mA),Capacity(mAh),Energy(mWh),"
             "Realtime"]
    rows = profile()
    rec = 0
    for c in range(1, CYCLES + 1):
        lines.append(f"{c},{CAPACITY_AH * 1000:.4f},{CAPACITY_AH * 1000:.4f},100.00")
        for s in (1, 2, 3):
            part = [r for r in rows if r.cycle == c and r.step == s]
            lines.append(f",{s},{names[s]},{hms(part[-1].step_t)},"
                         f"{part[-1].q_step * 1000:.4f}")
            for r in part:
                rec += 1
                lines.append(f",,{rec},{hms(r.step_t)},{r.voltage:.4f},"
                             f"{abs(r.current) * 1000:.3f},{r.q_step * 1000:.4f},"
                             f"{r.e_step * 1000:.4f},2022-11-30 09:00:00")
    return "\n".join(lines) + "\n"


def records_n() -> int:
    return len(profile())


def currents() -> np.ndarray:
    return np.array([r.current for r in profile()])


def peis_mpt(sweeps: int = 2) -> tuple[bytes, np.ndarray, np.ndarray]:
    """EC-Lab PEIS export: `sweeps` frequency sweeps of R0 + R1 || C1 (R0 = 0.02,
    R1 = 0.08 Ohm, C1 = 0.5 F). Returns (file bytes, frequencies, Z)."""
    f = np.logspace(4, -1, 30)
    z = 0.02 + 0.08 / (1 + 1j * 2 * np.pi * f * 0.08 * 0.5)
    cols = ["freq/Hz", "Re(Z)/Ohm", "-Im(Z)/Ohm", "|Z|/Ohm", "Phase(Z)/deg", "time/s",
            "<Ewe>/V", "<I>/mA", "cycle number"]
    lines = ["EC-Lab ASCII FILE", "Nb header lines : 4", "Potentio Electrochemical Impedance "
             "Spectroscopy", "\t".join(cols)]
    t = 0.0
    for s in range(sweeps):
        for fk, zk in zip(f, z, strict=True):
            t += 1.0 + 2.0 / fk
            vals = [fk, zk.real, -zk.imag, abs(zk), np.degrees(np.angle(zk)), t, 3.7, 0.0, s]
            lines.append("\t".join(f"{v:.10g}" for v in vals))
    return ("\n".join(lines) + "\n").encode("latin-1"), f, z
