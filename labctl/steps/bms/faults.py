"""bms_fault_injection: inject a sensor, node or frame fault; the flag and the safe state must
follow in time, or the frame checks must catch it.

Flag faults work on pack-level signals too (the flag and the contactor state are all they
read). A dead node needs a slave node: before the run, a simulated BMS's topology and DBC
say whether there is one (a BMS whose messages the master sends alone has none)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from labctl.analysis.bms.checks import message_checks
from labctl.can.frames import FrameBatch
from labctl.can.roles import EITHER_FAULT, FAULT_ROLES
from labctl.capabilities.cycler import StepEnd
from labctl.steps.bms.session import BmsSession, BmsStep, stimulus
from labctl.units import CURRENT, TIME

FAULTS = {"stuck_sensor": "fault_sensor", "drifting_sensor": "fault_sensor",
          "open_wire": "fault_sensor", "dead_node": "fault_comm", "drop_frames": "counter_errors",
          "delay_frames": "max_gap", "bad_checksum": "checksum_errors"}




@dataclass(frozen=True)
class FaultStep(BmsStep):
    fault: str = "open_wire"
    expect: str = "fault_sensor"
    within_s: float = 1.0
    cell: int | None = None
    node: str | None = None
    message: str | None = None
    message_role: str | None = None
    rate_v_per_s: float = 0.0
    count: int = 0
    every: int = 0
    delay_s: float = 0.0
    current_a: float = 0.0
    duration_s: float = 5.0

    def execute(self, run: Any) -> StepEnd:
        s = BmsSession(run)
        stim = stimulus(s)
        if not s.close_contactors(1.0):
            s.check(f"{self.fault}.contactor_closed_before", 0.0, "", 1, 1, "contactors did not close")
            return s.finish(self.text)
        before = s.observe(1.0)  # frames before the fault: a gap at the boundary shows too
        message = self.message
        if message is None and self.message_role:
            message = s.smap.refs(self.message_role)[0].message
        t_on = s.now
        stim.inject(self.fault, cell=self.cell, node=self.node, message=message,
                    rate_v_per_s=self.rate_v_per_s, count=self.count, every=self.every,
                    delay_s=self.delay_s)
        if self.current_a:  # a load makes a stuck reading part from the real cell
            stim.set_current(self.current_a)
        batch = s.observe(max(self.duration_s, self.within_s + 2.0))
        stim.set_current(0.0)
        if self.expect.startswith("fault_"):
            flag = s.smap.first(*EITHER_FAULT.get(self.expect, (self.expect,)))
            first, before = s.first_true(batch, flag, t_on)
            s.check(f"{self.fault}.{self.expect}", None if first is None else first - t_on, "s",
                    None, self.within_s, f"time to the {self.expect} flag")
            t_open, _ = s.first_true(batch, "contactor_closed", t_on, value=False)
            s.check(f"{self.fault}.safe_state", None if t_open is None else t_open - t_on, "s",
                    None, self.within_s + s.period("contactor_closed"), "contactors open")
        else:
            # the bus check of that message (default limits) must fail: the fault was seen
            found = [c for c in message_checks(s.smap, s.decoder, FrameBatch.concat([before, batch]))
                     if c.name == f"{message}.{self.expect}"]
            if found:
                s.check(f"{self.fault}.{message}.{self.expect}", found[0].value, found[0].unit,
                        None, None, f"limits of the timing check: {found[0].low} .. {found[0].high}")
            s.check(f"{self.fault}.detected_{self.expect}",
                    float(bool(found) and found[0].verdict == "fail"), "", 1, 1,
                    f"the injected fault made the {self.expect} check of {message} fail")
        stim.clear_faults()
        s.observe(3.0)
        return s.finish(self.text)

    def check_more(self, checker: Any, smap: Any, station: Any) -> None:
        binding = station.instruments.get("bms")
        if self.message is not None and self.message not in smap.device_messages():
            checker.add(f"bms_fault_injection: {self.message!r} is not a message the BMS sends; "
                        f"it sends: {', '.join(smap.device_messages())}")
        if (self.message in smap.device_messages() and self.expect in ("max_gap", "jitter")
                and smap.period_s(self.message) is None):
            checker.add(f"bms_fault_injection: {self.expect} of {self.message} is judged against "
                        "its cycle time, and it has none (no GenMsgCycleTime in the DBC, no "
                        f"cycle_times entry in the station); add 'cycle_times: {{{self.message}: "
                        "100 ms}' (its real period) to the bms instrument")
        if self.fault != "dead_node" or binding is None or binding.driver != "sim-bms":
            return
        from labctl.sim.bms.nodes import build_schedules, nodes_with_cells
        from labctl.sim.bms.sim import dead_node_choices

        topology = binding.settings.get("topology", "centralized")
        nodes = sorted(nodes_with_cells(build_schedules(smap, str(topology), 0)))
        if self.node is None and nodes:
            return
        if self.node not in nodes:
            checker.add(f"bms_fault_injection dead_node: node {self.node!r} does not exist; "
                        + dead_node_choices(str(topology), nodes))


def compile_fault(spec: Any) -> FaultStep | None:
    keys = ("fault", "expect", "within", "cell", "node", "message", "message_role", "rate", "count",
            "every", "delay", "current", "duration")
    if not spec.mapping(keys, required=("fault",)):
        return None
    fault = spec.choice("fault", tuple(FAULTS))
    if fault is None:
        return None
    expect = spec.text("expect", FAULTS[fault])
    within = spec.quantity("within", TIME, 1.0, positive=True)
    cell = spec.integer("cell")
    node = spec.text("node")
    message = spec.text("message")
    message_role = spec.text("message_role")
    rate = spec.quantity("rate", "number", 0.0)
    count = spec.integer("count", 0) if spec.raw("count") is not None else 0
    every = spec.integer("every", 0) if spec.raw("every") is not None else 0
    delay = spec.quantity("delay", TIME, 0.0, minimum=0.0)
    current = spec.quantity("current", CURRENT, 0.0)
    duration = spec.quantity("duration", TIME, 5.0, positive=True)
    if fault in ("stuck_sensor", "drifting_sensor", "open_wire") and cell is None:
        spec.error(None, f"fault {fault} needs 'cell'")
    if fault in ("drop_frames", "delay_frames", "bad_checksum") and not (message or message_role):
        spec.error(None, f"fault {fault} needs 'message' (a message the BMS sends) or "
                         "'message_role' (the role whose message it is, e.g. pack_current_a)")
    if fault == "delay_frames" and not delay:
        spec.error("delay", "fault delay_frames needs 'delay' (how late each frame leaves)")
    if not spec.ok or within is None:
        return None
    roles: tuple = ("contactor_closed", "cmd_contactor_close")
    if expect.startswith("fault_"):
        roles += (EITHER_FAULT.get(expect, expect),)
    if message_role:
        roles += (message_role,)
    allowed = (*EITHER_FAULT, *FAULT_ROLES, "counter_errors", "checksum_errors", "max_gap", "jitter")
    if expect not in allowed:
        spec.error("expect", f"expect one of {', '.join(dict.fromkeys(allowed))}, got {expect!r}")
        return None
    periods: tuple = ("contactor_closed",) if expect.startswith("fault_") else ()
    if expect in ("max_gap", "jitter") and message_role:  # judged against the cycle time
        periods += (message_role,)
    return FaultStep(f"bms_fault_injection {fault}", spec.source(), roles, "bms_fault_injection",
                     cells_used=(cell,) if cell is not None else (), period_roles=periods,
                     fault=fault, expect=expect, within_s=within, cell=cell, node=node,
                     message=message, message_role=message_role, rate_v_per_s=rate or 0.0, count=count or 0,
                     every=every or 0, delay_s=delay or 0.0, current_a=current or 0.0, duration_s=duration)

