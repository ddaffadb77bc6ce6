// The audit trail in the Admin view: every admin action and refused attempt, newest first.

import { admin, describeError } from "./api";
import { button, field, h, Notice, scroller, timeEl } from "./dom";
import { AuditOutcome } from "./gen/chatbot/v1/admin_service_pb";
import type { AuditEvent, ListAuditEventsRequestSchema } from "./gen/chatbot/v1/admin_service_pb";
import type { MessageInitShape } from "@bufbuild/protobuf";

type Filters = MessageInitShape<typeof ListAuditEventsRequestSchema>;

const PAGE_SIZE = 50;

const OUTCOMES: Record<AuditOutcome, { key: string; name: string }> = {
  [AuditOutcome.UNSPECIFIED]: { key: "unknown", name: "—" },
  [AuditOutcome.OK]: { key: "ok", name: "OK" },
  [AuditOutcome.REFUSED]: { key: "refused", name: "Refused" },
  [AuditOutcome.FAILED]: { key: "failed", name: "Failed" },
};

const HEADERS = ["Time", "Actor", "Action", "Target", "Outcome", "Status", "Error", "Request"];

export class AuditView {
  readonly el: HTMLElement;
  private readonly outcome = h(
    "select",
    { id: "audit-outcome" },
    h("option", { value: AuditOutcome.UNSPECIFIED }, "Any"),
    h("option", { value: AuditOutcome.OK }, "OK"),
    h("option", { value: AuditOutcome.REFUSED }, "Refused"),
    h("option", { value: AuditOutcome.FAILED }, "Failed"),
  );
  private readonly action = h("input", { type: "text", id: "audit-action", placeholder: "ApiKey" });
  private readonly actor = h("input", { type: "text", id: "audit-actor", placeholder: "key:…" });
  private readonly notice = new Notice("alert", "audit-notice");
  private readonly body = h("div", {
    class: "audit-body",
    "data-testid": "audit-body",
    "aria-busy": "false",
  });
  private readonly more = button("More events", () => void this.load(true), {
    hidden: true,
    "data-testid": "audit-more",
  });
  // The filters of the first page: "More events" must go on with them, not with edits not yet applied.
  private filters: Filters = {};
  private token = "";
  // Bumped by every fresh load, so that an older answer arriving late (from before the
  // filters changed, say) cannot replace a newer one.
  private generation = 0;

  constructor() {
    const form = h(
      "form",
      { class: "audit-filters" },
      h(
        "div",
        { class: "field-row" },
        field("Outcome", this.outcome),
        field("Action contains", this.action, "For example ApiKey or DeleteDocument."),
        field("Actor", this.actor, "Exactly as listed, for example key:… or os:root."),
      ),
      h(
        "div",
        { class: "buttons" },
        h("button", { type: "submit", "data-testid": "audit-apply" }, "Apply filters"),
        button("Refresh", () => void this.load(false), {
          "aria-label": "Refresh the audit trail",
          "data-testid": "audit-refresh",
        }),
      ),
    );
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      void this.load(false);
    });
    this.el = h(
      "section",
      { class: "panel", "data-testid": "audit" },
      h("h2", { id: "audit-heading" }, "Audit trail"),
      h(
        "p",
        { class: "muted" },
        "Every admin action, refused attempts included, newest first. The trail cannot be edited.",
      ),
      form,
      this.notice.el,
      this.body,
      h("div", { class: "pager" }, this.more),
    );
  }

  /** The first page under the filters as they stand, or (more) the next page of the last list. */
  async load(more = false): Promise<void> {
    if (more && !this.token) return;
    if (!more) {
      this.generation += 1;
      this.filters = this.currentFilters();
    }
    const generation = this.generation;
    this.body.setAttribute("aria-busy", "true");
    this.more.disabled = true;
    try {
      const response = await admin.listAuditEvents({
        ...this.filters,
        pageSize: PAGE_SIZE,
        pageToken: more ? this.token : "",
      });
      if (generation !== this.generation) return;
      this.notice.clear();
      this.token = response.nextPageToken;
      this.more.hidden = !response.nextPageToken;
      const rows = response.auditEvents.map(eventRow);
      const existing = this.body.querySelector("tbody");
      if (more && existing) {
        existing.append(...rows);
        return;
      }
      this.body.replaceChildren(
        rows.length > 0
          ? scroller(auditTable(rows), "Audit trail")
          : h("p", { class: "muted", "data-testid": "audit-empty" }, "No events match."),
      );
    } catch (error) {
      if (generation === this.generation) this.notice.error(describeError(error));
    } finally {
      if (generation === this.generation) {
        this.body.setAttribute("aria-busy", "false");
        this.more.disabled = false;
      }
    }
  }

  private currentFilters(): Filters {
    return {
      outcome: Number(this.outcome.value) as AuditOutcome,
      action: this.action.value.trim(),
      actor: this.actor.value.trim(),
    };
  }
}

function auditTable(rows: HTMLTableRowElement[]): HTMLTableElement {
  return h(
    "table",
    { class: "data audit-table", "data-testid": "audit-table" },
    h("caption", {}, "Audit trail"),
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        HEADERS.map((t) => h("th", { scope: "col" }, t)),
      ),
    ),
    h("tbody", {}, rows),
  );
}

function eventRow(event: AuditEvent): HTMLTableRowElement {
  const outcome = OUTCOMES[event.outcome] ?? OUTCOMES[AuditOutcome.UNSPECIFIED];
  const row = h(
    "tr",
    {
      class: `audit-event audit-event--${outcome.key}`,
      "data-testid": "audit-row",
      "data-outcome": outcome.key,
    },
    h("td", {}, timeEl(event.occurTime)),
    h(
      "td",
      { class: "audit-actor" },
      h("span", { class: "audit-actor-name" }, event.actorName || event.actor || "—"),
      event.actorName && event.actor ? h("code", { class: "audit-actor-id" }, event.actor) : null,
    ),
    h("td", {}, h("code", { title: event.action }, shortAction(event.action))),
    h("td", {}, event.target ? h("code", {}, event.target) : "—"),
    h("td", {}, h("span", { class: `badge badge--${outcome.key}` }, outcome.name)),
    h("td", {}, event.statusCode || "—"),
    h("td", {}, event.errorMessage ? h("span", { class: "audit-error" }, event.errorMessage) : "—"),
    h("td", {}, requestDetails(event)),
  );
  row.dataset.auditEventId = event.auditEventId;
  return row;
}

/** A method without its package ("AdminService/RevokeApiKey"); commands stay as they are. */
function shortAction(action: string): string {
  return action.replace(/^chatbot\.v1\./, "");
}

/** The request behind an event, folded away: it can be long. */
function requestDetails(event: AuditEvent): HTMLElement | string {
  if (!event.requestJson && !event.requestId) return "—";
  return h(
    "details",
    { class: "audit-request" },
    h("summary", {}, "Show"),
    event.requestId ? h("p", {}, "Request id ", h("code", {}, event.requestId)) : null,
    event.requestJson ? h("pre", {}, pretty(event.requestJson)) : null,
  );
}

function pretty(json: string): string {
  try {
    return JSON.stringify(JSON.parse(json), null, 2);
  } catch {
    return json; // A command's arguments are not JSON.
  }
}
