"""Built-in step types and exporters, registered through the same hooks as any plugin."""

from __future__ import annotations

from labctl.plugins import ExporterInfo, StepTypeInfo, hookimpl


@hookimpl
def labctl_step_types() -> list[StepTypeInfo]:
    return [
        StepTypeInfo("step", "An electrical step in the step grammar: 'Charge at 1C until 3.65 V'"),
        StepTypeInfo("repeat", "Repeat steps a number of times and/or until a measured condition"),
        StepTypeInfo("chamber", "Thermal chamber set-point with stabilisation"),
        StepTypeInfo("include", "Another procedure file, with parameters"),
    ]


def _export(fmt: str):
    def run(run, out):
        from labctl.store.export import export_run

        return export_run(run, fmt, out)

    return run


@hookimpl
def labctl_exporters() -> list[ExporterInfo]:
    return [
        ExporterInfo("csv", "Timeseries as CSV with labctl's column names", _export("csv")),
        ExporterInfo("parquet", "Timeseries, steps and cycles tables as Parquet", _export("parquet")),
        ExporterInfo("bdf", "Battery Data Format CSV (column names like 'Test Time / s')", _export("bdf")),
    ]
