"""Helpers for tests that run the `labctl` command as a user does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def labctl_cmd(*args: str, cwd: Path | None = None, timeout: float = 120, env: dict | None = None,
               check: bool = False) -> subprocess.CompletedProcess:
    """Run the `labctl` command the way a user does (a subprocess)."""
    full_env = dict(os.environ)
    full_env.pop("LABCTL_SIM_SPEED", None)
    if env:
        full_env.update(env)
    proc = subprocess.run(
        [sys.executable, "-m", "labctl.cli", *args],
        cwd=cwd or REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"labctl {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def json_out(proc: subprocess.CompletedProcess) -> dict:
    return json.loads(proc.stdout)


class WrappedSimCycler:
    """The simulated cycler with hooks to misbehave: tests' fault-injecting drivers.

    `before_batch()` runs before each batch is asked for (raise there to time out or
    disconnect); `on_batch(batch)` may change a batch (garbage values). State
    hand-over (`get_state`/`set_state`) goes to the simulated channel.
    """

    def __init__(self, inner):
        self.inner = inner
        self.ranges = inner.ranges
        self.safe_calls = 0

    def before_batch(self) -> None:
        pass

    def on_batch(self, batch):
        return batch

    def identify(self):
        return self.inner.identify()

    def get_state(self):
        return self.inner.get_state()

    def set_state(self, state):
        self.inner.set_state(state)

    def run_step(self, step, limits, logging):
        gen = self.inner.run_step(step, limits, logging)
        try:
            while True:
                self.before_batch()
                yield self.on_batch(next(gen))
        except StopIteration as stop:
            return stop.value
        finally:
            gen.close()

    def safe_state(self):
        self.safe_calls += 1
        self.inner.safe_state()

    def close(self):
        self.inner.close()


def from_import_base(node: Any, module: str, is_package: bool) -> str:
    """The absolute module an `ast.ImportFrom` in `module` (a package's `__init__` when
    `is_package`) imports from: relative imports resolved one package up per extra dot."""
    if not node.level:
        return node.module or ""
    base = module if is_package else module.rpartition(".")[0]
    for _ in range(node.level - 1):
        base = base.rpartition(".")[0]
    return f"{base}.{node.module}" if node.module else base
