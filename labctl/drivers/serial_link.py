"""Line-based ASCII instruments over pyserial: a serial port, a pty, or TCP (`socket://`).

`open_serial` takes the binding's `port` (anything `serial.serial_for_url` accepts:
/dev/ttyUSB0, COM3, socket://10.0.0.5:57732, loop://) and `baudrate`; `AsciiLink`
sends a command line and reads the answer line, mapping silence to
`InstrumentTimeout` and port failures to `InstrumentError`.
"""

from __future__ import annotations

from typing import Any

from labctl.errors import InstrumentError, InstrumentTimeout, LabctlError
from labctl.stations.spec import InstrumentSpec

SERIAL_SETTINGS = {"port", "baudrate", "timeout_s"}


def open_serial(binding: InstrumentSpec, default_baud: int = 9600) -> Any:
    import serial

    s = binding.settings
    port = s.get("port")
    if not isinstance(port, str) or not port:
        raise LabctlError(f"{binding.role}: driver {binding.driver!r} needs 'port:' (a serial port "
                          "such as /dev/ttyUSB0 or COM3, or socket://HOST:PORT for TCP)")
    baud = s.get("baudrate", default_baud)
    timeout = s.get("timeout_s", 1.0)
    if isinstance(baud, bool) or not isinstance(baud, int) or baud <= 0:
        raise LabctlError(f"{binding.role}: baudrate must be a positive whole number, got {baud!r}")
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
        raise LabctlError(f"{binding.role}: timeout_s must be a number > 0, got {timeout!r}")
    try:
        return serial.serial_for_url(port, baudrate=baud, timeout=float(timeout))
    except (serial.SerialException, ValueError, OSError) as exc:
        raise InstrumentError(f"{binding.role} ({binding.driver}) at {port}: {exc}") from None


class AsciiLink:
    def __init__(self, port: Any, name: str, eol: str = "\r\n"):
        self.port = port
        self.name = name
        self.eol = eol.encode("ascii")

    def query(self, command: str) -> str:
        import serial

        try:
            self.port.reset_input_buffer()
            self.port.write(command.encode("ascii") + self.eol)
            line = self.port.read_until(self.eol[-1:])
        except (serial.SerialException, OSError) as exc:
            raise InstrumentError(f"{self.name}: {exc}") from None
        if not line.endswith(self.eol[-1:]):
            raise InstrumentTimeout(f"{self.name}: no answer in time to {command!r}")
        return line.decode("ascii", errors="replace").strip()

    def close(self) -> None:
        try:
            self.port.close()
        except Exception:  # closing a port that already failed
            pass
