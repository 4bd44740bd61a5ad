// One step at a time, as `ninja -t browse` shows it: why it would run
// (`cpod explain`: the inputs that changed, old and new hash), its inputs
// (each a link to the step that makes it), its outputs, the artefacts it
// made (size, hash, maker), the steps that read them, and what it printed
// the last time it ran.  The step shown is in the
// address (#step=ID, or after a view: #/builds/B&step=ID), so the browser's
// Back goes to the step before.

import { call, el, logUrl, stepUrl, query, paint, STATE_TEXT } from "./api.js";

export const NEIGHBOURS = 100;      // inputs or readers listed before "… more"
const HASH_SHOWN = 12;              // hex digits of a hash shown, as `cpod explain` does
const $ = (id) => document.getElementById(id);

const short = (h) => (h ? h.slice(0, HASH_SHOWN) : "missing");
const bytes = (n) => (n < 1024 ? `${n} B` : n < 1024 ** 2 ? `${(n / 1024).toFixed(1)} KiB`
  : `${(n / 1024 ** 2).toFixed(1)} MiB`);

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
    await Promise.all([this.showNode(id), this.showLog(id), this.showWhy(id)]);
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

  async showWhy(id) {
    const panel = $("log-panel");
    delete panel.dataset.why;
    if ($("why-now").dataset.step !== id) {
      $("why-now").dataset.step = id;
      $("why-now").textContent = "Asking why…";
      for (const list of ["why-changed", "step-artefacts"]) $(list).replaceChildren();
      $("why-ran").textContent = "";
    }
    let why;
    try {
      why = await call("GET", `${stepUrl(id)}/why`);
    } catch (err) {
      if (this.step !== id) return;
      $("why-now").textContent = err.status === 404 ? "" : `Could not ask why: ${err.message}`;
      for (const list of ["why-changed", "step-artefacts"]) $(list).replaceChildren();
      $("why-ran").textContent = "";
      return;
    }
    if (this.step !== id) return;
    $("why-now").textContent = why.now;
    $("why-changed").replaceChildren(...why.changed.map((c) => {
      const li = el("li", "changed");
      li.dataset.path = c.path;
      li.dataset.old = c.old || "";
      li.dataset.new = c.new || "";
      const hashes = c.how === "changed" ? `${short(c.old)} → ${short(c.new)}`
        : c.how === "new" ? `new input, ${short(c.new)}` : `no longer an input (was ${short(c.old)})`;
      li.append(el("span", "out", c.path), el("span", "muted", ` ${hashes}`));
      li.title = `${c.path}: ${c.old || "missing"} → ${c.new || "missing"}`;
      return li;
    }), ...this.more(why.changed_total - why.changed.length));
    const last = why.last_run;
    $("why-ran").textContent = !last ? "It has never run."
      : last.reason ? `It ran last because: ${last.reason}` : "";
    $("step-artefacts").replaceChildren(...why.artefacts.map((a) => {
      const li = el("li", "artefact");
      li.dataset.path = a.path;
      li.append(el("span", "out", a.path));
      if (a.sha256 === null) {
        li.append(el("span", "muted", " no record of it"));
        return li;
      }
      li.append(el("span", "muted", ` · ${bytes(a.size)} · sha256 ${short(a.sha256)} · made by `));
      if (a.step) {
        const maker = el("a", "maker", a.step);
        maker.href = hashOf(a.step);
        li.append(maker);
      } else li.append(el("span", "muted", "no step (a source)"));
      li.title = a.sha256;
      return li;
    }));
    panel.dataset.why = "yes";
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
