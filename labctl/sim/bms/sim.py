"""The `sim-bms` instrument: the simulated BMS and labctl's CAN port to it, in virtual time.

Two python-can virtual buses share one channel: the BMS's and labctl's. Time moves
only in `run_for(duration)`: the BMS runs tick by tick (10 ms by default) up to the
end, sending its periodic frames (virtual timestamps) and reading labctl's command
frames, which labctl's port sends on its own virtual schedule; then the clock moves
and labctl receives what arrived. Validation steps see the BMS only through frames,
exactly as on a real bus; the stimulus (`pack`) is what a HIL bench would apply.
"""

from __future__ import annotations

import itertools
import re
from typing import Any

import numpy as np

from labctl.can.bus import CanPort, open_bus
from labctl.can.checksum import checksum
from labctl.can.signals import COMMAND_ROLES, SignalMap
from labctl.errors import LabctlError
from labctl.sim.bms.config import BmsConfig
from labctl.sim.bms.ecu import BmsEcu
from labctl.sim.bms.nodes import build_schedules, nodes_with_cells
from labctl.sim.bms.pack import Pack

_channels = itertools.count(1)
FAULTS = ("stuck_sensor", "drifting_sensor", "open_wire", "dead_node", "drop_frames",
          "delay_frames", "bad_checksum")


class PackStimulus:
    """What a HIL bench applies to the BMS: pack current, cell emulator, heaters, press, faults."""

    def __init__(self, sim: SimBms):
        self._sim = sim
        self.pack = sim.pack

    def set_current(self, current_a: float) -> None:
        """Pack current (+ = charge); it flows only while the BMS's contactors are closed."""
        self._sim.requested_current_a = float(current_a)

    def force_cell_voltage(self, cell: int, voltage_v: float | None) -> None:
        """Cell emulator: cell `cell` (1-based) reads `voltage_v`; None hands it back to the cell."""
        self.pack.forced_v[cell - 1] = np.nan if voltage_v is None else float(voltage_v)

    def force_temperature(self, cell: int, temperature_c: float | None) -> None:
        self.pack.forced_t[cell - 1] = np.nan if temperature_c is None else float(temperature_c)

    def set_pressure(self, pressure_mpa: float) -> None:
        self.pack.stack_pressure_mpa = float(pressure_mpa)

    def set_soc(self, soc: float, cell: int | None = None) -> None:
        self.pack.set_soc(soc, None if cell is None else cell - 1)

    def offset_cell_voltage(self, cell: int, delta_v: float) -> None:
        """Move a resting cell's SoC so that its OCV is `delta_v` above (below) where it was."""
        i = cell - 1
        target = float(self.pack.ocv(self.pack.soc[i])) + delta_v
        self.pack.set_soc(float(self.pack.soc_for_ocv(target)), i)

    def inject(self, fault: str, *, cell: int | None = None, node: str | None = None,
               message: str | None = None, rate_v_per_s: float = 0.0, count: int = 0,
               every: int = 0, delay_s: float = 0.0) -> None:
        self._sim.inject(fault, cell=cell, node=node, message=message, rate_v_per_s=rate_v_per_s,
                         count=count, every=every, delay_s=delay_s)

    def clear_faults(self) -> None:
        self._sim.clear_faults()

    def reference(self) -> dict[str, Any]:
        """The bench's reference instruments now: pack voltage and current (+ = charge) and
        power, each cell's voltage (cell emulator / sense-line meter) and temperature."""
        cells_v = self.pack.cell_voltage_v()
        current = float(self.pack.current_a)
        pack_v = float(np.sum(cells_v))
        return {"pack_voltage_v": pack_v, "pack_current_a": current,
                "pack_power_w": pack_v * current, "cell_voltage_v": cells_v.copy(),
                "cell_temperature_c": self.pack.cell_temperature_c().copy()}

    def reference_charge_ah(self) -> float:
        """The bench's reference meter: charge that flowed into the pack so far (+ = charge)."""
        return float(self.pack.charge_in_ah)


class SimBms:
    """Role `bms`: a BMS under test on a CAN bus, with a simulated pack behind it."""

    def __init__(self, smap: SignalMap, cfg: BmsConfig, clock: Any, bus_settings: dict | None):
        self.smap = smap
        self.cfg = cfg
        self.clock = clock
        if not getattr(clock, "is_virtual", False):
            raise LabctlError("sim-bms runs in virtual time; use 'clock: virtual' in the station")
        bus = dict(bus_settings or {})
        if bus.get("interface", "virtual") != "virtual":
            raise LabctlError("sim-bms simulates its bus: bus.interface must be 'virtual'")
        bus["channel"] = f"{bus.get('channel', 'sim-bms')}#{next(_channels)}"
        self.channel = bus["channel"]
        self._bms_bus = open_bus(bus)
        self.port = CanPort(open_bus(bus), clock, virtual=True)
        self.pack = Pack(cfg.pack, cfg.cells)
        self.ecu = BmsEcu(cfg, cfg.pack.cell.capacity_ah)
        self.stimulus = PackStimulus(self)
        self.requested_current_a = 0.0
        self.schedules = build_schedules(smap, cfg.topology, cfg.pack.seed)
        self._by_message = {s.message: s for s in self.schedules}
        self._node_cells = nodes_with_cells(self.schedules)
        self._rng = np.random.default_rng(cfg.pack.seed + 17)
        self._tick = 0
        self._t0 = clock.now()
        self._stuck = np.full(cfg.cells, np.nan)
        self._drift = np.zeros(cfg.cells)
        self._offsets = np.zeros(cfg.cells)  # miscalibrated channels (sensor.cell_offsets)
        for cell, offset in cfg.sensor.cell_offsets_v:
            self._offsets[cell - 1] = offset
        self._drift_t0 = np.zeros(cfg.cells)
        self._open = np.zeros(cfg.cells, dtype=bool)
        self.dead_nodes: set[str] = set()
        self.sent_log: list[tuple[float, str, dict[str, float], bytes]] = []  # for tests
        self.keep_sent = False
        self.rejected_commands = 0
        self._cmd_counter = 0
        self.commands = {r: False for r in COMMAND_ROLES}
        self._cmd_messages = {}
        for ref in (smap.scalar[r] for r in COMMAND_ROLES if r in smap.scalar):
            self._cmd_messages.setdefault(ref.message, []).append(ref)
        for name, refs in self._cmd_messages.items():
            msg = smap.message(name)
            self.port.send_periodic(msg.frame_id, self._command_data(name, refs),
                                    smap.period_s(name) or 0.1, bool(msg.is_extended_frame))
        self._device_ids = {smap.message(n).frame_id: n for n in self._cmd_messages}
        # Per message, once: (signal, role, cell index or None, DBC signal) to fill each frame.
        self._plans: dict[str, list[tuple]] = {}
        for role, refs in smap.per_cell.items():
            for i, ref in enumerate(refs):
                self._plans.setdefault(ref.message, []).append(
                    (ref.signal, role, i, ref, smap.message(ref.message).get_signal_by_name(ref.signal)))
        for role, ref in smap.scalar.items():
            if role not in COMMAND_ROLES:
                self._plans.setdefault(ref.message, []).append(
                    (ref.signal, role, None, ref, smap.message(ref.message).get_signal_by_name(ref.signal)))
        self._fill, self.unmapped = unmapped_fill(smap)
        self._limits_mapped = smap.has("max_charge_current_a") or smap.has("max_discharge_current_a")
        self._lat = int(round(cfg.latency_s / cfg.tick_s))
        # readings still travelling to the master, with the pack voltage sampled at the same
        # instant in the last column (so the plausibility check compares like with like)
        self._hist = np.full((self._lat, cfg.cells + 1), np.nan)
        self._hist_t = np.full((self._lat, cfg.cells), np.nan)  # temperatures too
        self._dead = np.zeros(cfg.cells, dtype=bool)
        self._frozen = np.full(cfg.cells, np.nan)  # last readings of dead nodes' cells
        self.seen_v = np.full(cfg.cells, np.nan)  # what the master knows (last tick)

    # -- identity and safety -----------------------------------------------------------------------
    def identify(self) -> dict[str, str]:
        out = {"model": "labctl simulated BMS", "topology": self.cfg.topology,
               "cells": str(self.cfg.cells), "dbc": self.smap.dbc_path.name, "bus": self.channel}
        if self.unmapped:
            out["not_available"] = ", ".join(f"{k} ({v})" for k, v in sorted(self.unmapped.items()))
        return out

    def safe_state(self) -> None:
        """Current off, contactors requested open, balancing off (the BMS acts at its next tick)."""
        self.requested_current_a = 0.0
        self.pack.current_a = 0.0
        self.commands = {r: False for r in COMMAND_ROLES}

    def close(self) -> None:
        self.port.close()
        try:
            self._bms_bus.shutdown()
        except Exception:  # best effort
            pass

    # -- what a validation step uses ------------------------------------------------------------------
    @property
    def period_s(self) -> float:
        return self.cfg.tick_s

    def command(self, role: str, value: bool) -> None:
        """Set a command role; it goes out with the next periodic command frame."""
        if role not in self.commands:
            raise LabctlError(f"{role!r} is not a mapped command; mapped: {', '.join(self.commands)}")
        self.commands[role] = bool(value)

    def run_for(self, duration_s: float) -> list[Any]:
        """Let `duration_s` pass; returns the frames labctl received meanwhile."""
        t_end = self.clock.now() + duration_s
        self.advance_to(t_end)
        self.clock.sleep_until(t_end)
        return self.port.receive()

    # -- simulation ---------------------------------------------------------------------------------------
    def advance_to(self, t_end: float) -> None:
        """Simulate every tick before `t_end`, in chunks with constant current and balancing."""
        dt = self.cfg.tick_s
        while True:
            t0 = self._t0 + self._tick * dt
            if t0 >= t_end - 1e-9:
                return
            rows = min(100, int(np.ceil((t_end - t0) / dt - 1e-9)))
            self.port.pump(t0 + (rows - 1) * dt)
            commands = self._receive_commands()
            self.pack.current_a = self.requested_current_a if self.ecu.contactor_closed else 0.0
            done = self._chunk(t0, rows, dt, commands)
            self._tick += done

    def _chunk(self, t0: float, rows: int, dt: float, commands: list) -> int:
        """Run up to `rows` ticks from t0; stop early when the current or balancing must change."""
        pack, ecu, cfg = self.pack, self.ecu, self.cfg
        traj = pack.trajectory(rows + 1, dt)
        readings = traj["cell_v"][:rows]
        times = t0 + np.arange(rows) * dt
        readings = np.where(np.isnan(self._stuck), readings, self._stuck)
        readings = readings + self._drift * (times[:, None] - self._drift_t0) + self._offsets
        readings = np.where(self._open, 0.0, readings)
        n = cfg.cells
        fresh = np.column_stack([readings, traj["cell_v"][:rows].sum(axis=1)])
        both = np.vstack([self._hist, fresh]) if self._lat else fresh
        seen = both[:rows, :n].copy()
        pack_v_seen = both[:rows, n]
        seen[:, self._dead] = self._frozen[self._dead]
        temps = traj["cell_t"][:rows]
        both_t = np.vstack([self._hist_t, temps]) if self._lat else temps
        temps_seen = both_t[:rows]
        judge = ~np.isnan(seen).any(axis=1)
        valid = seen >= cfg.sensor.open_wire_v
        vmax = np.where(valid, seen, -np.inf).max(axis=1)
        vmin = np.where(valid, seen, np.inf).min(axis=1)
        scal = {
            "vmax": vmax, "vmin": vmin, "tmax": temps_seen.max(axis=1), "tmin": temps_seen.min(axis=1),
            "open_wire": (~valid).sum(axis=1),
            "mismatch_v": np.abs(pack_v_seen - seen.sum(axis=1)),
        }
        soc_ocv = pack.soc_for_ocv(seen).mean(axis=1)
        pack_v = traj["cell_v"][:rows].sum(axis=1)
        s = cfg.soc
        current_meas = pack.current_a * (1 + s.current_gain_error) + s.current_offset_a
        lists = {k: v.tolist() for k, v in scal.items()}
        judge_l, soc_l, times_l = judge.tolist(), soc_ocv.tolist(), times.tolist()
        ci = 0
        closed0 = ecu.contactor_closed
        done = rows
        for k in range(rows):
            t = times_l[k]
            while ci < len(commands) and commands[ci][0] <= t + 1e-12:
                ecu.command(*commands[ci])
                ci += 1
            ecu.tick(t, dt, {n: lists[n][k] for n in lists}, current_meas, pack.stack_pressure_mpa,
                     soc_l[k], judge_l[k], seen[k])
            rebalance = judge_l[k] and t >= ecu.next_balance_s - 1e-9
            if rebalance:
                new = ecu.balance(t, seen[k])
            self._send_due(t, t + dt, seen[k], readings[k], temps[k], temps_seen[k],
                           float(pack_v[k]), current_meas)
            changed = ecu.contactor_closed != closed0
            if rebalance and not np.array_equal(new, pack.balance_a):
                pack_balance = new
                changed = True
            else:
                pack_balance = None
            if changed:
                done = k + 1
                break
        pack.commit(traj, done, dt)
        if pack_balance is not None:
            pack.balance_a = pack_balance
        if self._lat:
            self._hist = both[done:done + self._lat]
            self._hist_t = both_t[done:done + self._lat]
        self.seen_v = seen[done - 1]
        self._unread = commands[ci:]
        return done

    def _receive_commands(self) -> list:
        """Valid command frames from labctl as (time, contactor_close, balancing_enable)."""
        out = list(getattr(self, "_unread", []))
        while True:
            msg = self._bms_bus.recv(timeout=0)
            if msg is None:
                return sorted(out, key=lambda c: c[0])
            name = self._device_ids.get(msg.arbitration_id)
            if name is None:
                continue
            index = self.smap.checksum_byte(name)
            data = bytes(msg.data)
            if index is not None and checksum(self.smap.checksum_spec(name), data, index,
                                              msg.arbitration_id) != data[index]:
                self.rejected_commands += 1  # a corrupted command is ignored
                continue
            values = self.smap.message(name).decode(data, decode_choices=False)
            got = {ref.role: bool(ref.to_labctl(values[ref.signal])) for ref in self._cmd_messages[name]}
            out.append((msg.timestamp, got.get("cmd_contactor_close"), got.get("cmd_balancing_enable")))

    def _command_data(self, name: str, refs: list) -> Any:
        def make() -> bytes:
            self._cmd_counter += 1
            return self.smap.encode(name, {r.signal: r.to_dbc(self.commands[r.role]) for r in refs},
                                    counter=self._cmd_counter)
        return make

    def _send_due(self, t: float, t_next: float, seen: np.ndarray, readings: np.ndarray,
                  temps: np.ndarray, temps_seen: np.ndarray, pack_v: float, current_a: float
                  ) -> None:
        import can

        frames = []
        values = None
        for s in self.schedules:
            while s.next_s < t_next - 1e-12:
                due = s.next_s
                s.advance()
                if due < t - s.period_s:  # far behind (the first tick after a long jump): skip
                    continue
                if s.node in self.dead_nodes:
                    continue
                s.sent += 1
                if s.drop_left > 0 or (s.drop_every and s.sent % s.drop_every == 0):
                    s.drop_left = max(0, s.drop_left - 1)
                    s.counter += 1  # the node counted it; it never reached the bus
                    continue
                if values is None:
                    values = self._pack_values(seen, temps_seen, pack_v, current_a)
                data = self._encode(s, due, values, seen, readings, temps, temps_seen)
                jitter = abs(float(self._rng.normal(0.0, self.cfg.jitter_s))) if self.cfg.jitter_s else 0.0
                stamp = due + jitter
                if s.delay_left > 0:
                    stamp += s.delay_s
                    s.delay_left -= 1
                # a frame queued behind a delayed one leaves right after it (no overtaking)
                stamp = max(stamp, s.last_stamp + 1e-4)
                s.last_stamp = stamp
                if s.node != "master":
                    self.ecu.node_frame(s.node, stamp)
                if self.keep_sent:
                    self.sent_log.append((stamp, s.message, dict(self._last_signals), data))
                msg = self.smap.message(s.message)
                frames.append(can.Message(timestamp=stamp, arbitration_id=msg.frame_id,
                                          is_extended_id=bool(msg.is_extended_frame), data=data))
        for m in sorted(frames, key=lambda m: m.timestamp):
            self._bms_bus.send(m)

    def _pack_values(self, seen: np.ndarray, temps_seen: np.ndarray, pack_v: float,
                     current_a: float) -> dict[str, Any]:
        """The master's scalar values at this instant, by role (labctl units and signs)."""
        ecu = self.ecu
        values: dict[str, Any] = dict(ecu.faults)
        known = seen[np.isfinite(seen)]
        v_min = float(known.min()) if len(known) else float("nan")
        v_max = float(known.max()) if len(known) else float("nan")
        t_min, t_max = float(np.min(temps_seen)), float(np.max(temps_seen))
        charge = discharge = 0.0
        if self._limits_mapped:
            charge, discharge = ecu.current_limits(t_min, t_max)
        values.update(pack_voltage_v=pack_v, pack_current_a=current_a,
                      pack_power_w=pack_v * current_a, soc=ecu.soc_est or 0.0,
                      contactor_closed=ecu.contactor_closed,
                      stack_pressure_mpa=self.pack.stack_pressure_mpa or 0.0,
                      min_cell_voltage_v=v_min, max_cell_voltage_v=v_max,
                      cell_voltage_delta_v=v_max - v_min, min_cell_temperature_c=t_min,
                      max_cell_temperature_c=t_max, max_charge_current_a=charge,
                      max_discharge_current_a=discharge)
        return values

    def _encode(self, s: Any, due: float, values: dict[str, Any], seen: np.ndarray,
                readings: np.ndarray, temps: np.ndarray, temps_seen: np.ndarray) -> bytes:
        smap = self.smap
        sig: dict[str, float] = {}
        master = s.node == "master"
        for name, role, i, ref, dbc_sig in self._plans.get(s.message, ()):
            if role == "cell_voltage_v":
                # a module card sends its own fresh readings; the master what reached it
                v = float(seen[i] if master else readings[i])
            elif role == "cell_temperature_c":
                v = float(temps_seen[i] if master else temps[i])
            elif role == "balancing":
                v = bool(self.ecu.balancing[i])
            else:
                v = values.get(role, 0.0)
            if isinstance(v, float) and v != v:  # NaN before the first reading arrived
                v = 0.0
            sig[name] = _clamp(dbc_sig, ref.to_dbc(v))
        s.counter += 1
        data = bytearray(smap.encode(s.message, sig, counter=s.counter,
                                     fill=self._fill.get(s.message)))
        if s.bad_checksum_left > 0:
            index = smap.checksum_byte(s.message)
            if index is not None:
                data[index] ^= 0x5A
            s.bad_checksum_left -= 1
        self._last_signals = sig
        return bytes(data)

    # -- faults ------------------------------------------------------------------------------------------
    def inject(self, fault: str, *, cell: int | None, node: str | None, message: str | None,
               rate_v_per_s: float, count: int, every: int, delay_s: float) -> None:
        now = self._t0 + self._tick * self.cfg.tick_s
        if fault not in FAULTS:
            raise LabctlError(f"unknown fault {fault!r}; allowed: {', '.join(FAULTS)}")
        if fault in ("stuck_sensor", "drifting_sensor", "open_wire"):
            if cell is None or not 1 <= cell <= self.cfg.cells:
                raise LabctlError(f"{fault} needs a cell from 1 to {self.cfg.cells}")
            i = cell - 1
            if fault == "stuck_sensor":
                self._stuck[i] = float(self.seen_v[i]) if np.isfinite(self.seen_v[i]) else \
                    float(self.pack.cell_voltage_v()[i])
            elif fault == "drifting_sensor":
                self._drift[i], self._drift_t0[i] = rate_v_per_s, now
            else:
                self._open[i] = True
            return
        if fault == "dead_node":
            nodes = sorted(self._node_cells)
            if node is None and nodes:
                node = nodes[0]
            if node not in self._node_cells:
                raise LabctlError(f"dead_node: node {node!r} does not exist; "
                                  + dead_node_choices(self.cfg.topology, nodes))
            self.dead_nodes.add(node)
            cells = sorted(self._node_cells[node])
            self._frozen[cells] = self.seen_v[cells]
            self._dead[cells] = True  # the master keeps its last readings of those cells
            return
        if message is None or message not in self._by_message:
            raise LabctlError(f"{fault} needs one of the BMS's messages: "
                              f"{', '.join(self._by_message)}")
        s = self._by_message[message]
        if fault == "drop_frames":
            s.drop_left, s.drop_every = count, every
        elif fault == "delay_frames":
            s.delay_s, s.delay_left = delay_s, count or 1
        else:
            s.bad_checksum_left = count or 1

    def clear_faults(self) -> None:
        self._stuck[:] = np.nan
        self._drift[:] = 0.0
        self._open[:] = False
        self.dead_nodes.clear()
        self._dead[:] = False
        for s in self.schedules:
            s.drop_left = s.drop_every = s.delay_left = s.bad_checksum_left = 0


_NOT_AVAILABLE = re.compile(r"^(sna|not[ _]?available|n/?a|invalid|unavailable|init)$", re.I)


def not_available(sig: Any) -> tuple[float, str]:
    """What the simulator sends in a signal no role gives a value to (physical value, why).

    Never a silent 0 that a VCU would read as a value ("max discharge current 0 A"): the
    DBC's own invalid value, else a value-table entry named SNA / not available / invalid,
    else its GenSigStartValue, else the all-ones raw pattern that J1939 and most OEM
    conventions read as "not available" (the largest positive raw value if signed).
    A 1-bit signal without any of these is sent as 0: a flag that is not modelled is off."""
    if sig.raw_invalid is not None:
        return float(sig.raw_to_scaled(sig.raw_invalid, decode_choices=False)), "DBC invalid value"
    for raw, name in (sig.choices or {}).items():
        if _NOT_AVAILABLE.match(str(name).strip()):
            return float(sig.raw_to_scaled(int(raw), decode_choices=False)), f"value table {name}"
    if sig.raw_initial is not None:
        return float(sig.raw_to_scaled(sig.raw_initial, decode_choices=False)), "GenSigStartValue"
    if sig.length == 1:
        return 0.0, "unmodelled flag, off"
    raw = (1 << (sig.length - 1)) - 1 if sig.is_signed else (1 << sig.length) - 1
    return float(raw * sig.scale + sig.offset), f"raw 0x{raw:X} (not available)"


def unmapped_fill(smap: SignalMap) -> tuple[dict[str, dict[str, float]], dict[str, str]]:
    """Per message the BMS sends: the value of every signal without a role, counter or checksum."""
    fill: dict[str, dict[str, float]] = {}
    notes: dict[str, str] = {}
    used = {(r.message, r.signal) for r in smap.all_refs()}
    used |= set(smap.counters.items()) | set(smap.checksums.items())
    for name in smap.device_messages():
        msg = smap.message(name)
        fill[name] = {}
        for sig in msg.signals:
            value, why = (0.0, "") if (name, sig.name) in used else not_available(sig)
            fill[name][sig.name] = value
            if why:
                notes[f"{name}.{sig.name}"] = why
    return fill, notes


def dead_node_choices(topology: str, nodes: list[str]) -> str:
    """What a dead_node fault may name, said truthfully for the topology."""
    if nodes:
        return f"nodes with cells in the {topology} topology: {', '.join(nodes)}"
    if topology == "centralized":
        return "a centralized BMS has only its master node (no slave node can die)"
    return (f"in the {topology} topology with this DBC every message is sent by the master (no "
            "message carries per-cell readings a module card would send), so there is no slave "
            "node")


def _clamp(sig: Any, value: float) -> float:
    lo = sig.minimum if sig.minimum is not None else value
    hi = sig.maximum if sig.maximum is not None else value
    return min(max(value, lo), hi)
