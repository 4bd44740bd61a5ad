// One step at a time, as `ninja -t browse` shows it: its inputs (each a
// link to the step that makes it), its outputs, the steps that read them,
// and what it printed the last time it ran.  The step shown is in the
// address (#step=ID, or after a view: #/builds/B&step=ID), so the browser's
// Back goes to the step before.

import { call, logUrl, stepUrl, query, paint, STATE_TEXT } from "./api.js";

export const NEIGHBOURS = 100;      // inputs or readers listed before "… more"
const $ = (id) => document.getElementById(id);

export function stepFromHash() {
  const m = /(?:^#|&)step=([^&]*)/.exec(location.hash);
  if (!m) return null;
  try { return decodeURIComponent(m[1]); } catch { return null; }
}

// The view the address names before its step (#/builds/B), or "".
const viewPart = () => (/^#(\/[^&]*)/.exec(location.hash) || [null, ""])[1];

export const hashOf = (id) => {
  const view = viewPart();
  return `#${view ? `${view}&` : ""}step=${encodeURIComponent(id)}`;
};

export class Navigator {
  constructor(shown, onShow) {
    this.shown = shown;
    this.onShow = onShow;         // (id | null): the drawing marks the step
    this.step = null;
    this.links = [];
  }

  // Go to a step: through the address, so Back works.
  open(id) {
    if (stepFromHash() === id) this.show(id);
    else location.hash = hashOf(id);
  }

  close() {
    this.step = null;
    $("log-panel").hidden = true;
    this.shown.drop(this.links);
    this.links = [];
    if (stepFromHash() !== null) {
      const view = viewPart();
      history.replaceState(null, "", location.pathname + location.search + (view ? `#${view}` : ""));
    }
    this.onShow(null);
  }

  async show(id) {
    this.step = id;
    this.onShow(id);
    const panel = $("log-panel");
    panel.hidden = false;
    panel.dataset.step = id;
    delete panel.dataset.loaded;
    $("log-title").textContent = id;
    $("back").disabled = history.length < 2;
    await Promise.all([this.showNode(id), this.showLog(id)]);
  }

  refresh() { return this.step ? this.show(this.step) : null; }

  async showNode(id) {
    let node;
    try {
      node = await call("GET", `${stepUrl(id)}${query({ limit: NEIGHBOURS })}`);
    } catch (err) {
      if (this.step !== id) return;
      $("step-meta").textContent = err.status === 404 ? "Not in the graph of the default targets."
        : `Could not fetch the step: ${err.message}`;
      for (const list of ["step-inputs", "step-outputs", "step-dependants"]) $(list).replaceChildren();
      return;
    }
    if (this.step !== id) return;
    const panel = $("log-panel");
    panel.dataset.state = node.state;
    let meta = `${STATE_TEXT[node.state]}${node.ran ? ", ran in the latest build" : ""} · group ${node.group}`;
    if (node.cycle !== null && node.cycle !== undefined) meta += ` · cycle of ${node.cycle_steps.length} steps`;
    $("step-meta").textContent = meta;
    this.shown.drop(this.links);
    this.links = [];
    $("inputs-title").textContent = `Inputs (${node.inputs_total})`;
    $("step-inputs").replaceChildren(...node.inputs.map((i) => this.input(i)),
      ...this.more(node.inputs_total - node.inputs.length));
    $("step-outputs").replaceChildren(...node.outputs.map((p) => {
      const li = document.createElement("li");
      li.textContent = p;
      return li;
    }));
    $("dependants-title").textContent = `Read by (${node.dependants_total})`;
    $("step-dependants").replaceChildren(...node.dependants.map((d) => {
      const li = document.createElement("li");
      li.append(this.link(d.id, d.id, d.state));
      return li;
    }), ...this.more(node.dependants_total - node.dependants.length));
  }

  input(i) {
    const li = document.createElement("li");
    if (i.step) {
      li.append(this.link(i.step, i.path, i.state));
    } else {
      li.textContent = i.path;
      const src = document.createElement("span");
      src.className = "muted";
      src.textContent = " (source)";
      li.append(src);
    }
    return li;
  }

  link(id, text, state) {
    const a = document.createElement("a");
    a.href = hashOf(id);
    a.className = "goto";
    a.dataset.step = id;
    a.innerHTML = '<span class="mark" aria-hidden="true"></span><span class="out"></span>';
    a.querySelector(".out").textContent = text;
    paint(a, state);
    a.title = `${id}: ${STATE_TEXT[state]}`;
    this.links.push(a);
    this.shown.add(id, a);
    return a;
  }

  more(n) {
    if (n <= 0) return [];
    const li = document.createElement("li");
    li.className = "muted";
    li.textContent = `… and ${n.toLocaleString("en")} more`;
    return [li];
  }

  async showLog(id) {
    let log;
    try {
      log = await call("GET", logUrl(id));
    } catch (err) {
      if (this.step !== id) return;
      $("log-panel").dataset.loaded = "none";
      $("log-meta").textContent = err.status === 404
        ? "No log: this step has not run since the pod started."
        : `Could not fetch the log: ${err.message}`;
      for (const p of ["log-command", "log-stdout", "log-stderr"]) $(p).textContent = "";
      return;
    }
    if (this.step !== id) return;
    $("log-panel").dataset.loaded = "yes";
    const code = log.exit_code;
    let meta = code === null || code === undefined ? "no exit code" : `exit code ${code}`;
    if (log.status) meta = `${log.status}, ${meta}`;
    if (log.reason && code !== 0) meta += `: ${log.reason}`;
    $("log-meta").textContent = meta;
    $("log-command").textContent = Array.isArray(log.command) ? log.command.join(" ") : (log.command || "");
    $("log-stdout").textContent = log.stdout || "(nothing)";
    $("log-stderr").textContent = log.stderr || "(nothing)";
    for (const p of ["log-stdout", "log-stderr"]) $(p).scrollTop = $(p).scrollHeight;   // the end says most
  }
}
