// Small helpers for building the DOM by hand, and formatting numbers and times for people.

import type { Timestamp } from "@bufbuild/protobuf/wkt";
import { timestampDate } from "@bufbuild/protobuf/wkt";

export type Child = Node | string | number | null | undefined | false;
type Attrs = Record<string, string | number | boolean | null | undefined | EventListener>;

let lastId = 0;

/** A unique id for pairing a <label> with its control. */
export function uid(prefix: string): string {
  lastId += 1;
  return `${prefix}-${lastId}`;
}

function apply(el: Element, attrs: Attrs | undefined): void {
  if (!attrs) return;
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (key === "value" && "value" in el) {
      (el as HTMLInputElement).value = String(value);
    } else {
      el.setAttribute(key, value === true ? "" : String(value));
    }
  }
}

function append(el: Element, children: (Child | Child[])[]): void {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(typeof child === "number" ? String(child) : child);
  }
}

/** An HTML element: attributes (on* keys become listeners) and children. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs?: Attrs,
  ...children: (Child | Child[])[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  apply(el, attrs);
  append(el, children);
  return el;
}

const SVG_NS = "http://www.w3.org/2000/svg";

/** An SVG element. */
export function svg<K extends keyof SVGElementTagNameMap>(
  tag: K,
  attrs?: Attrs,
  ...children: (Child | Child[])[]
): SVGElementTagNameMap[K] {
  const el = document.createElementNS(SVG_NS, tag) as SVGElementTagNameMap[K];
  apply(el, attrs);
  append(el, children);
  return el;
}

/** A <label> and its control, wrapped in a div.field. */
export function field(
  label: string,
  control: HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement,
  hint?: string,
): HTMLDivElement {
  if (!control.id) control.id = uid("field");
  const wrapper = h("div", { class: "field" }, h("label", { for: control.id }, label), control);
  if (hint) {
    const hintEl = h("small", { class: "hint", id: `${control.id}-hint` }, hint);
    control.setAttribute("aria-describedby", hintEl.id);
    wrapper.append(hintEl);
  }
  return wrapper;
}

/** A checkbox with its label after it. */
export function checkbox(label: string, input: HTMLInputElement): HTMLDivElement {
  input.type = "checkbox";
  if (!input.id) input.id = uid("check");
  return h("div", { class: "field field--check" }, input, h("label", { for: input.id }, label));
}

export function button(text: string, onClick: (event: MouseEvent) => void, attrs?: Attrs): HTMLButtonElement {
  return h("button", { type: "button", ...attrs, onclick: onClick as EventListener }, text);
}

/** A paragraph that shows errors (role alert) or quiet progress (role status). */
export class Notice {
  readonly el: HTMLParagraphElement;

  constructor(kind: "alert" | "status", className = "") {
    this.el = h("p", { class: `notice ${className}`.trim(), role: kind, hidden: true });
  }

  show(text: string, tone: "error" | "info" | "ok" = "info"): void {
    this.el.textContent = text;
    this.el.dataset.tone = tone;
    this.el.hidden = false;
  }

  error(text: string): void {
    this.show(text, "error");
  }

  clear(): void {
    this.el.textContent = "";
    this.el.hidden = true;
  }
}

const numberFormat = new Intl.NumberFormat("en");

export function formatCount(value: number | bigint): string {
  return numberFormat.format(value);
}

export function formatUsd(value: number): string {
  if (value !== 0 && Math.abs(value) < 0.01) return `$${value.toFixed(6)}`;
  return `$${value.toFixed(2)}`;
}

export function formatMs(value: number | bigint): string {
  const ms = Number(value);
  return ms >= 10_000 ? `${(ms / 1000).toFixed(1)} s` : `${formatCount(Math.round(ms))} ms`;
}

export function formatBytes(value: number | bigint): string {
  const bytes = Number(value);
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

export function formatPercent(fraction: number): string {
  return `${Math.round(fraction * 100)} %`;
}

/** Seconds to wait, as a person reads it: "12 s", "5 min", "3 h 20 min". */
export function formatWait(seconds: number): string {
  const s = Math.max(1, Math.ceil(seconds));
  if (s < 90) return `${s} s`;
  const minutes = Math.ceil(s / 60);
  if (minutes < 90) return `${minutes} min`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

const dateTimeFormat = new Intl.DateTimeFormat("en", { dateStyle: "medium", timeStyle: "short" });

export function formatTime(ts: Timestamp | undefined): string {
  if (!ts) return "";
  return dateTimeFormat.format(timestampDate(ts));
}

/** A <time> element for a timestamp; empty text when it is unset. */
export function timeEl(ts: Timestamp | undefined, fallback = "—"): HTMLElement {
  if (!ts) return h("span", {}, fallback);
  const date = timestampDate(ts);
  return h("time", { datetime: date.toISOString() }, dateTimeFormat.format(date));
}

/** A simple data table: a caption, column headers and rows of cells. */
export function table(caption: string, headers: string[], rows: Child[][], className = ""): HTMLTableElement {
  return h(
    "table",
    { class: `data ${className}`.trim() },
    h("caption", {}, caption),
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        headers.map((text) => h("th", { scope: "col" }, text)),
      ),
    ),
    h(
      "tbody",
      {},
      rows.map((cells) =>
        h(
          "tr",
          {},
          cells.map((cell) => h("td", {}, cell)),
        ),
      ),
    ),
  );
}

/** Wraps a wide table so that it scrolls on its own on narrow screens. */
export function scroller(content: HTMLElement, label: string): HTMLDivElement {
  return h("div", { class: "scroller", role: "region", "aria-label": label, tabindex: 0 }, content);
}
