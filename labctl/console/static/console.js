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
function startPage() {
  const form = document.getElementById("start-form");
  const startBtn = document.getElementById("start");
  const result = document.getElementById("check-result");
  const estimate = document.getElementById("estimate");
  let checked = false;

  const planBox = document.getElementById("plan");
  function invalidate() { checked = false; startBtn.disabled = true; planBox.hidden = true; planBox.replaceChildren(); }

  // The plan next to Start: the procedure run on the station's simulated twin (labctl plan).
  function showPlan(p) {
    if (!p) return;
    const num = (x, d) => (x === null || x === undefined) ? "-" : Number(x).toFixed(d);
    const ends = e => Object.keys(e || {}).map(k => k.replace(/^[a-z_]+: /, "")).join("; ");
    const outcome = p.status === "completed" ? "ends on its own end conditions" : `ends ${p.status}: ${p.reason}`;
    const summary = el("p", {id: "plan-summary"},
      `${outcome[0].toUpperCase()}${outcome.slice(1)}; expected end ${p.expected_end ? p.expected_end.replace("T", " ").slice(0, 19) + " UTC" : "-"} if started now; ` +
      `max temperature ${num(p.max_temperature_c, 1)} °C` + (p.approximate ? " (approximate: long loops extrapolated)" : ""));
    const warnings = (p.warnings || []).length ? el("ul", {class: "problems", id: "plan-warnings"},
      ...p.warnings.map(w => el("li", {class: "problem", text: `⚠ ${w}`}))) : null;
    const steps = el("table", {class: "data", id: "plan-steps"},
      el("thead", {}, el("tr", {}, ...["step", "runs", "duration each", "ends on", "Ah in", "Ah out", "max °C"].map(h => el("th", {text: h})))),
      el("tbody", {}, ...(p.steps || []).map(s => el("tr", {"data-path": s.path},
        el("td", {text: s.text}), el("td", {text: String(s.count)}), el("td", {text: hms(s.duration_s)}),
        el("td", {text: ends(s.end_reasons)}), el("td", {text: num(s.charge_capacity_ah, 3)}),
        el("td", {text: num(s.discharge_capacity_ah, 3)}), el("td", {text: num(s.max_temperature_c, 1)})))));
    const margins = el("table", {class: "data", id: "plan-margins"},
      el("thead", {}, el("tr", {}, ...["safety limit", "limit", "closest", "margin", "where"].map(h => el("th", {text: h})))),
      el("tbody", {}, ...Object.entries(p.margins || {}).map(([name, m]) => el("tr", {"data-limit": name},
        el("td", {text: name.replace("_", " ")}), el("td", {text: `${num(m.limit, 3)} ${m.unit}`}),
        el("td", {text: `${num(m.value, 3)} ${m.unit}`}), el("td", {text: `${num(m.margin, 3)} ${m.unit}`}),
        el("td", {text: `${m.text} at ${hms(m.test_time_s)}`})))));
    planBox.replaceChildren(...[el("h2", {text: "Plan (the procedure on this station's simulated twin, labctl plan)"}),
                              summary, warnings, steps, margins].filter(Boolean));
    planBox.hidden = false;
  }

  function values() {
    const params = {};
    for (const input of document.querySelectorAll("#params [data-param]")) params[input.dataset.param] = input.value;
    return {procedure: form.procedure.value, cell: form.cell.value, station: form.station.value,
            speed: form.speed.value, params};
  }

  async function loadParams() {
    invalidate(); result.replaceChildren(); estimate.textContent = "";
    const box = document.getElementById("params");
    const r = await fetch(`/api/parameters?procedure=${encodeURIComponent(form.procedure.value)}`);
    const p = await r.json();
    const rows = p.fields.map(f => {
      const attrs = {"data-param": f.name, name: `param-${f.name}`, id: `param-${f.name}`};
      let input;
      if (f.choices) {
        input = el("select", attrs, ...f.choices.map(c => el("option", {value: String(c), selected: c === f.default, text: String(c)})));
      } else if (f.type === "str") {
        input = el("input", {...attrs, type: "text", value: f.default});
      } else {
        // text, not type=number: a value with its unit ("30 min") is allowed, and the check says what is wrong
        input = el("input", {...attrs, type: "text", inputmode: "decimal", value: String(f.default)});
      }
      return el("div", {class: "param"},
        el("label", {for: attrs.id}, el("code", {text: f.name}), f.unit ? el("span", {class: "unit", text: ` [${f.unit}]`}) : null),
        input,
        el("span", {class: "muted", text: `${f.range_text}; default ${f.default}${f.unit ? " " + f.unit : ""}` + (f.description ? ` — ${f.description}` : "")}));
    });
    const legend = el("legend", {text: "Parameters"});
    if (!rows.length) rows.push(el("p", {class: "muted", text: "This procedure declares no parameters."}));
    const problems = p.problems.length ? [problemList(p.problems)] : [];
    box.replaceChildren(legend, ...rows, ...problems);
    estimate.textContent = "";
  }

  function problemList(problems) {
    return el("ul", {class: "problems", id: "problems"}, ...problems.map(q => {
      const where = (q.file || "<input>") + (q.line ? `:${q.line}` : "") + (q.column ? `:${q.column}` : "");
      return el("li", {class: "problem"}, el("code", {text: where}), q.field ? el("strong", {text: ` ${q.field}:`}) : null, ` ${q.message}`);
    }));
  }

  document.getElementById("check").addEventListener("click", async () => {
    invalidate();
    result.replaceChildren(el("p", {class: "muted", text: "checking…"}));
    const r = await post("/api/check", values());
    if (r.ok) {
      checked = true; startBtn.disabled = false;
      result.replaceChildren(el("p", {class: "ok", id: "check-ok", text: "✓ Check passed: the procedure is valid for this cell and station."}),
                             el("p", {class: "muted"}, el("code", {text: r.command})));
      if (r.estimate) { estimate.textContent = r.estimate.text; showPlan(r.estimate.plan); }
    } else {
      result.replaceChildren(el("p", {class: "bad", text: `✗ ${r.problems ? r.problems.length : ""} problem(s): Start stays disabled.`}),
                             problemList(r.problems || [{message: r.error || "check failed"}]));
    }
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
