// labctl console: tiles from server-sent events, the Start form, run control, plots.
// Plain JavaScript, no build step. Every POST carries the page's form token.
"use strict";

const TOKEN = document.querySelector('meta[name="labctl-token"]').content;

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") e.className = v; else if (k === "text") e.textContent = v;
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}

function fmt(x, digits, unit) {
  return (x === null || x === undefined || !isFinite(x)) ? "-" : x.toFixed(digits) + (unit || "");
}

function hms(s) {
  if (s === null || s === undefined || !isFinite(s)) return "-";
  if (s >= 2 * 86400) return `${(s / 86400).toFixed(1)} days`;  // as labctl plan says it, not 4582:21:31
  s = Math.round(s);
  const h = Math.floor(s / 3600), m = Math.floor(s % 3600 / 60), sec = s % 60;
  return `${h}:${String(m).padStart(2, "0")}:${String(sec).padStart(2, "0")}`;
}

async function post(url, body) {
  const r = await fetch(url, {method: "POST", credentials: "same-origin",
    headers: {"Content-Type": "application/json", "X-Labctl-Token": TOKEN},
    body: JSON.stringify(body || {})});
  let payload = {};
  try { payload = await r.json(); } catch (e) { payload = {ok: false, error: await r.text()}; }
  return payload;
}

function toast(text, bad) {
  const t = document.getElementById("toast");
  t.textContent = text; t.className = bad ? "show bad" : "show";
  clearTimeout(toast.timer); toast.timer = setTimeout(() => { t.className = ""; }, 4000);
}

function confirmDialog(text) {
  const d = document.getElementById("confirm");
  document.getElementById("confirm-text").textContent = text;
  return new Promise(resolve => {
    d.addEventListener("close", () => resolve(d.returnValue === "ok"), {once: true});
    d.showModal();
  });
}

// -- control (tiles and run page) -------------------------------------------------------------
const VERB = {pause: "Pause", continue: "Continue", stop: "Stop"};
async function command(run, cmd, label) {
  const what = label ? `${label} (${run})` : run;
  const text = cmd === "stop"
    ? `Stop run ${what}? Outputs go to their safe state and the run ends as aborted.`
    : `${VERB[cmd]} run ${what}?` + (cmd === "pause" ? " Outputs go off until you continue." : "");
  if (!await confirmDialog(text)) return;
  const r = await post(`/runs/${encodeURIComponent(run)}/control/${cmd}`, {});
  toast(r.ok ? `${cmd} sent to ${run}` : (r.error || "refused"), !r.ok);
}

document.addEventListener("click", ev => {
  const b = ev.target.closest("button[data-cmd]");
  if (b) command(b.dataset.run, b.dataset.cmd, b.dataset.label);
});

// -- Benches ----------------------------------------------------------------------------------
function tile(t) {
  const state = t.state;
  const step = t.step_index ? `Step ${t.step_index}${t.steps_total ? " of " + t.steps_total : ""}: ${t.step || ""}` + (t.cycle_index ? ` · cycle ${t.cycle_index}` : "") : "starting";
  const buttons = t.active ? el("div", {class: "actions"},
    el("button", {"data-cmd": "pause", "data-run": t.run_id, "data-label": t.procedure, disabled: state === "paused", text: "Pause"}),
    el("button", {"data-cmd": "continue", "data-run": t.run_id, "data-label": t.procedure, disabled: state !== "paused", text: "Continue"}),
    el("button", {"data-cmd": "stop", "data-run": t.run_id, "data-label": t.procedure, class: "danger", text: "Stop"})) : null;
  const alarm = t.alarm ? el("div", {class: "alarm" + (t.safety ? " safety" : "")},
    el("strong", {text: t.safety ? "SAFETY STOP: " : (state.toUpperCase() + ": ")}), t.reason || "") : null;
  return el("article", {class: `tile state-${state}` + (t.alarm ? " alarmed" : ""), "data-run": t.run_id},
    el("div", {class: "tile-head"},
      el("a", {href: `/runs/${encodeURIComponent(t.run_id)}`, class: "proc", text: t.procedure || t.run_id}),
      el("span", {class: `badge state state-${state}`, text: state})),
    el("div", {class: "sub", text: [t.bench ? `bench ${t.bench}` : null, t.cell, t.station, t.channel ? `cycler ${t.channel}` : null, t.host ? `on ${t.host}` : null].filter(Boolean).join(" · ")}),
    el("div", {class: "step", title: step, text: step}),
    el("div", {class: "readings"},
      el("div", {}, el("span", {class: "voltage", text: fmt(t.voltage_v, 4)}), el("label", {text: "V"})),
      el("div", {}, el("span", {class: "current", text: fmt(t.current_a, 3)}), el("label", {text: t.output_off ? "A · output off" : (t.active ? "A" : "A · last reading")})),
      el("div", {}, el("span", {class: "temperature", text: fmt(t.temperature_c, 1)}), el("label", {text: "°C"}))),
    el("div", {class: "times"},
      el("span", {text: `elapsed ${hms(t.test_time_s)}`}),
      el("span", {class: "remaining", text: `remaining ${t.remaining_s === null ? "-" : "≈ " + hms(t.remaining_s)}`,
                 title: "planned duration (labctl plan) minus the test time reached"})),
    alarm, buttons);
}

// Update tiles in place: a part is replaced only when it changed, so a button the operator
// is about to click is not swapped under the pointer every second.
function patchTile(old, fresh) {
  if (old.className !== fresh.className) old.className = fresh.className;
  if (old.children.length !== fresh.children.length) { old.replaceChildren(...fresh.childNodes); return; }
  [...fresh.children].forEach((child, i) => {
    if (old.children[i].outerHTML !== child.outerHTML) old.children[i].replaceWith(child);
  });
}

function renderTiles(tiles) {
  const box = document.getElementById("tiles");
  const existing = new Map([...box.children].map(e => [e.dataset.run, e]));
  const ordered = tiles.map(t => {
    const fresh = tile(t), old = existing.get(t.run_id);
    if (!old) return fresh;
    patchTile(old, fresh);
    return old;
  });
  ordered.forEach((e, i) => { if (box.children[i] !== e) box.insertBefore(e, box.children[i] || null); });
  while (box.children.length > ordered.length) box.lastElementChild.remove();
  const active = tiles.filter(t => t.active).length;
  document.getElementById("bench-count").textContent = `${active} active` + (tiles.length > active ? `, ${tiles.length - active} ended recently` : "");
  document.getElementById("no-runs").hidden = tiles.length > 0;
}

function benchesPage() {
  renderTiles(JSON.parse(document.getElementById("tiles-data").textContent));
  const dot = document.getElementById("live-dot");
  const src = new EventSource("/events/benches");
  src.onmessage = ev => { renderTiles(JSON.parse(ev.data)); dot.className = "live-dot on"; };
  src.onerror = () => { dot.className = "live-dot off"; };
}

// -- Start ------------------------------------------------------------------------------------
// An expected end in the browser's own time zone. The server sends ISO 8601 with its own
// offset (2026-12-07T18:40:22+01:00): Date parses the true instant from it, and the zone
// shown is the browser's, whatever the lab PC's zone is.
function localEnd(iso) {
  const d = new Date(iso);
  if (isNaN(d.getTime())) return iso;
  const p = n => String(n).padStart(2, "0");
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "local time";
  const day = d.toLocaleDateString("en-GB", {weekday: "short"});
  return `${day} ${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())} (${zone})`;
}

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms));

function startPage() {
  const form = document.getElementById("start-form");
  const startBtn = document.getElementById("start");
  const result = document.getElementById("check-result");
  const estimate = document.getElementById("estimate");
  const planBox = document.getElementById("plan");
  const details = document.getElementById("plan-details");
  const commandLine = document.getElementById("command-line");
  // Every change of the form starts a new state. A reply (Check, plan) made for an older
  // state is ignored: a Check that was running while a value changed never enables Start
  // nor shows its plan for values no longer in the form.
  let state = 0, checked = false;

  function clearPlan() {
    for (const box of [planBox, details, commandLine]) { box.hidden = true; box.replaceChildren(); }
    estimate.textContent = "";
  }

  function invalidate() {
    state++;
    checked = false; startBtn.disabled = true;
    if (result.querySelector("#check-ok, #problems, .checking"))
      result.replaceChildren(el("p", {class: "muted", id: "check-stale", text: "Changed since the last Check: Check again to enable Start."}));
    clearPlan();
  }

  function values() {
    const params = {};
    // Only values that differ from the procedure's default as written: the command line
    // and the run's record then name what was changed.
    for (const input of document.querySelectorAll("#params [data-param]")) {
      const v = input.value.trim();
      if (v !== input.dataset.default) params[input.dataset.param] = v;
    }
    return {procedure: form.procedure.value, cell: form.cell.value, station: form.station.value,
            speed: form.speed.value, params};
  }

  async function loadParams() {
    invalidate(); result.replaceChildren();
    const box = document.getElementById("params");
    const chosen = form.procedure.value;
    const r = await fetch(`/api/parameters?procedure=${encodeURIComponent(chosen)}`);
    const p = await r.json();
    if (form.procedure.value !== chosen) return;  // another procedure was chosen meanwhile
    const rows = p.fields.map(f => {
      const attrs = {"data-param": f.name, name: `param-${f.name}`, id: `param-${f.name}`};
      let input;
      if (f.choices) {
        input = el("select", attrs, ...f.choices.map(c => el("option", {value: String(c), selected: c === f.default, text: String(c)})));
      } else {
        // text, not type=number: a value with its unit ("30 min") or a C-rate ("C/3") is
        // allowed, and the check says what is wrong
        input = el("input", {...attrs, type: "text", inputmode: f.type === "str" ? null : "decimal", value: f.default_text});
      }
      input.dataset.default = input.value;
      const unit = f.unit && /^[-+0-9.eE]+$/.test(f.default_text) ? " " + f.unit : "";
      return el("div", {class: "param"},
        el("label", {for: attrs.id}, el("code", {text: f.name}), f.unit ? el("span", {class: "unit", text: ` [${f.unit}]`}) : null),
        input,
        el("span", {class: "muted", text: `${f.range_text}; default ${f.default_text}${unit}` + (f.description ? ` — ${f.description}` : "")}));
    });
    const legend = el("legend", {text: "Parameters"});
    if (!rows.length) rows.push(el("p", {class: "muted", text: "This procedure declares no parameters."}));
    const problems = p.problems.length ? [problemList(p.problems)] : [];
    box.replaceChildren(legend, ...rows, ...problems);
  }

  function problemList(problems) {
    return el("ul", {class: "problems", id: "problems"}, ...problems.map(q => {
      const where = q.file ? q.file + (q.line ? `:${q.line}` : "") + (q.column ? `:${q.column}` : "") : null;
      return el("li", {class: "problem"}, where ? el("code", {text: where}) : null,
                q.field ? el("strong", {text: ` ${q.field}:`}) : null, ` ${q.message}`);
    }));
  }

  // The plan next to Start: labctl plan's summary and warnings beside the button, its steps
  // (each with its place in the file) and margins below the form.
  function showPlan(v) {
    const s = v.summary;
    const end = s.expected_end
      ? el("span", {id: "plan-end", "data-iso": s.expected_end, title: `${s.expected_end} on the console's clock`,
                    text: `${s.end_approximate ? "≈ " : ""}${localEnd(s.expected_end)}, if started now`})
      : el("span", {id: "plan-end", class: "tone-warn", text: s.end_note});
    const row = (label, value) => el("div", {}, el("dt", {text: label}), el("dd", {}, value));
    const summary = el("dl", {class: "plan-summary", id: "plan-summary"},
      row("Ends", el("span", {id: "plan-outcome", class: `tone-${s.tone}`, text: s.outcome})),
      row("Duration", s.duration + (s.duration_note ? ` (${s.duration_note})` : "")),
      row("Expected end", end),
      row("Max temperature", s.max_temperature),
      row("Data", s.data),
      row("Warnings", String(s.n_warnings)));
    const warnings = v.warnings.length ? el("ul", {class: "warnings", id: "plan-warnings"},
      ...v.warnings.map(w => el("li", {text: `⚠ ${w}`}))) : null;
    const notes = v.notes.length ? el("ul", {class: "notes", id: "plan-notes"}, ...v.notes.map(n => el("li", {text: n}))) : null;
    planBox.replaceChildren(...[
      el("h2", {}, "Plan ", el("span", {class: "muted", text: "labctl plan: the procedure on this station's simulated twin"})),
      summary, warnings, notes,
      el("p", {class: "muted"}, el("a", {href: "#plan-details", text: "its steps and safety margins"}))].filter(Boolean));
    planBox.hidden = false;
    const head = names => el("thead", {}, el("tr", {}, ...names.map(h => el("th", {text: h}))));
    const steps = el("table", {class: "data", id: "plan-steps"},
      head(["step (where in the file)", "runs", "duration each", "ends on", "Ah in", "Ah out", "max temperature"]),
      el("tbody", {}, ...v.steps.map(st => el("tr", {"data-path": st.path},
        el("td", {class: `step depth-${Math.min(st.depth, 6)}`}, st.text, el("span", {class: "path", text: st.path})),
        el("td", {class: "num", text: st.runs}), el("td", {text: st.duration}), el("td", {class: "ends", text: st.ends}),
        el("td", {class: "num", text: st.ah_in}), el("td", {class: "num", text: st.ah_out}),
        el("td", {class: "num", text: st.max_temperature})))));
    const margins = el("table", {class: "data", id: "plan-margins"},
      head(["safety limit", "limit", "closest", "margin", "where"]),
      el("tbody", {}, ...v.margins.map(m => el("tr", {"data-limit": m.name},
        el("td", {text: m.label}), el("td", {class: "num", text: m.limit}), el("td", {class: "num", text: m.closest}),
        el("td", {class: "num" + (m.reached ? " bad" : ""), text: m.margin}),
        el("td", {}, m.text, m.path ? el("span", {class: "path", text: m.path}) : null, m.at ? ` at ${m.at}` : "")))));
    details.replaceChildren(el("h2", {text: "Steps (folded per loop; duration and Ah per run)"}), el("div", {class: "scroll-x"}, steps),
                            el("h2", {text: "Smallest margin to each safety limit"}), el("div", {class: "scroll-x"}, margins));
    details.hidden = false;
  }

  // labctl plan runs in the background on the server; ask until it is ready.
  async function followPlan(id, mine) {
    const status = el("p", {class: "muted", id: "plan-status", text: "planning… (labctl plan, the full plan)"});
    planBox.replaceChildren(el("h2", {text: "Plan"}), status);
    planBox.hidden = false;
    while (mine === state) {
      let r;
      try {
        const resp = await fetch(`/api/plan/${encodeURIComponent(id)}`, {credentials: "same-origin", cache: "no-store"});
        r = await resp.json();
      } catch (e) {
        r = {state: "failed", error: `the console did not answer (${e})`};
      }
      if (mine !== state) return;
      if (r.state === "planning") {
        status.textContent = r.queued
          ? "waiting for its turn: other plans are being made (labctl plan, the full plan)"
          : `planning… ${Math.round(r.elapsed_s)} s (labctl plan, the full plan, at low priority)`;
        await sleep(700);
        continue;
      }
      if (r.state === "ready") {
        estimate.textContent = "";  // the plan's own figures replace the rough ones
        showPlan(r.plan);
      } else {
        planBox.replaceChildren(el("h2", {text: "Plan"}), el("p", {class: "bad", id: "plan-failed", text: `No plan: ${r.error}`}));
      }
      return;
    }
  }

  document.getElementById("check").addEventListener("click", async () => {
    invalidate();
    const mine = state, sent = values(), sentText = JSON.stringify(sent);
    result.replaceChildren(el("p", {class: "muted checking", text: "checking…"}));
    const r = await post("/api/check", sent);
    // the form changed while checking: this reply is for values no longer there (counted
    // on the form, so a test can tell the reply was seen and dropped)
    if (mine !== state || JSON.stringify(values()) !== sentText) {
      form.dataset.staleReplies = String((+form.dataset.staleReplies || 0) + 1);
      return;
    }
    if (r.ok) {
      checked = true; startBtn.disabled = false;
      result.replaceChildren(el("p", {class: "ok", id: "check-ok", text: "✓ Check passed: valid for this cell and station."}));
      commandLine.replaceChildren(el("code", {id: "command", text: r.command}));
      commandLine.hidden = false;
    } else {
      result.replaceChildren(el("p", {class: "bad", text: `✗ ${r.problems ? r.problems.length : ""} problem(s): Start stays disabled.`}),
                             problemList(r.problems || [{message: r.error || "check failed"}]));
    }
    if (r.estimate) estimate.textContent = r.estimate.line;
    if (r.plan_id) followPlan(r.plan_id, mine);
  });

  startBtn.addEventListener("click", async () => {
    if (!checked) return;
    startBtn.disabled = true;
    const r = await post("/api/start", values());
    if (r.ok) {
      toast(`started ${r.run_id || "(pid " + r.pid + ")"}`);
      result.replaceChildren(el("p", {class: "ok", id: "started"}, "Started: ",
        r.run_id ? el("a", {href: `/runs/${encodeURIComponent(r.run_id)}`, text: r.run_id}) : `process ${r.pid}`,
        " · ", el("a", {href: "/", text: "Benches"})));
    } else {
      result.replaceChildren(el("p", {class: "bad", text: r.error || "not started"}),
        r.problems ? problemList(r.problems) : el("pre", {text: r.log || ""}));
    }
    checked = false;
  });

  form.procedure.addEventListener("change", loadParams);
  form.addEventListener("input", ev => { if (ev.target !== form.procedure) invalidate(); });
  form.addEventListener("change", ev => { if (ev.target !== form.procedure) invalidate(); });
  if (form.procedure.value) loadParams();
}

// -- run page ---------------------------------------------------------------------------------
const LAYOUT = {margin: {l: 60, r: 70, t: 40, b: 50}, font: {size: 12}, showlegend: true,
                legend: {orientation: "h", x: 0, y: 1.0, yanchor: "bottom"}, paper_bgcolor: "rgba(0,0,0,0)"};
const CONFIG = {responsive: true, displaylogo: false, displayModeBar: false};

async function runPage() {
  const box = document.getElementById("run");
  const run = box.dataset.run;
  const r = await fetch(`/runs/${encodeURIComponent(run)}/plots`);
  const p = await r.json();
  const names = [["voltage_v", "voltage (V)", "y"], ["current_a", "current (A)", "y2"], ["temperature_c", "temperature (°C)", "y3"]];
  const traces = names.filter(([k]) => p.traces[k]).map(([k, label, axis]) =>
    ({x: p.traces[k].x, y: p.traces[k].y, name: label, yaxis: axis, type: "scattergl", mode: "lines", line: {width: 1.3}}));
  const shown = traces.reduce((n, t) => Math.max(n, t.x.length), 0);
  if (p.errors && p.errors.length) toast(`not drawn: ${p.errors.join("; ")}`, true);
  document.getElementById("plot-note").textContent = `${p.n_samples.toLocaleString()} samples` + (shown < p.n_samples ? `, ${shown} points per trace drawn (min/max per column)` : "");
  Plotly.newPlot("plot-vit", traces, {...LAYOUT, grid: {rows: 3, columns: 1, pattern: "coupled"},
    xaxis: {title: {text: "test time (h)"}}, yaxis: {title: {text: "V"}}, yaxis2: {title: {text: "A"}},
    yaxis3: {title: {text: "°C"}}}, CONFIG);
  if (p.per_cycle && p.per_cycle.cycle) {
    document.getElementById("cycles-plots").hidden = false;
    const c = p.per_cycle;
    Plotly.newPlot("plot-cycles", [
      {x: c.cycle, y: c.charge_ah, name: "charge Ah", type: "scatter", mode: "lines+markers"},
      {x: c.cycle, y: c.discharge_ah, name: "discharge Ah", type: "scatter", mode: "lines+markers"},
      {x: c.cycle, y: c.coulombic, name: "coulombic eff.", yaxis: "y2", type: "scatter", mode: "lines+markers", line: {dash: "dot"}},
      {x: c.cycle, y: c.energy, name: "energy eff.", yaxis: "y2", type: "scatter", mode: "lines+markers", line: {dash: "dot"}}],
      {...LAYOUT, xaxis: {title: {text: "cycle"}, dtick: 1},
       yaxis: {title: {text: "Ah"}}, yaxis2: {title: {text: "efficiency"}, overlaying: "y", side: "right", tickformat: ".1%"}}, CONFIG);
    Plotly.newPlot("plot-dqdv", p.dqdv.map(d => ({x: d.x, y: d.y, name: `cycle ${d.cycle}`, type: "scatter", mode: "lines"})),
      {...LAYOUT, xaxis: {title: {text: "voltage (V)"}}, yaxis: {title: {text: "Ah/V"}}}, CONFIG);
  }
  if (p.spectra && p.spectra.length) {
    document.getElementById("spectra-plots").hidden = false;
    Plotly.newPlot("plot-nyquist", p.spectra.map(s => ({x: s.re, y: s.im.map(v => v === null ? null : -v), name: s.name, type: "scatter", mode: "lines+markers"})),
      {...LAYOUT, xaxis: {title: {text: "Z' (Ω)"}}, yaxis: {title: {text: "−Z'' (Ω)"}, scaleanchor: "x"}}, CONFIG);
    const bode = [];
    for (const s of p.spectra) {
      bode.push({x: s.f, y: s.mod, name: `|Z| ${s.name}`, type: "scatter", mode: "lines+markers"});
      bode.push({x: s.f, y: s.phase, name: `phase ${s.name}`, yaxis: "y2", type: "scatter", mode: "lines", line: {dash: "dot"}});
    }
    Plotly.newPlot("plot-bode", bode, {...LAYOUT, xaxis: {type: "log", title: {text: "frequency (Hz)"}},
      yaxis: {type: "log", title: {text: "|Z| (Ω)"}}, yaxis2: {title: {text: "phase (°)"}, overlaying: "y", side: "right"}}, CONFIG);
  }
  if (box.dataset.status === "running") live(run);
}

function live(run) {
  const src = new EventSource(`/runs/${encodeURIComponent(run)}/events`);
  const liveText = document.getElementById("run-live");
  const state = document.getElementById("run-state");
  src.onmessage = ev => {
    const t = JSON.parse(ev.data);
    state.textContent = t.state; state.className = `badge state-${t.state}`;
    for (const b of document.querySelectorAll("#run-controls button[data-cmd]")) {
      b.disabled = (b.dataset.cmd === "pause" && t.state === "paused") || (b.dataset.cmd === "continue" && t.state !== "paused");
    }
    liveText.textContent = `${fmt(t.voltage_v, 4, " V")} · ${fmt(t.current_a, 3, " A")} · ${fmt(t.temperature_c, 1, " °C")} · step ${t.step_index || "-"}: ${t.step || ""}`;
    if (t.test_time_s === null) return;
    const gd = document.getElementById("plot-vit");
    const x = t.test_time_s / 3600, keys = ["voltage_v", "current_a", "temperature_c"];
    const idx = [], xs = [], ys = [];
    gd.data.forEach((trace, i) => {
      const k = keys[["y", "y2", "y3"].indexOf(trace.yaxis || "y")];
      if (t[k] === null || t[k] === undefined) return;
      const last = trace.x.length ? trace.x[trace.x.length - 1] : -Infinity;
      if (x <= last) return;
      idx.push(i); xs.push([x]); ys.push([t[k]]);
    });
    if (idx.length) Plotly.extendTraces(gd, {x: xs, y: ys}, idx, 20000);
  };
  src.addEventListener("ended", () => { src.close(); liveText.textContent = "run ended: reload for the final tables"; });
}

document.addEventListener("DOMContentLoaded", () => {
  const page = document.body.dataset.page;
  if (page === "benches") benchesPage();
  else if (page === "start") startPage();
  else if (page === "run") runPage();
});
