"""The SCPI command subsets of the Keithley 2400 and 2450 that labctl's drivers use.

One `ScpiSession` per client connection: it splits a message at ';', normalises
each header to its SCPI short form (SOURCE:CURRENT -> SOUR:CURR), runs it on the
shared `SimSmu` and returns the answers of the queries joined by ';'. Unknown
headers queue -113 "Undefined header", bad values -222 "Parameter data out of
range", as the instruments do; `SYST:ERR?` reads the queue.
"""

from __future__ import annotations

import re

from labctl.simserve.smu import SimSmu

IDN = {
    "keithley-2400": "KEITHLEY INSTRUMENTS INC.,MODEL 2400,LABCTL-SIM-2400,C32 labctl-sim",
    "keithley-2450": "KEITHLEY INSTRUMENTS,MODEL 2450,LABCTL-SIM-2450,1.7.12b labctl-sim",
}
PERSONALITIES = tuple(IDN)
OVERFLOW = "+9.910000E+37"
_VOWELS = set("AEIOU")
_ACCEPTED = {  # configuration the simulation does not need to act on
    "FORM:ELEM", "SENS:FUNC:CONC", "SENS:FUNC:ALL", "SOUR:CURR:RANG:AUTO", "SOUR:VOLT:RANG:AUTO",
    "SENS:VOLT:RANG:AUTO", "SENS:CURR:RANG:AUTO", "SENS:CURR:NPLC", "SENS:VOLT:NPLC",
    "SOUR:CURR:READ:BACK", "SOUR:VOLT:READ:BACK", "*CLS", "SYST:BEEP",
}


def short_form(node: str) -> str:
    """SCPI short form of one header node: 4 letters, or 3 when the 4th is a vowel."""
    node = re.sub(r"\d+$", "", node.upper())
    if len(node) <= 4 or node.startswith("*"):
        return node
    return node[:3] if node[3] in _VOWELS else node[:4]


def normalise(header: str) -> str:
    query = header.endswith("?")
    nodes = [short_form(n) for n in header.rstrip("?").lstrip(":").split(":") if n]
    # Default nodes: SOUR:CURR:LEV == SOUR:CURR, SOUR:CURR:LEV:IMM:AMPL too.
    while nodes and nodes[-1] in ("IMM", "AMPL") and len(nodes) > 2:
        nodes.pop()
    if len(nodes) == 3 and nodes[0] == "SOUR" and nodes[2] == "LEV":
        nodes.pop()
    return ":".join(nodes) + ("?" if query else "")


def _bool(arg: str) -> bool:
    a = arg.strip().upper()
    if a in ("1", "ON"):
        return True
    if a in ("0", "OFF"):
        return False
    raise ValueError(arg)


def _function(arg: str) -> str:
    a = short_form(arg.strip().strip("'\"").split(":")[0])
    if a not in ("CURR", "VOLT"):
        raise ValueError(arg)
    return a


class ScpiSession:
    def __init__(self, smu: SimSmu, personality: str):
        if personality not in IDN:
            raise ValueError(f"unknown instrument {personality!r}; known: {', '.join(IDN)}")
        self.smu = smu
        self.personality = personality
        self.errors: list[str] = []
        self.sense = "VOLT"  # 2450: the sensed function ('READ' element)

    def handle(self, message: str) -> str | None:
        """Answers of the queries in `message` (None if it had none)."""
        answers = []
        for command in message.strip().split(";"):
            command = command.strip()
            if not command:
                continue
            header, _, arg = command.partition(" ")
            try:
                answer = self._one(normalise(header), arg.strip())
            except ValueError:
                self.errors.append('-222,"Parameter data out of range"')
                continue
            except KeyError:
                self.errors.append('-113,"Undefined header"')
                continue
            except Exception as exc:  # the simulation refused: a device error, as hardware reports
                self.errors.append(f'-300,"Device-specific error; {type(exc).__name__}: {exc}"')
                if header.endswith("?"):
                    answers.append(OVERFLOW)
                continue
            if answer is not None:
                answers.append(answer)
        return ";".join(answers) if answers else None

    def _one(self, h: str, arg: str) -> str | None:
        smu = self.smu
        if h in _ACCEPTED:
            return None
        if h == "*IDN?":
            return IDN[self.personality]
        if h == "*RST":
            smu.set_output(False)
            return None
        if h == "SYST:ERR?":
            if self.errors:
                return self.errors.pop(0)
            return '0,"No error"' if self.personality == "keithley-2400" else '0,"No error;0;0 0"'
        if h == "OUTP":
            smu.set_output(_bool(arg))
            return None
        if h == "OUTP?":
            return "1" if smu.output_on else "0"
        if h == "SOUR:FUNC":
            smu.set_function(_function(arg))
            return None
        if h == "SOUR:FUNC?":
            return smu.function
        if h == "SENS:FUNC":
            self.sense = _function(arg.split(",")[0]) if self.personality == "keithley-2450" else "VOLT"
            return None
        if h == "SOUR:CURR":
            smu.set_current_level(float(arg))
            return None
        if h == "SOUR:CURR?":
            return f"{smu.current_level_a:g}"
        if h == "SOUR:VOLT":
            smu.set_voltage_level(float(arg))
            return None
        if h == "SOUR:VOLT?":
            return f"{smu.voltage_level_v:g}"
        if h in ("SENS:VOLT:PROT", "SOUR:CURR:VLIM"):
            smu.set_voltage_limit(float(arg))
            return None
        if h in ("SENS:VOLT:PROT?", "SOUR:CURR:VLIM?"):
            return f"{smu.voltage_limit_v:g}"
        if h in ("SENS:CURR:PROT", "SOUR:VOLT:ILIM"):
            smu.set_current_limit(float(arg))
            return None
        if h in ("SENS:CURR:PROT?", "SOUR:VOLT:ILIM?"):
            return f"{smu.current_limit_a:g}"
        if h in ("READ?", "MEAS:VOLT?", "MEAS:CURR?"):
            return self._reading(h, arg)
        raise KeyError(h)

    def _reading(self, h: str, arg: str) -> str:
        r = self.smu.read()
        if self.personality == "keithley-2400":
            status = 8 if r.compliance else 0  # bit 3: in compliance
            return f"{r.voltage_v:+.6E},{r.current_a:+.6E},{OVERFLOW},{r.time_s:+.6E},{status:+.6E}"
        # 2450: READ? ["buffer"[, elements...]]; READing = the sensed function.
        sense = {"MEAS:VOLT?": "VOLT", "MEAS:CURR?": "CURR"}.get(h, self.sense)
        sensed, sourced = ((r.voltage_v, r.current_a) if sense == "VOLT"
                           else (r.current_a, r.voltage_v))
        values = {"READ": sensed, "SOUR": sourced, "REL": r.time_s}
        elements = [e.strip().upper()[:4] for e in arg.split(",")[1:]] or ["READ"]
        return ",".join(f"{values[e]:.6E}" for e in elements)  # KeyError -> -113
