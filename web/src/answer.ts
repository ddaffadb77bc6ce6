// One answer: its text with [n] markers linked to the sources under it, badges for how it
// was made, usage, and the reader's feedback.

import { button, field, formatCount, formatMs, formatPercent, formatUsd, h, Notice, svg, uid } from "./dom";
import { chat, describeError, describeStatus, sessionId } from "./api";
import type { Citation } from "./gen/chatbot/v1/common_pb";
import { FeedbackRating, FinishReason, Grounding, MessageStatus } from "./gen/chatbot/v1/chat_service_pb";
import type { AnswerDone, AnswerStarted, AnswerUsage, Message } from "./gen/chatbot/v1/chat_service_pb";

// "[1]", and also "[1, 2]" when a model groups its markers.
const MARKERS = /\[(\d+(?:\s*,\s*\d+)*)\]/g;

const reducedMotion = (): boolean => window.matchMedia?.("(prefers-reduced-motion: reduce)").matches ?? false;

type Badge = "not-found" | "offline" | "stopped" | "failed" | "length" | "filtered";

const BADGES: Record<Badge, string> = {
  "not-found": "Not in the documents",
  offline: "Offline: quotes from the documents",
  stopped: "Stopped",
  failed: "Failed",
  length: "Cut at the length limit",
  filtered: "Withheld by the provider's content filter",
};

export class AnswerView {
  readonly el: HTMLElement;
  private readonly key = uid("answer");
  private readonly badges = h("p", { class: "answer-badges", hidden: true });
  private readonly body = h("div", { class: "answer-text" });
  private readonly meta = h("p", { class: "answer-meta", hidden: true });
  private readonly warnings = h("ul", { class: "answer-warnings", "aria-label": "Warnings", hidden: true });
  private readonly error = new Notice("alert", "answer-error");
  private readonly sources = h("section", { class: "citations", hidden: true });
  private readonly sourceList = h("ol", { class: "citation-list" });
  private readonly feedbackSlot = h("div", { class: "feedback-slot" });
  private text = "";
  private citations = new Map<number, Citation>();
  private shown = new Set<Badge>();
  private variant = "";

  constructor() {
    this.sources.append(h("h3", { class: "sources-heading" }, "Sources"), this.sourceList);
    this.el = h(
      "article",
      { class: "answer answer--streaming", "aria-label": "Answer", "aria-busy": "true" },
      this.badges,
      this.body,
      this.error.el,
      this.warnings,
      this.meta,
      this.sources,
      this.feedbackSlot,
    );
    this.body.textContent = "…";
    this.body.classList.add("answer-text--waiting");
  }

  /** An answer stored in a conversation, shown as it was recorded. */
  static fromMessage(message: Message): AnswerView {
    const view = new AnswerView();
    view.append(message.content);
    view.setCitations(message.citations);
    if (!message.model) view.badge("offline");
    if (message.status === MessageStatus.FAILED) view.badge("failed");
    else if (message.status === MessageStatus.CANCELLED) view.badge("stopped");
    else if (message.citations.length === 0) view.badge("not-found"); // grounded answers always cite
    if (message.model) view.setMeta([message.model]);
    view.settle();
    if (message.messageId) view.enableFeedback(message.messageId);
    return view;
  }

  started(event: AnswerStarted): void {
    if (event.offline) this.badge("offline");
    const parts = [event.model || "no language model"];
    if (event.experiment?.variant) {
      this.variant = `experiment ${event.experiment.experimentName}: ${event.experiment.variant}`;
      parts.push(this.variant);
    }
    this.setMeta(parts);
    if (event.assistantMessageId) this.enableFeedback(event.assistantMessageId);
  }

  append(fragment: string): void {
    if (this.text === "") {
      this.body.classList.remove("answer-text--waiting");
      this.body.textContent = "";
    }
    this.text += fragment;
    this.render();
  }

  setCitations(citations: Citation[]): void {
    this.citations = new Map(citations.map((c) => [c.number, c]));
    this.sourceList.replaceChildren(...citations.map((c) => this.citationItem(c)));
    this.sources.hidden = citations.length === 0;
    this.render();
  }

  setUsage(event: AnswerUsage): void {
    if (!event.model) this.badge("offline");
    const parts = [event.model || "no language model"];
    if (event.usage) {
      parts.push(`${formatCount(event.usage.totalTokens)} tokens`, formatUsd(event.usage.costUsd));
    }
    if (event.firstTokenMs > 0n) parts.push(`first text after ${formatMs(event.firstTokenMs)}`);
    parts.push(`total ${formatMs(event.totalMs)}`);
    if (this.variant) parts.push(this.variant);
    this.setMeta(parts);
  }

  finish(event: AnswerDone): void {
    if (event.grounding === Grounding.NOT_FOUND) this.badge("not-found");
    switch (event.finishReason) {
      case FinishReason.LENGTH:
        this.badge("length");
        break;
      case FinishReason.CONTENT_FILTER:
        this.badge("filtered");
        break;
      case FinishReason.CANCELLED:
        this.badge("stopped");
        break;
      case FinishReason.ERROR:
        this.badge("failed");
        this.error.error(event.error ? describeStatus(event.error) : "The answer failed.");
        break;
    }
    this.setWarnings(event.warnings);
    this.settle();
  }

  /** The call itself failed (before or after `done`). */
  fail(message: string): void {
    this.badge("failed");
    this.error.error(message);
    this.settle();
  }

  stopped(): void {
    this.badge("stopped");
    this.settle();
  }

  /** Streaming is over, whichever way it ended. */
  settle(): void {
    this.el.setAttribute("aria-busy", "false");
    this.el.classList.remove("answer--streaming");
    if (this.text === "") {
      this.body.classList.remove("answer-text--waiting");
      this.body.textContent = "";
      this.body.hidden = true;
    }
  }

  private badge(kind: Badge): void {
    if (this.shown.has(kind)) return;
    this.shown.add(kind);
    this.el.classList.add(`answer--${kind}`);
    this.badges.append(h("span", { class: `badge badge--${kind}` }, BADGES[kind]));
    this.badges.hidden = false;
  }

  private setMeta(parts: string[]): void {
    this.meta.textContent = parts.join(" · ");
    this.meta.hidden = parts.length === 0;
  }

  private setWarnings(warnings: string[]): void {
    this.warnings.replaceChildren(...warnings.map((w) => h("li", {}, w)));
    this.warnings.hidden = warnings.length === 0;
  }

  private render(): void {
    if (this.citations.size === 0) {
      this.body.textContent = this.text;
      return;
    }
    const parts: (Node | string)[] = [];
    let last = 0;
    for (const match of this.text.matchAll(MARKERS)) {
      const numbers = match[1].split(",").map((n) => Number(n.trim()));
      if (!numbers.every((n) => this.citations.has(n))) continue;
      const start = match.index ?? 0;
      parts.push(this.text.slice(last, start));
      for (const n of numbers) parts.push(this.marker(n));
      last = start + match[0].length;
    }
    parts.push(this.text.slice(last));
    this.body.replaceChildren(...parts);
  }

  private marker(n: number): HTMLButtonElement {
    const citation = this.citations.get(n);
    const where = citation ? `${citation.documentTitle}, page ${citation.pageNumber}` : "";
    return button(`[${n}]`, () => this.showCitation(n), {
      class: "cite-marker",
      "aria-label": `Source ${n}`,
      "aria-controls": this.citationId(n),
      title: where,
    });
  }

  private citationId(n: number): string {
    return `${this.key}-source-${n}`;
  }

  private citationItem(c: Citation): HTMLLIElement {
    const summary = h(
      "summary",
      {},
      h("span", { class: "citation-number" }, `[${c.number}]`),
      " ",
      h("span", { class: "citation-title" }, c.documentTitle || "Untitled document"),
      ", ",
      h("span", { class: "citation-page" }, `page ${c.pageNumber}`),
      c.sectionTitle ? [" — ", h("span", { class: "citation-section" }, c.sectionTitle)] : null,
    );
    return h(
      "li",
      { class: "citation", id: this.citationId(c.number), value: c.number },
      h(
        "details",
        {},
        summary,
        h("blockquote", { class: "citation-text" }, c.chunkText),
        h("p", { class: "citation-relevance" }, `Relevance ${formatPercent(c.relevanceScore)}`),
      ),
    );
  }

  private showCitation(n: number): void {
    const item = this.sourceList.querySelector<HTMLLIElement>(`#${CSS.escape(this.citationId(n))}`);
    if (!item) return;
    for (const other of this.sourceList.querySelectorAll(".citation--active")) {
      other.classList.remove("citation--active");
    }
    item.classList.add("citation--active");
    const details = item.querySelector("details");
    if (details) details.open = true;
    item.scrollIntoView({ block: "nearest", behavior: reducedMotion() ? "auto" : "smooth" });
    item.querySelector("summary")?.focus({ preventScroll: true });
  }

  private enableFeedback(messageId: string): void {
    if (this.feedbackSlot.childElementCount > 0) return;
    this.feedbackSlot.append(new FeedbackView(messageId).el);
  }
}

function thumb(down: boolean): SVGSVGElement {
  return svg(
    "svg",
    { viewBox: "0 0 24 24", width: 18, height: 18, "aria-hidden": "true", focusable: "false" },
    svg(
      "g",
      { transform: down ? "rotate(180 12 12)" : "" },
      svg("path", { d: "M2 10h4v11H2z" }),
      svg("path", {
        d: "M7 10l4-8c1.7 0 3 1.3 3 3v4h5.5c1.2 0 2.1 1.1 1.9 2.3l-1.4 8c-.2 1-1 1.7-2 1.7H7z",
      }),
    ),
  );
}

/** Thumbs up or down on one assistant message, with an optional comment. */
class FeedbackView {
  readonly el: HTMLElement;
  private rating = FeedbackRating.UNSPECIFIED;
  private readonly up: HTMLButtonElement;
  private readonly down: HTMLButtonElement;
  private readonly comment = h("input", { type: "text", maxlength: 2000, class: "feedback-comment" });
  private readonly status = new Notice("status", "feedback-status");

  constructor(private readonly messageId: string) {
    this.up = button("", () => void this.send(FeedbackRating.POSITIVE), {
      class: "feedback-button feedback-up",
      "aria-label": "Helpful",
      "aria-pressed": "false",
      title: "Helpful",
    });
    this.up.append(thumb(false));
    this.down = button("", () => void this.send(FeedbackRating.NEGATIVE), {
      class: "feedback-button feedback-down",
      "aria-label": "Not helpful",
      "aria-pressed": "false",
      title: "Not helpful",
    });
    this.down.append(thumb(true));
    const form = h(
      "form",
      { class: "feedback-comment-form" },
      field("Comment (optional)", this.comment),
      h("button", { type: "submit" }, "Save comment"),
    );
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      if (this.rating === FeedbackRating.UNSPECIFIED) {
        this.status.error("Choose Helpful or Not helpful first.");
        return;
      }
      void this.send(this.rating);
    });
    this.el = h(
      "div",
      { class: "feedback", role: "group", "aria-label": "Feedback on this answer" },
      h("div", { class: "feedback-buttons" }, this.up, this.down),
      form,
      this.status.el,
    );
  }

  private async send(rating: FeedbackRating): Promise<void> {
    this.status.show("Saving feedback…");
    try {
      await chat.submitFeedback({
        messageId: this.messageId,
        rating,
        comment: this.comment.value.trim(),
        sessionId: sessionId(),
      });
      this.rating = rating;
      this.up.setAttribute("aria-pressed", String(rating === FeedbackRating.POSITIVE));
      this.down.setAttribute("aria-pressed", String(rating === FeedbackRating.NEGATIVE));
      this.status.show("Thanks, your feedback was saved.", "ok");
    } catch (error) {
      this.status.error(describeError(error));
    }
  }
}
