// Talking to the pod's REST API (docs/architecture.md §7), and the words
// the page uses for each step state.  Every URL is relative to the page,
// so the page works under a prefix too.

export const TOKEN_KEY = "computepods.api-token";

export const STATE_TEXT = {
  up_to_date: "up to date", stale: "stale", building: "building", failed: "failed",
  cancelled: "cancelled", not_run: "not run",
};
export const STATE_MARK = {
  up_to_date: "✓", stale: "•", building: "⟳", failed: "✗", cancelled: "⊘", not_run: "–",
};
export const STATE_ORDER = ["building", "failed", "cancelled", "not_run", "stale", "up_to_date"];

export class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

export async function call(method, path, body) {
  const headers = { Accept: "application/json" };
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(new URL(path, document.baseURI), {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = null;
  try { data = await res.json(); } catch { /* not JSON: say the status */ }
  if (!res.ok) {
    const why = data && (data.description || data.title);
    throw new ApiError(res.status, why || `${res.status} ${res.statusText}`);
  }
  return data;
}

// An element with a class and a text, the page's one way to make one.
export function el(tag, cls = "", text = "") {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text) e.textContent = text;
  return e;
}

export const stepUrl = (id) => `v1/steps/${encodeURIComponent(id)}`;
export const logUrl = (id) => `${stepUrl(id)}/log`;

export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== "" && v !== false) q.set(k, String(v));
  }
  const text = q.toString();
  return text ? `?${text}` : "";
}

// The state a step's event gives it, as the pod's graph answers it
// (api/outcomes.py): a fail the cancel caused (after the build's cancel
// event, or saying so) is "cancelled" once the step had started, "not run"
// before.
export function stateAfter(ev, started, cancelling) {
  switch (ev.t) {
    case "start": return "building";
    case "ok": case "ran": return "up_to_date";
    case "fail":
      if (cancelling || ev.cancelled === true || ev.reason === "cancelled") {
        return started ? "cancelled" : "not_run";
      }
      return "failed";
    default: return null;
  }
}

// One element for a step, wherever it is listed: a button with its mark,
// its first output and its id; data-step and data-state for tests and
// scripts.
export function stepRow(step, onOpen) {
  const b = stepButton("row", step.id, onOpen);
  b.append(mark(), el("span", "out", firstOutput(step)), el("span", "id", step.id), el("span", "state"));
  paint(b, step.state);
  return b;
}

// A button that opens a step (a row of a list, a box of the drawing).
export function stepButton(cls, id, onOpen) {
  const b = el("button", cls);
  b.type = "button";
  b.dataset.step = id;
  b.addEventListener("click", () => onOpen(id));
  return b;
}

// A step's state mark, painted by paint().
export function mark() {
  const m = el("span", "mark");
  m.setAttribute("aria-hidden", "true");
  return m;
}

export const firstOutput = (step) => (step.outputs && step.outputs[0]) || step.id;

export function paint(node, state) {
  if (!(state in STATE_TEXT) || node.dataset.state === state) return;
  node.dataset.state = state;
  const m = node.querySelector(".mark");
  if (m) m.textContent = STATE_MARK[state];
  const word = node.querySelector(".state");
  if (word) word.textContent = STATE_TEXT[state];
  node.setAttribute("aria-label", `${node.dataset.step}: ${STATE_TEXT[state]}`);
}
