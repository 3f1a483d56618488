"""Opening VISA instruments from a station binding, and mapping their errors to labctl's.

Every driver talks to its instrument through `guarded(name)`: a pyvisa timeout
becomes `InstrumentTimeout`, any other VISA/IO failure or an unparsable answer
`InstrumentError`, so the engine can put outputs in a safe state and report it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyvisa

from labctl.errors import InstrumentError, InstrumentTimeout, LabctlError
from labctl.stations.spec import InstrumentSpec

# Keys every VISA driver accepts in its station binding (besides its own).
VISA_SETTINGS = {"address", "visa_library", "timeout_s", "read_termination", "write_termination"}


def check_settings(binding: InstrumentSpec, allowed: set[str]) -> None:
    unknown = sorted(set(binding.settings) - allowed)
    if unknown:
        raise LabctlError(
            f"{binding.role}: unknown setting(s) {', '.join(unknown)} for driver {binding.driver!r}; "
            f"allowed: {', '.join(sorted(allowed))}")


def number(binding: InstrumentSpec, key: str, default: float | None, minimum: float = 0.0
           ) -> float | None:
    value = binding.settings.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= minimum:
        raise LabctlError(f"{binding.role}: setting {key} must be a number >= {minimum:g}, "
                          f"got {value!r}")
    return float(value)


def visa_library(binding: InstrumentSpec, station_file: str | None) -> str | None:
    """The binding's `visa_library`; `@sim` alone means the `sim-devices.yaml` beside the
    station file (pyvisa-sim with labctl's device definitions), and a relative
    `FILE@sim` is taken relative to the station file's folder."""
    lib = binding.settings.get("visa_library")
    if not lib:
        return None
    lib = str(lib)
    if not lib.endswith("@sim") or station_file is None:
        return lib
    folder = Path(station_file).resolve().parent
    path = lib[: -len("@sim")] or "sim-devices.yaml"
    if not Path(path).is_absolute():
        path = str(folder / path)
    if not Path(path).is_file():
        raise LabctlError(f"{binding.role}: visa_library {lib!r}: no device file {path}")
    return f"{path}@sim"


def open_pymeasure(cls: type, binding: InstrumentSpec, station_file: str | None = None,
                   **extra: Any) -> Any:
    """A PyMeasure instrument on the binding's `address` (and `visa_library`, e.g. "@sim")."""
    s = binding.settings
    address = s.get("address")
    if not isinstance(address, str) or not address:
        raise LabctlError(f"{binding.role}: driver {binding.driver!r} needs 'address:' "
                          "(a VISA resource such as GPIB0::24::INSTR or "
                          "TCPIP::127.0.0.1::5025::SOCKET)")
    kwargs: dict[str, Any] = {
        "timeout": int(1000 * (number(binding, "timeout_s", 5.0, 0.001) or 5.0)),
        "read_termination": str(s.get("read_termination", "\n")),
        "write_termination": str(s.get("write_termination", "\n")),
    }
    lib = visa_library(binding, station_file)
    if lib:
        kwargs["visa_library"] = lib
    kwargs.update(extra)
    with guarded(f"{binding.role} ({binding.driver}) at {address}"):
        return cls(address, **kwargs)


class guarded:  # noqa: N801 - used like a function: `with guarded(name):`
    """Translate instrument-link failures into labctl errors naming the instrument.

    A class, not @contextmanager: it wraps every reading, so it must cost next to nothing.
    """

    __slots__ = ("name",)

    def __init__(self, name: str):
        self.name = name

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, exc: Any, tb: Any) -> bool:
        if exc is None or isinstance(exc, InstrumentError):
            return False
        name = self.name
        if isinstance(exc, pyvisa.errors.VisaIOError):
            if exc.error_code == pyvisa.constants.StatusCode.error_timeout:
                raise InstrumentTimeout(f"{name}: no answer in time ({exc.description})") from None
            raise InstrumentError(f"{name}: {exc.description}") from None
        if isinstance(exc, OSError | ValueError | IndexError | TypeError):
            # ValueError/IndexError: an answer that does not parse; OSError: socket/serial failure.
            raise InstrumentError(f"{name}: {type(exc).__name__}: {exc}") from None
        if type(exc).__module__.startswith(("pyvisa", "pyvisa_sim", "serial")):
            raise InstrumentError(f"{name}: {type(exc).__name__}: {exc}") from None
        return False


def parse_idn(idn: str) -> dict[str, str]:
    """`*IDN?` -> make, model, serial, firmware (missing fields are empty)."""
    parts = [p.strip() for p in idn.strip().split(",")]
    parts += [""] * (4 - len(parts))
    return {"idn": idn.strip(), "make": parts[0], "model": parts[1], "serial": parts[2],
            "firmware": ",".join(parts[3:]).strip(",")}


def scpi_error(answer: str) -> tuple[int, str]:
    """`SYST:ERR?` -> (code, message); 0 means no error."""
    code, _, message = answer.strip().partition(",")
    return int(float(code)), message.strip().strip('"')
