"""What the Start form says of a plan: human numbers, and no unqualified expected end for a
plan that stopped early."""

from __future__ import annotations

from labctl.console.planview import outcome, plan_view, quantity, readable, rough_line


def _plan(**over):
    plan = {
        "status": "completed", "reason": "all steps done", "run_duration_s": 720 * 3600.0,
        "duration_s": 720 * 3600.0, "max_duration_s": None,
        "expected_end": "2026-12-07T18:40:22+01:00", "max_temperature_c": 26.615,
        "run_samples": 1_665_924, "run_disk_bytes": 206e6, "approximate": False,
        "warnings": [], "notes": [], "refused": None,
        "steps": [
            {"path": "steps[0].steps[0]", "text": "Charge at 0.3333C until 3.65 V", "count": 40,
             "duration_s": 12000.0, "end_reasons": {"condition: reached 3.65 V": 40},
             "charge_capacity_ah": 1.953, "discharge_capacity_ah": 0.0,
             "max_temperature_c": 25.9},
            {"path": "steps[0].steps[1].steps[0]", "text": "Charge at 0.3333C until 3.65 V",
             "count": 121, "duration_s": 29.88,
             "end_reasons": {"time: time elapsed": 120,
                             "condition: reached 2.5 V (cell limit 2.5 V)": 1},
             "charge_capacity_ah": None, "discharge_capacity_ah": 0.018,
             "max_temperature_c": None},
        ],
        "margins": {
            "min_temperature": {"limit": -20.0, "value": 25.0, "margin": 45.0, "unit": "°C",
                                "path": "steps[0]", "text": "Rest", "iteration": [],
                                "test_time_s": 0.0},
            "max_voltage": {"limit": 3.7, "value": 3.6500000000001904,
                            "margin": 0.04999999999980975, "unit": "V", "reached": True,
                            "path": "steps[1].steps[0]", "text": "Charge", "iteration": [14, 2],
                            "test_time_s": 16_500_000.0},
            "charge_current": {"limit": 2.31, "value": 0.0, "margin": 2.31, "unit": "A",
                               "path": "steps[0]", "text": "Rest", "iteration": [],
                               "test_time_s": 0.0},
        },
    }
    plan.update(over)
    return plan


def test_e_notation_is_written_for_people():
    assert readable("2e+12 samples, 3.17e+04 years") == "2 × 10¹² samples, 3.17 × 10⁴ years"
    assert readable("a period of 1e-05 s") == "a period of 1 × 10⁻⁵ s"
    # paths, hashes and words are left alone
    assert readable("steps[1].steps[1] run 3e10ab x2e5") == "steps[1].steps[1] run 3e10ab x2e5"


def test_quantities_have_sensible_precision():
    assert quantity(-20.0, "°C") == "-20.0 °C"
    assert quantity(26.615, "°C") == "26.6 °C"
    assert quantity(3.6500000000001904, "V") == "3.65 V"
    assert quantity(0.04999999999980975, "V") == "0.05 V"
    assert quantity(6.93, "A") == "6.93 A"
    assert quantity(-0.0, "A") == "0 A"
    assert quantity(None, "V") == "-"


def test_summary_durations_and_numbers_are_human():
    v = plan_view(_plan())
    s = v["summary"]
    assert s["duration"] == "30.0 days"  # not 720:00:00
    assert s["max_temperature"] == "26.6 °C"
    assert s["data"] == "1,665,924 samples, 206 MB on disk"
    assert s["expected_end"] == "2026-12-07T18:40:22+01:00"  # with its offset, for the browser
    first, second = v["steps"]
    assert first["duration"] == "3 h 20 min" and first["runs"] == "40"
    assert second["duration"] == "29.9 s" and second["runs"] == "121"
    assert second["ends"] == "time elapsed (120 of 121); reached 2.5 V (cell limit 2.5 V) (1 of 121)"
    assert second["ah_in"] == "-" and second["max_temperature"] == "-"
    margins = {m["name"]: m for m in v["margins"]}
    assert margins["min_temperature"]["limit"] == "-20.0 °C"
    assert margins["max_voltage"]["closest"] == "3.65 V"
    assert margins["max_voltage"]["margin"] == "0.05 V (reached)"
    assert margins["max_voltage"]["path"] == "steps[1].steps[0], iterations 14, 2"
    assert margins["max_voltage"]["at"] == "191.0 days"
    assert margins["charge_current"]["text"] == "never flows"


def test_identical_steps_are_told_apart_by_their_place():
    steps = plan_view(_plan())["steps"]
    assert steps[0]["text"] == steps[1]["text"]
    assert [s["path"] for s in steps] == ["steps[0].steps[0]", "steps[0].steps[1].steps[0]"]
    assert [s["depth"] for s in steps] == [1, 2]


def test_the_outcome_agrees_with_the_warnings():
    assert outcome(_plan()) == ("completed, no warnings", "ok")
    text, tone = outcome(_plan(warnings=["steps[1] 'x' ends on the cell's limit ..."]))
    assert text == "completed, with 1 warning (below)" and tone == "warn"
    text, tone = outcome(_plan(status="aborted",
                               reason="the run passes its maximum duration of 3600 s"))
    assert text.startswith("aborted: the run passes") and tone == "bad"
    text, _ = outcome(_plan(refused="it would run 3.17e+04 years, longer than ..."))
    assert text.startswith("refused by labctl validate and run: it would run 3.17 × 10⁴ years")


def test_a_plan_that_stopped_early_has_no_expected_end():
    v = plan_view(_plan(status="truncated",
                        reason="planning stopped after 3 s of computing, at step 1,234"))
    s = v["summary"]
    assert s["expected_end"] is None
    assert s["end_note"] == "not known: planning stopped early"
    assert s["duration"] == "more than 30.0 days"
    assert s["outcome"] == "not known (planning stopped after 3 s of computing, at step 1,234)"
    assert "truncated" not in str(s)


def test_max_duration_cut_and_far_future():
    v = plan_view(_plan(duration_s=208 * 86400.0, run_duration_s=30 * 86400.0,
                        max_duration_s=30 * 86400.0))
    assert v["summary"]["duration_note"] == \
        "the procedure needs 208.0 days; its max_duration stops it first"
    far = plan_view(_plan(run_duration_s=1e12, expected_end=None))["summary"]
    assert far["expected_end"] is None and far["end_note"].startswith("none in the calendar")


def test_the_rough_estimate_is_labelled_and_says_where_things_are():
    line = rough_line({"status": "completed", "duration_s": 191.2 * 86400, "n_samples": 1665924,
                       "disk_bytes": 206e6, "approximate": True, "warnings": ["w"]})
    assert line == ("Rough estimate: 191.2 days, 1,665,924 samples, 206 MB on disk "
                    "(approximate); 1 warning, listed with the full plan")
    cut = rough_line({"status": "truncated", "reason": "planning stopped after 3 s",
                      "duration_s": 32 * 3600.0, "n_samples": 128447, "disk_bytes": 36.6e6,
                      "approximate": False,
                      "warnings": ["planning stopped after 3 s", "a", "b"]})
    assert cut.startswith("Rough estimate: more than 32 h, more than 128,447 samples")
    assert "the quick plan stopped after 3 s" in cut and "2 warnings" in cut
    assert "labctl plan" not in line + cut


def test_no_estimate_without_a_cell_model():
    line = rough_line({"status": "unplanned", "duration_s": 1860.0, "warnings": []})
    assert line == ("No estimate: the cell has no model to simulate (the plan below says why); "
                    "at least 31 min (its timed rests alone)")
