// The lists of the page: the groups with their counts (the first screen),
// a group's steps a page at a time, the steps a search or a filter finds,
// and the steps running now.  Each holds at most a page of step elements,
// so the page holds a few hundred at most whatever the graph's size.
// `Shown` knows which elements show which step, so an event repaints them.

import { call, paint, query, stepRow, STATE_ORDER, STATE_TEXT } from "./api.js";

export const PAGE = 50;             // steps in a page of a list
export const GROUPS_PAGE = 60;      // groups on the first screen before "more"
export const RUNNING_SHOWN = 12;    // running steps listed at the top

export class Shown {
  constructor() {
    this.byStep = new Map();
    this.live = new Map();      // step -> the state the running build's events gave it
  }

  // An element now on screen for a step; what the build's events said of
  // the step wins over an answer asked before them.
  add(id, el) {
    let set = this.byStep.get(id);
    if (!set) this.byStep.set(id, (set = new Set()));
    set.add(el);
    const state = this.live.get(id);
    if (state) paint(el, state);
  }

  drop(elements) {
    for (const el of elements) {
      const set = this.byStep.get(el.dataset.step);
      if (!set) continue;
      set.delete(el);
      if (!set.size) this.byStep.delete(el.dataset.step);
    }
  }

  paint(id, state) {
    for (const el of this.byStep.get(id) || []) paint(el, state);
  }

  get size() { let n = 0; for (const s of this.byStep.values()) n += s.size; return n; }
}

const fmt = (n) => n.toLocaleString("en");

function pager(total, offset, size, go) {
  const nav = document.createElement("div");
  nav.className = "pager";
  if (total <= size) return nav;
  const text = document.createElement("span");
  text.textContent = `${fmt(offset + 1)}–${fmt(Math.min(total, offset + size))} of ${fmt(total)}`;
  const prev = document.createElement("button");
  prev.type = "button";
  prev.textContent = "‹ previous";
  prev.disabled = offset === 0;
  prev.addEventListener("click", () => go(Math.max(0, offset - size)));
  const next = document.createElement("button");
  next.type = "button";
  next.textContent = "next ›";
  next.disabled = offset + size >= total;
  next.addEventListener("click", () => go(offset + size));
  nav.append(prev, text, next);
  return nav;
}

// A list of steps from GET v1/steps, a page at a time.
class StepPage {
  constructor(box, shown, onOpen) {
    Object.assign(this, { box, shown, onOpen, rows: [], params: null, offset: 0, seq: 0 });
  }

  async load(params, offset = 0) {
    this.params = params;
    this.offset = offset;
    const seq = ++this.seq;
    const page = await call("GET", `v1/steps${query({ ...params, offset, limit: PAGE })}`);
    if (seq !== this.seq) return null;          // a newer question was asked meanwhile
    this.shown.drop(this.rows);
    this.rows = page.steps.map((s) => stepRow(s, this.onOpen));
    for (const r of this.rows) this.shown.add(r.dataset.step, r);
    const list = document.createElement("div");
    list.className = "rows";
    list.append(...this.rows);
    this.box.replaceChildren(list, pager(page.total, offset, PAGE, (o) => this.load(params, o)));
    return page;
  }

  refresh() { return this.params ? this.load(this.params, this.offset) : null; }

  clear() {
    this.seq++;
    this.shown.drop(this.rows);
    this.rows = [];
    this.params = null;
    this.box.replaceChildren();
  }
}

export class Groups {
  constructor(box, shown, onOpen) {
    Object.assign(this, { box, shown, onOpen, cards: new Map(), open: null, offset: 0, last: null });
  }

  render(answer) {
    this.last = answer;
    const seen = new Set();
    const list = this.box.querySelector(".group-list") || document.createElement("div");
    list.className = "group-list";
    for (const g of answer.groups) {
      seen.add(g.name);
      let card = this.cards.get(g.name);
      if (!card) this.cards.set(g.name, (card = this.card(g)));
      this.count(card, g);
      list.append(card.el);               // keeps the server's order
    }
    for (const [name, card] of this.cards) {
      if (seen.has(name)) continue;
      card.page.clear();
      card.el.remove();
      this.cards.delete(name);
      if (this.open === name) this.open = null;
    }
    const more = answer.groups_total > answer.groups.length + answer.offset || answer.offset > 0;
    this.box.replaceChildren(list, more ? pager(answer.groups_total, answer.offset, GROUPS_PAGE,
      (o) => { this.offset = o; this.box.dispatchEvent(new CustomEvent("groups-page")); }) : "");
  }

  card(g) {
    const el = document.createElement("section");
    el.className = "group";
    el.dataset.group = g.name;
    el.dataset.kind = g.kind;
    const head = document.createElement("button");
    head.type = "button";
    head.className = "group-head";
    head.setAttribute("aria-expanded", "false");
    head.innerHTML = '<span class="caret" aria-hidden="true">▸</span><span class="name"></span>'
      + '<span class="kind"></span><span class="total"></span><span class="bar" aria-hidden="true"></span>'
      + '<span class="counts"></span>';
    head.querySelector(".name").textContent = g.name;
    head.querySelector(".kind").textContent = g.kind === "dir" ? "rules writing here" : "rule";
    const steps = document.createElement("div");
    steps.className = "group-steps";
    steps.hidden = true;
    el.append(head, steps);
    const card = { el, head, steps, page: new StepPage(steps, this.shown, this.onOpen) };
    head.addEventListener("click", () => this.toggle(g.name));
    return card;
  }

  count(card, g) {
    card.el.dataset.steps = g.steps;
    card.head.querySelector(".total").textContent = `${fmt(g.steps)} step${g.steps === 1 ? "" : "s"}`;
    if (g.cycle) card.el.dataset.cycle = "yes";
    const bar = card.head.querySelector(".bar");
    const counts = card.head.querySelector(".counts");
    const segs = [], chips = [];
    for (const state of STATE_ORDER) {
      const n = g.counts[state] || 0;
      if (!n) continue;
      const seg = document.createElement("span");
      seg.className = "seg";
      seg.dataset.state = state;
      seg.style.flexGrow = n;
      segs.push(seg);
      const chip = document.createElement("span");
      chip.className = "count";
      chip.dataset.state = state;
      chip.dataset.n = n;
      chip.textContent = `${fmt(n)} ${STATE_TEXT[state]}`;
      chips.push(chip);
    }
    if (g.ran) {
      const chip = document.createElement("span");
      chip.className = "count ran";
      chip.dataset.n = g.ran;
      chip.textContent = `${fmt(g.ran)} ran`;
      chips.push(chip);
    }
    bar.replaceChildren(...segs);
    counts.replaceChildren(...chips);
  }

  async toggle(name) {
    const opening = this.open !== name;
    if (this.open && this.cards.has(this.open)) this.fold(this.cards.get(this.open));
    this.open = null;
    if (!opening) return;
    const card = this.cards.get(name);
    this.open = name;
    card.el.classList.add("open");
    card.head.setAttribute("aria-expanded", "true");
    card.steps.hidden = false;
    await card.page.load({ group: name });
  }

  fold(card) {
    card.el.classList.remove("open");
    card.head.setAttribute("aria-expanded", "false");
    card.steps.hidden = true;
    card.page.clear();
  }

  refreshOpen() {
    const card = this.open && this.cards.get(this.open);
    return card ? card.page.refresh() : null;
  }
}

// What a search or a filter finds, above the groups.
export class Results {
  constructor(box, shown, onOpen) {
    this.box = box;
    this.title = box.querySelector(".results-title");
    this.page = new StepPage(box.querySelector(".results-list"), shown, onOpen);
  }

  async show(title, params) {
    this.box.hidden = false;
    this.title.textContent = `${title}…`;
    const page = await this.page.load(params);
    if (page) {
      this.title.textContent = `${title}: ${fmt(page.total)} step${page.total === 1 ? "" : "s"}`;
      this.box.dataset.total = page.total;
    }
    return page;
  }

  hide() {
    this.box.hidden = true;
    delete this.box.dataset.total;
    this.page.clear();
  }

  refresh() { return this.box.hidden ? null : this.page.refresh(); }
}

// The steps running now, at the top: what a build is doing, without scrolling.
export class Running {
  constructor(box, shown, onOpen) {
    Object.assign(this, { box, shown, onOpen, rows: new Map() });
    this.list = box.querySelector("ul");
    this.count = box.querySelector(".count");
  }

  // `ids`: the running steps, longest running first.
  render(ids) {
    const want = ids.slice(0, RUNNING_SHOWN);
    const keep = new Set(want);
    for (const [id, li] of this.rows) {
      if (keep.has(id)) continue;
      this.shown.drop([li.firstChild]);
      li.remove();
      this.rows.delete(id);
    }
    for (const id of want) {
      if (this.rows.has(id)) continue;
      const li = document.createElement("li");
      const row = stepRow({ id, outputs: [id.slice(id.indexOf(":") + 1)], state: "building" }, this.onOpen);
      li.append(row);
      this.shown.add(id, row);
      this.rows.set(id, li);
    }
    this.list.replaceChildren(...want.map((id) => this.rows.get(id)));
    const more = ids.length - want.length;
    this.count.textContent = ids.length ? `${fmt(ids.length)}${more > 0 ? ` (${fmt(more)} not listed)` : ""}` : "";
    this.box.hidden = ids.length === 0;
  }
}
