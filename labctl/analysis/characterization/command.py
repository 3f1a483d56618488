"""`labctl analyze ocv|gitt|hppc|soc RUN ...`: click commands over the run-level analyses."""

from __future__ import annotations

from typing import Any

import click

from labctl.importers.target import run_or_import


def _cli() -> Any:
    # Imported when the command is built, not when the plugin registers.
    import labctl.commands.common as cli

    return cli


def _report(as_json: bool, folder: Any, summary: dict, lines: list[str]) -> None:
    cli = _cli()
    if as_json:
        cli.emit_json({"ok": True, "folder": str(folder), "summary": summary})
        return
    for line in lines:
        click.echo(line)
    click.echo(f"results: {folder}")


def _g(x: Any, fmt: str = ".4g") -> str:
    return "n/a" if x is None else format(x, fmt)


def ocv_command() -> click.Command:
    cli = _cli()

    @click.command("ocv")
    @click.argument("run")
    @click.option("--method", type=click.Choice(["auto", "pseudo", "rests"]), default="auto",
                  show_default=True, help="pseudo: slow charge/discharge branches; rests: "
                  "relaxed rest end points (GITT, HPPC).")
    @click.option("--grid-points", type=click.IntRange(3, 100001), default=101, show_default=True)
    @click.option("--min-rest-s", type=click.FloatRange(0, min_open=True), default=1200.0,
                  show_default=True, help="Shortest rest used by --method rests.")
    @click.option("--no-plots", is_flag=True, help="Skip the PNG figure.")
    @cli.results_option
    @cli.json_option
    @cli.user_errors
    def command(run: str, method: str, grid_points: int, min_rest_s: float, no_plots: bool,
                results: str, as_json: bool) -> None:
        """OCV-SoC table of a run: RUN/analysis/ocv/ocv.csv is in the cell-file format."""
        from labctl.analysis.characterization.ocv_run import analyze_ocv

        folder, s = analyze_ocv(run_or_import(run, results), method=method,
                                grid_points=grid_points, min_rest_s=min_rest_s,
                                plots=not no_plots)
        lines = [f"OCV by {s['method']}: {_g(s['ocv_v_at_soc_50'])} V at 50 % SoC"]
        if "mean_hysteresis_v_soc_10_90" in s:
            lines.append(f"  capacity charge {_g(s['charge_capacity_ah'])} Ah, discharge "
                         f"{_g(s['discharge_capacity_ah'])} Ah; hysteresis (10-90 %) "
                         f"{1e3 * s['mean_hysteresis_v_soc_10_90']:.1f} mV")
        _report(as_json, folder, s, lines)

    return command


def gitt_command() -> click.Command:
    cli = _cli()

    @click.command("gitt")
    @click.argument("run")
    @click.option("--length-um", type=float, default=None, help="Diffusion length L (µm).")
    @click.option("--radius-um", type=float, default=None,
                  help="Particle radius (µm), spheres: L = r/3.")
    @click.option("--mass-g", type=float, default=None, help="Active mass (g), mass form.")
    @click.option("--molar-volume-cm3-per-mol", type=float, default=None)
    @click.option("--molar-mass-g-per-mol", type=float, default=None)
    @click.option("--area-cm2", type=float, default=None, help="Electrode area (cm²), mass form.")
    @click.option("--min-rest-s", type=click.FloatRange(0), default=60.0, show_default=True)
    @click.option("--no-plots", is_flag=True)
    @cli.results_option
    @cli.json_option
    @cli.user_errors
    def command(run: str, length_um: float | None, radius_um: float | None, mass_g: float | None,
                molar_volume_cm3_per_mol: float | None, molar_mass_g_per_mol: float | None,
                area_cm2: float | None, min_rest_s: float, no_plots: bool, results: str,
                as_json: bool) -> None:
        """GITT: relaxed OCV vs SoC and the Weppner-Huggins diffusion coefficient per pulse."""
        from labctl.analysis.characterization.gitt_run import analyze_gitt, diffusion_length_m

        length = diffusion_length_m(length_um=length_um, radius_um=radius_um, mass_g=mass_g,
                                    molar_volume_cm3_per_mol=molar_volume_cm3_per_mol,
                                    molar_mass_g_per_mol=molar_mass_g_per_mol, area_cm2=area_cm2)
        folder, s = analyze_gitt(run_or_import(run, results), length_m=length,
                                 min_rest_s=min_rest_s, plots=not no_plots)
        lines = [f"{s['n_pulses']} pulses ({s['n_valid']} valid), capacity {_g(s['capacity_ah'])} Ah",
                 f"  median D/L^2 (valid pulses) {_g(s['median_d_over_l2_per_s'])} 1/s"
                 + (f", D {_g(s['median_d_m2_per_s'])} m^2/s" if s["median_d_m2_per_s"] else
                    "" if length is not None else " (give --radius-um or --length-um for D)")]
        if not s["n_valid"]:
            lines.append("  no valid pulse: tau D/L^2 > 0.1 or short rests (semi-infinite "
                         "diffusion does not hold)")
        _report(as_json, folder, s, lines)

    return command


def hppc_command() -> click.Command:
    cli = _cli()

    @click.command("hppc")
    @click.argument("run")
    @click.option("--ocv", "ocv", default=None,
                  help="OCV source: a pseudo-OCV or GITT run directory, or a CSV with soc, ocv_v "
                       "(default: the HPPC run's own set-point rests).")
    @click.option("--n-rc", type=click.IntRange(1, 2), default=1, show_default=True)
    @click.option("--direction", type=click.Choice(["both", "discharge", "charge"]),
                  default="both", show_default=True, help="Pulses averaged into the tables.")
    @click.option("--relax-s", type=click.FloatRange(0, min_open=True), default=120.0,
                  show_default=True, help="Rest after a pulse used by the RC fit.")
    @click.option("--ocv-rest-s", type=click.FloatRange(0, min_open=True), default=1200.0,
                  show_default=True, help="Shortest rest that counts as relaxed (OCV points).")
    @click.option("--activation-energy-ev", type=click.FloatRange(0), default=None,
                  help="Ea for the cell file (default: fitted from several temperatures, else 0).")
    @click.option("--no-plots", is_flag=True)
    @cli.results_option
    @cli.json_option
    @cli.user_errors
    def command(run: str, ocv: str | None, n_rc: int, direction: str, relax_s: float,
                ocv_rest_s: float, activation_energy_ev: float | None, no_plots: bool,
                results: str, as_json: bool) -> None:
        """HPPC: R0, RC pairs, DCIR vs SoC and temperature, R0 activation energy, a cell file.

        RUN/analysis/hppc/cell.yaml (with ocv.csv and ecm.csv) runs on the simulator:
        labctl run PROC --cell RUN/analysis/hppc/cell.yaml.
        """
        from labctl.analysis.characterization.hppc_run import analyze_hppc

        folder, s = analyze_hppc(run_or_import(run, results), ocv=ocv, n_rc=n_rc,
                                 direction=direction, relax_s=relax_s, ocv_rest_s=ocv_rest_s,
                                 activation_energy_ev=activation_energy_ev, plots=not no_plots)
        r0, r1, tau1 = (s["median_r0_ohm_soc_20_80"], s["median_r1_ohm_soc_20_80"],
                        s["median_tau1_s_soc_20_80"])
        lines = [f"{s['n_pulses']} pulses at {s['n_setpoints']} set-points "
                 f"({', '.join(f'{t:g} °C' for t in s['temperatures_c'])}), capacity "
                 f"{_g(s['capacity_ah'])} Ah",
                 f"  median (SoC 20-80 %): R0 {_g(r0 and 1e3 * r0)} mOhm, R1 "
                 f"{_g(r1 and 1e3 * r1)} mOhm, tau1 {_g(tau1)} s"]
        if s.get("activation_energy_ev") is not None:
            lines.append(f"  R0 activation energy {s['activation_energy_ev']:.3g} eV")
        if "cell_file" in s:
            lines.append(f"  cell file: {s['cell_file']}")
        _report(as_json, folder, s, lines)

    return command


def soc_command() -> click.Command:
    cli = _cli()

    @click.command("soc")
    @click.argument("run")
    @click.option("--cell-file", required=True, type=click.Path(dir_okay=False),
                  help="Cell file whose model the estimators use (e.g. analysis/hppc/cell.yaml).")
    @click.option("--method", "methods", multiple=True,
                  type=click.Choice(["coulomb", "ocv", "ekf", "ukf"]),
                  help="Estimators to run (repeatable; default: all four).")
    @click.option("--initial-soc-error", type=float, default=0.2, show_default=True,
                  help="Added to the true initial SoC (fraction: 0.2 = +20 %).")
    @click.option("--current-offset-a", type=float, default=0.0, show_default=True,
                  help="Current-sensor offset added to the logged current (A).")
    @click.option("--current-noise-a", type=click.FloatRange(0), default=0.0, show_default=True)
    @click.option("--noise", "voltage_noise_v", type=click.FloatRange(0), default=0.0,
                  show_default=True, help="Extra voltage noise, standard deviation (V).")
    @click.option("--n-rc", type=click.IntRange(0, 2), default=None,
                  help="RC pairs of the model the filters use (default: all).")
    @click.option("--window", type=click.Choice(["profile", "all"]), default="profile",
                  show_default=True, help="From the first profile step on, or the whole run.")
    @click.option("--initial-soc", type=click.FloatRange(0, 1), default=None,
                  help="Reference SoC at the window start (default: 1 at the end of the last hold).")
    @click.option("--tolerance", type=click.FloatRange(0, min_open=True), default=0.02,
                  show_default=True, help="Converged once the error stays within this.")
    @click.option("--seed", type=int, default=0, show_default=True)
    @click.option("--no-plots", is_flag=True)
    @cli.results_option
    @cli.json_option
    @cli.user_errors
    def command(run: str, cell_file: str, methods: tuple[str, ...], initial_soc_error: float,
                current_offset_a: float, current_noise_a: float, voltage_noise_v: float,
                n_rc: int | None, window: str, initial_soc: float | None, tolerance: float,
                seed: int, no_plots: bool, results: str, as_json: bool) -> None:
        """SoC estimators (Coulomb, OCV after rest, EKF, UKF) on a run vs the reference SoC."""
        from labctl.analysis.characterization.soc_run import METHODS, analyze_soc

        folder, s = analyze_soc(run_or_import(run, results), cell_file=cell_file,
                                methods=methods or METHODS, initial_soc_error=initial_soc_error,
                                current_offset_a=current_offset_a, current_noise_a=current_noise_a,
                                voltage_noise_v=voltage_noise_v, n_rc=n_rc, window=window,
                                initial_soc=initial_soc, tolerance=tolerance, seed=seed,
                                plots=not no_plots)
        lines = [f"{s['n_samples']} samples, {(s['window_end_s'] - s['window_start_s']) / 3600:.2f} h"]
        for m, sc in s["methods"].items():
            conv = sc["convergence_time_s"]
            lines.append(f"  {m:8s} RMSE {100 * sc['rmse']:.2f} %  max {100 * sc['max_abs_error']:.2f} %"
                         f"  converged {'never' if conv != conv else f'after {conv:.0f} s'}"
                         + ("" if conv != conv else
                            f" (then RMSE {100 * sc['rmse_after_convergence']:.2f} %, max "
                            f"{100 * sc['max_error_after_convergence']:.2f} %)"))
        _report(as_json, folder, s, lines)

    return command
