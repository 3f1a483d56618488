"""A thermocouple logger (several channels) over a serial line as the `thermometer` role.

Protocol (ASCII, CR LF):

| command | answer | meaning |
| --- | --- | --- |
| `*IDN?` | `MAKER,MODEL,SERIAL,FIRMWARE` | identity |
| `UNIT?` | `K` or `C` | unit of the readings |
| `TYPE?` | `K,K,T,K` | thermocouple type per channel |
| `READ?` | `298.15,299.01,OPEN,296.5` | one reading per channel; `OPEN` = broken thermocouple |

Readings are converted to °C. An open thermocouple reads NaN (the engine's
temperature checks skip NaN), unless `open_is_error: true`.
"""

from __future__ import annotations

import math
from typing import Any

from labctl.drivers.serial_link import SERIAL_SETTINGS, AsciiLink, open_serial
from labctl.drivers.visa_link import check_settings, parse_idn
from labctl.errors import InstrumentError, LabctlError
from labctl.stations.spec import InstrumentSpec

ZERO_C_IN_K = 273.15


class TcLogger:
    def __init__(self, link: AsciiLink, channels: tuple[str, ...], *, open_is_error: bool = False,
                 calibration_due: str | None = None):
        self.link = link
        self.channels = channels
        self.open_is_error = open_is_error
        self.calibration_due = calibration_due
        unit = link.query("UNIT?").strip().upper()
        if unit not in ("K", "C"):
            raise InstrumentError(f"{link.name}: UNIT? answered {unit!r}; expected K or C")
        self.offset = -ZERO_C_IN_K if unit == "K" else 0.0
        types = link.query("TYPE?").split(",")
        if len(types) < len(channels):
            raise InstrumentError(f"{link.name}: the logger has {len(types)} channels, the station "
                                  f"names {len(channels)}")
        self.types = tuple(t.strip() for t in types[: len(channels)])

    def identify(self) -> dict[str, str]:
        out = parse_idn(self.link.query("*IDN?"))
        out["thermocouples"] = ",".join(self.types)
        if self.calibration_due:
            out["calibration_due"] = self.calibration_due
        return out

    def read_temperatures_c(self) -> dict[str, float]:
        fields = self.link.query("READ?").split(",")
        if len(fields) < len(self.channels):
            raise InstrumentError(f"{self.link.name}: READ? gave {len(fields)} values for "
                                  f"{len(self.channels)} channels")
        out = {}
        for name, field in zip(self.channels, fields, strict=False):
            field = field.strip()
            if field.upper() == "OPEN":
                if self.open_is_error:
                    raise InstrumentError(f"{self.link.name}: thermocouple {name!r} is open")
                out[name] = math.nan
                continue
            try:
                out[name] = float(field) + self.offset
            except ValueError:
                raise InstrumentError(f"{self.link.name}: {name!r} read {field!r}") from None
        return out

    def safe_state(self) -> None:
        """A logger drives nothing: nothing to make safe."""

    def close(self) -> None:
        self.link.close()


def make_tc_logger(binding: InstrumentSpec, context: Any) -> TcLogger:
    check_settings(binding, SERIAL_SETTINGS | {"channels", "open_is_error"})
    channels = binding.settings.get("channels")
    if not isinstance(channels, list) or not channels or not all(
            isinstance(c, str) and c for c in channels):
        raise LabctlError(f"{binding.role}: 'channels:' must list the channel names in order, "
                          "e.g. [cell_top, cell_bottom, ambient]")
    link = AsciiLink(open_serial(binding), f"{binding.role} (tc logger at "
                                           f"{binding.settings['port']})")
    try:
        return TcLogger(link, tuple(channels), open_is_error=bool(binding.settings.get(
            "open_is_error", False)), calibration_due=binding.calibration_due)
    except Exception:
        link.close()
        raise
