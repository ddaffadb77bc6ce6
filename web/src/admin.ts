// The Admin view: spending, today's budget, answer logs, feedback, experiments, API keys and
// the audit trail.
// Every call needs an admin key; without one the view says so once instead of six times.

import { Code } from "@connectrpc/connect";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";

import { admin, describeError, errorCode } from "./api";
import { AuditView } from "./audit";
import { barChart, columnChart, gauge } from "./charts";
import {
  button,
  checkbox,
  field,
  formatCount,
  formatMs,
  formatPercent,
  formatUsd,
  h,
  Notice,
  scroller,
  table,
  timeEl,
  formatTime,
} from "./dom";
import type { Child } from "./dom";
import { ApiKeyRole, BudgetLevel } from "./gen/chatbot/v1/admin_service_pb";
import type {
  AnswerLog,
  ApiKey,
  BudgetStatus,
  CostBreakdown,
  Experiment,
  FeedbackCounts,
  VariantResults,
} from "./gen/chatbot/v1/admin_service_pb";
import { FeedbackRating, FinishReason, Grounding } from "./gen/chatbot/v1/chat_service_pb";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { ListAnswerLogsRequestSchema } from "./gen/chatbot/v1/admin_service_pb";

const LEVEL_NAMES: Record<BudgetLevel, string> = {
  [BudgetLevel.UNSPECIFIED]: "unknown",
  [BudgetLevel.NORMAL]: "normal",
  [BudgetLevel.WARNING]: "warning",
  [BudgetLevel.BLOCKED]: "blocked",
};

const FINISH_NAMES: Record<FinishReason, string> = {
  [FinishReason.UNSPECIFIED]: "—",
  [FinishReason.STOP]: "complete",
  [FinishReason.LENGTH]: "length limit",
  [FinishReason.CANCELLED]: "cancelled",
  [FinishReason.ERROR]: "error",
  [FinishReason.CONTENT_FILTER]: "content filter",
};

const GROUNDING_NAMES: Record<Grounding, string> = {
  [Grounding.UNSPECIFIED]: "—",
  [Grounding.ANSWERED]: "answered",
  [Grounding.NOT_FOUND]: "not in the documents",
};

function section(id: string, title: string, ...children: (Child | Child[])[]): HTMLElement {
  return h("section", { class: "panel" }, h("h2", { id }, title), ...children);
}

function dateTimeInput(): HTMLInputElement {
  return h("input", { type: "datetime-local" });
}

export class AdminView {
  readonly el: HTMLElement;
  private readonly denied = new Notice("alert", "admin-denied");
  private readonly sections = h("div", { class: "admin-sections" });

  // Spending
  private readonly days = h(
    "select",
    {},
    [7, 14, 30, 90].map((d) => h("option", { value: d }, `${d} days`)),
  );
  private readonly costNotice = new Notice("alert");
  private readonly costBody = h("div", { class: "cost-body" });

  // Budget
  private readonly budgetNotice = new Notice("alert");
  private readonly budgetBody = h("div", { class: "budget-body" });

  // Answer logs
  private readonly logConversation = h("input", { type: "text" });
  private readonly logModel = h("input", { type: "text" });
  private readonly logExperiment = h("select", {}, h("option", { value: "" }, "Any"));
  private readonly logErrorsOnly = h("input", {});
  private readonly logFrom = dateTimeInput();
  private readonly logUntil = dateTimeInput();
  private readonly logNotice = new Notice("alert");
  private readonly logBody = h("div", { class: "log-body" });
  private readonly logPage = h("span", { class: "muted" });
  private readonly logPrevious = button("Previous page", () => void this.loadLogs(this.logPageIndex - 1), {
    disabled: true,
  });
  private readonly logNext = button("Next page", () => void this.loadLogs(this.logPageIndex + 1), {
    disabled: true,
  });
  // Tokens of the pages seen, so that "Previous page" can go back.
  private logTokens: string[] = [""];
  private logPageIndex = 0;

  // Feedback
  private readonly feedbackDays = h("input", { type: "number", min: 1, max: 365, value: 30 });
  private readonly feedbackExperiment = h("select", {}, h("option", { value: "" }, "No experiment"));
  private readonly feedbackNotice = new Notice("alert");
  private readonly feedbackBody = h("div", { class: "feedback-body" });

  // Experiments
  private readonly experimentsNotice = new Notice("alert");
  private readonly experimentsBody = h("div", { class: "experiments-body" });
  private readonly moreExperiments = button("More experiments", () => void this.loadExperiments(true), {
    hidden: true,
  });
  private experimentsToken = "";

  // API keys
  private readonly keyName = h("input", { type: "text", maxlength: 100, required: true });
  private readonly keyRole = h(
    "select",
    {},
    h("option", { value: ApiKeyRole.CLIENT }, "Client"),
    h("option", { value: ApiKeyRole.ADMIN }, "Admin"),
  );
  private readonly keyBudget = h("input", { type: "number", min: 0, step: "0.01" });
  private readonly keyRate = h("input", { type: "text", placeholder: "5000/hour" });
  private readonly keyNotice = new Notice("alert");
  private readonly keyStatus = new Notice("status");
  private readonly secretSlot = h("div", { class: "secret-slot" });
  private readonly showRevoked = h("input", {});
  private readonly keysBody = h("div", { class: "keys-body" });
  private readonly moreKeys = button("More keys", () => void this.loadKeys(true), { hidden: true });
  private keysToken = "";

  private readonly audit = new AuditView();

  constructor() {
    this.days.addEventListener("change", () => void this.loadCosts());

    const logForm = h(
      "form",
      { class: "log-filters" },
      h(
        "div",
        { class: "field-row" },
        field("Conversation id", this.logConversation),
        field("Model", this.logModel),
        field("Experiment", this.logExperiment),
        field("From", this.logFrom),
        field("Until", this.logUntil),
      ),
      checkbox("Errors only", this.logErrorsOnly),
      h("div", { class: "buttons" }, h("button", { type: "submit" }, "Apply filters")),
    );
    logForm.addEventListener("submit", (event) => {
      event.preventDefault();
      this.logTokens = [""];
      void this.loadLogs(0);
    });

    const feedbackForm = h(
      "form",
      { class: "feedback-filters" },
      h(
        "div",
        { class: "field-row" },
        field("Days of feedback", this.feedbackDays),
        field("Compare variants of", this.feedbackExperiment),
      ),
      h("div", { class: "buttons" }, h("button", { type: "submit" }, "Show feedback")),
    );
    feedbackForm.addEventListener("submit", (event) => {
      event.preventDefault();
      void this.loadFeedback();
    });

    const keyForm = h(
      "form",
      { class: "key-form" },
      h(
        "div",
        { class: "field-row" },
        field("Key name", this.keyName),
        field("Role", this.keyRole),
        field("Daily budget (USD)", this.keyBudget, "Optional, on top of the global budget."),
        field("Rate limit", this.keyRate, "Optional, for example 5000/hour."),
      ),
      h("div", { class: "buttons" }, h("button", { type: "submit", class: "primary" }, "Create key")),
    );
    keyForm.addEventListener("submit", (event) => {
      event.preventDefault();
      void this.createKey();
    });
    this.showRevoked.addEventListener("change", () => void this.loadKeys(false));

    this.sections.append(
      section(
        "spending-heading",
        "Spending",
        h("div", { class: "inline" }, field("Days of spending", this.days)),
        this.costNotice.el,
        this.costBody,
      ),
      section("budget-heading", "Today's budget", this.budgetNotice.el, this.budgetBody),
      section(
        "logs-heading",
        "Answer logs",
        logForm,
        this.logNotice.el,
        this.logBody,
        h("div", { class: "pager" }, this.logPrevious, this.logPage, this.logNext),
      ),
      section("feedback-heading", "Feedback", feedbackForm, this.feedbackNotice.el, this.feedbackBody),
      section(
        "experiments-heading",
        "Experiments",
        this.experimentsNotice.el,
        this.experimentsBody,
        this.moreExperiments,
      ),
      section(
        "keys-heading",
        "API keys",
        keyForm,
        this.keyNotice.el,
        this.keyStatus.el,
        this.secretSlot,
        checkbox("Show revoked keys", this.showRevoked),
        this.keysBody,
        this.moreKeys,
      ),
      this.audit.el,
    );
    this.el = h(
      "div",
      { class: "admin-layout" },
      h(
        "div",
        { class: "section-head" },
        h("p", { class: "muted" }, "Every figure here needs an admin key."),
        button("Refresh", () => this.refresh()),
      ),
      this.denied.el,
      this.sections,
    );
  }

  refresh(): void {
    void this.load();
  }

  private async load(): Promise<void> {
    // The budget is the cheapest call: it tells whether the key may see the rest.
    const allowed = await this.loadBudget();
    if (!allowed) return;
    await Promise.all([
      this.loadCosts(),
      this.loadExperiments(false).then(() => this.loadFeedback()),
      this.loadLogs(0),
      this.loadKeys(false),
      this.audit.load(),
    ]);
  }

  // ---- Budget

  private async loadBudget(): Promise<boolean> {
    try {
      const response = await admin.getBudgetStatus({});
      this.denied.clear();
      this.sections.hidden = false;
      this.budgetNotice.clear();
      this.budgetBody.replaceChildren(
        ...(response.budget ? budgetView(response.budget, "Today's budget") : []),
      );
      return true;
    } catch (error) {
      const code = errorCode(error);
      if (code === Code.PermissionDenied || code === Code.Unauthenticated) {
        this.sections.hidden = true;
        this.denied.error(describeError(error));
        return false;
      }
      this.budgetNotice.error(describeError(error));
      return true;
    }
  }

  // ---- Spending

  private async loadCosts(): Promise<void> {
    try {
      const report = await admin.getCostReport({ days: Number(this.days.value) });
      this.costNotice.clear();
      const total = report.total;
      const totals = total
        ? h(
            "p",
            { class: "cost-total" },
            `${formatUsd(total.costUsd)} over ${formatCount(total.requestCount)} model calls ` +
              `(${formatCount(total.promptTokens + total.completionTokens)} tokens, ` +
              `${formatCount(total.errorCount)} failed), ${formatTime(report.startTime)} to ${formatTime(report.endTime)}.`,
          )
        : null;
      const bars = (rows: CostBreakdown[]) => rows.map((r) => ({ label: r.key, value: r.costUsd }));
      this.costBody.replaceChildren(
        ...[
          totals,
          h(
            "div",
            { class: "chart-pair" },
            h(
              "div",
              {},
              columnChart("Spend per day", bars(report.byDay), formatUsd),
              scroller(breakdownTable("Spend per day", "Day", report.byDay), "Spend per day, as numbers"),
            ),
            h(
              "div",
              {},
              barChart("Spend by model", bars(report.byModel), formatUsd),
              scroller(
                breakdownTable("Spend by model", "Model", report.byModel),
                "Spend by model, as numbers",
              ),
            ),
          ),
          report.byMethod.length > 0
            ? scroller(breakdownTable("Spend by method", "Method", report.byMethod), "Spend by method")
            : null,
          report.byVariant.length > 0
            ? scroller(
                breakdownTable("Spend by experiment variant", "Variant", report.byVariant),
                "Spend by variant",
              )
            : null,
        ].filter((x) => x !== null),
      );
    } catch (error) {
      this.costNotice.error(describeError(error));
    }
  }

  // ---- Answer logs

  private logRequest(): MessageInitShape<typeof ListAnswerLogsRequestSchema> {
    const request: MessageInitShape<typeof ListAnswerLogsRequestSchema> = {
      pageSize: 20,
      conversationId: this.logConversation.value.trim(),
      llmModel: this.logModel.value.trim(),
      experimentId: this.logExperiment.value,
      errorsOnly: this.logErrorsOnly.checked,
    };
    if (this.logFrom.value) request.startTime = timestampFromDate(new Date(this.logFrom.value));
    if (this.logUntil.value) request.endTime = timestampFromDate(new Date(this.logUntil.value));
    return request;
  }

  private async loadLogs(pageIndex: number): Promise<void> {
    if (pageIndex < 0 || pageIndex >= this.logTokens.length) return;
    try {
      const response = await admin.listAnswerLogs({
        ...this.logRequest(),
        pageToken: this.logTokens[pageIndex],
      });
      this.logNotice.clear();
      this.logPageIndex = pageIndex;
      this.logTokens = this.logTokens.slice(0, pageIndex + 1);
      if (response.nextPageToken) this.logTokens.push(response.nextPageToken);
      this.logPrevious.disabled = pageIndex === 0;
      this.logNext.disabled = !response.nextPageToken;
      this.logPage.textContent = `Page ${pageIndex + 1}`;
      this.logBody.replaceChildren(
        response.answerLogs.length > 0
          ? scroller(logTable(response.answerLogs), "Answer logs")
          : h("p", { class: "muted" }, "No answers match."),
      );
    } catch (error) {
      this.logNotice.error(describeError(error));
    }
  }

  // ---- Feedback

  private async loadFeedback(): Promise<void> {
    try {
      const summary = await admin.getFeedbackSummary({
        days: Math.min(365, Math.max(1, Number(this.feedbackDays.value) || 30)),
        experimentId: this.feedbackExperiment.value,
      });
      this.feedbackNotice.clear();
      const total = summary.total;
      this.feedbackBody.replaceChildren(
        ...[
          total ? feedbackTotals(total) : null,
          summary.byVariant.length > 0
            ? scroller(feedbackTable(summary.byVariant), "Feedback by variant")
            : null,
          h("h3", {}, "Recent comments"),
          summary.recentComments.length > 0
            ? h(
                "ul",
                { class: "comments" },
                summary.recentComments.map((f) =>
                  h(
                    "li",
                    { class: "comment" },
                    h(
                      "span",
                      {
                        class: `badge ${f.rating === FeedbackRating.POSITIVE ? "badge--positive" : "badge--negative"}`,
                      },
                      f.rating === FeedbackRating.POSITIVE ? "Helpful" : "Not helpful",
                    ),
                    " ",
                    h("q", {}, f.comment),
                    " ",
                    h("small", { class: "muted" }, timeEl(f.updateTime ?? f.createTime)),
                  ),
                ),
              )
            : h("p", { class: "muted" }, "No comments yet."),
        ].filter((x) => x !== null),
      );
    } catch (error) {
      this.feedbackNotice.error(describeError(error));
    }
  }

  // ---- Experiments

  private async loadExperiments(more: boolean): Promise<void> {
    try {
      const response = await admin.listExperiments({
        pageSize: 20,
        pageToken: more ? this.experimentsToken : "",
      });
      this.experimentsNotice.clear();
      this.experimentsToken = response.nextPageToken;
      this.moreExperiments.hidden = !response.nextPageToken;
      const results = await Promise.all(
        response.experiments.map((e) =>
          admin.getExperimentResults({ experimentId: e.experimentId }).then(
            (r) => r.variants,
            () => [] as VariantResults[],
          ),
        ),
      );
      const views = response.experiments.map((e, i) => experimentView(e, results[i]));
      if (more) this.experimentsBody.append(...views);
      else {
        this.experimentsBody.replaceChildren(...views);
        if (views.length === 0) this.experimentsBody.append(h("p", { class: "muted" }, "No experiments."));
        this.fillExperimentChoices(response.experiments);
      }
    } catch (error) {
      this.experimentsNotice.error(describeError(error));
    }
  }

  private fillExperimentChoices(experiments: Experiment[]): void {
    for (const select of [this.logExperiment, this.feedbackExperiment]) {
      const chosen = select.value;
      const first = select.options[0];
      select.replaceChildren(
        first,
        ...experiments.map((e) => h("option", { value: e.experimentId }, e.name)),
      );
      select.value = experiments.some((e) => e.experimentId === chosen) ? chosen : "";
    }
  }

  // ---- API keys

  private async loadKeys(more: boolean): Promise<void> {
    try {
      const response = await admin.listApiKeys({
        pageSize: 50,
        pageToken: more ? this.keysToken : "",
        showRevoked: this.showRevoked.checked,
      });
      this.keyNotice.clear();
      this.keysToken = response.nextPageToken;
      this.moreKeys.hidden = !response.nextPageToken;
      const rows = response.apiKeys.map((k) => this.keyRow(k));
      const existing = this.keysBody.querySelector("tbody");
      if (more && existing) {
        existing.append(...rows);
        return;
      }
      this.keysBody.replaceChildren(
        rows.length > 0
          ? scroller(
              h(
                "table",
                { class: "data keys-table" },
                h("caption", {}, "API keys"),
                h(
                  "thead",
                  {},
                  h(
                    "tr",
                    {},
                    [
                      "Name",
                      "Role",
                      "Prefix",
                      "Created",
                      "Last used",
                      "Daily budget",
                      "Rate limit",
                      "State",
                      "Actions",
                    ].map((t) => h("th", { scope: "col" }, t)),
                  ),
                ),
                h("tbody", {}, rows),
              ),
              "Key list",
            )
          : h("p", { class: "muted" }, "No API keys."),
      );
    } catch (error) {
      this.keyNotice.error(describeError(error));
    }
  }

  private keyRow(key: ApiKey): HTMLTableRowElement {
    const row = h(
      "tr",
      { class: key.revoked ? "key key--revoked" : "key" },
      h("td", {}, key.name),
      h("td", {}, key.role === ApiKeyRole.ADMIN ? "Admin" : key.role === ApiKeyRole.CLIENT ? "Client" : "—"),
      h("td", {}, h("code", {}, `${key.prefix}…`)),
      h("td", {}, timeEl(key.createTime)),
      h("td", {}, timeEl(key.lastUseTime, "never")),
      h("td", { class: "number" }, key.dailyBudgetUsd !== undefined ? formatUsd(key.dailyBudgetUsd) : "—"),
      h("td", {}, key.rateLimit || "default"),
      h("td", {}, key.revoked ? "Revoked" : "Active"),
      h(
        "td",
        { class: "actions" },
        key.revoked
          ? null
          : button("Revoke", () => void this.revokeKey(key), {
              class: "small danger",
              "aria-label": `Revoke ${key.name}`,
            }),
      ),
    );
    row.dataset.apiKeyId = key.apiKeyId;
    return row;
  }

  private async createKey(): Promise<void> {
    this.keyNotice.clear();
    this.keyStatus.clear();
    const budget = this.keyBudget.value.trim();
    try {
      const response = await admin.createApiKey({
        name: this.keyName.value.trim(),
        role: Number(this.keyRole.value) as ApiKeyRole,
        dailyBudgetUsd: budget ? Number(budget) : undefined,
        rateLimit: this.keyRate.value.trim(),
      });
      this.keyName.value = "";
      this.keyBudget.value = "";
      this.keyRate.value = "";
      this.secretSlot.replaceChildren(
        secretBox(response.apiKey?.name ?? "", response.secret, () => this.secretSlot.replaceChildren()),
      );
      await this.loadKeys(false);
    } catch (error) {
      this.keyNotice.error(describeError(error));
    }
    // Refused and failed attempts are audited too.
    void this.audit.load();
  }

  private async revokeKey(key: ApiKey): Promise<void> {
    this.keyNotice.clear();
    try {
      await admin.revokeApiKey({ apiKeyId: key.apiKeyId });
      this.keyStatus.show(`The key ${key.name} is revoked.`, "ok");
      await this.loadKeys(false);
    } catch (error) {
      this.keyNotice.error(describeError(error));
    }
    // Refused and failed attempts are audited too.
    void this.audit.load();
  }
}

function budgetView(budget: BudgetStatus, title: string): HTMLElement[] {
  const level = LEVEL_NAMES[budget.level] ?? "unknown";
  const meterId = `meter-${budget.scope || "global"}`;
  const meter = h("meter", {
    id: meterId,
    min: 0,
    max: Math.max(budget.budgetUsd, 0.000001),
    value: budget.spentUsd,
    low: budget.budgetUsd * budget.alertThreshold,
    high: budget.budgetUsd * budget.alertThreshold,
    optimum: 0,
  });
  const sentence =
    `${formatUsd(budget.spentUsd)} of ${formatUsd(budget.budgetUsd)} spent on ${budget.day} ` +
    `(${formatPercent(budget.usedFraction)}); ${formatUsd(budget.reservedUsd)} held for answers in progress. ` +
    `Alert at ${formatPercent(budget.alertThreshold)}. Resets ${formatTime(budget.resetTime)}.`;
  return [
    h(
      "div",
      { class: `budget budget--${level}` },
      gauge(
        budget.usedFraction,
        budget.alertThreshold,
        `${title}: ${formatPercent(budget.usedFraction)} used`,
        level,
      ),
      h(
        "div",
        { class: "budget-text" },
        h("p", { class: "budget-level" }, h("span", { class: `badge badge--${level}` }, `Level: ${level}`)),
        h("div", { class: "field" }, h("label", { for: meterId }, "Budget used"), meter),
        h("p", {}, sentence),
      ),
    ),
  ];
}

function breakdownTable(caption: string, keyName: string, rows: CostBreakdown[]): HTMLTableElement {
  return table(
    caption,
    [keyName, "Calls", "Prompt tokens", "Completion tokens", "Cost", "Per call", "Mean latency", "Errors"],
    rows.map((r) => [
      r.key,
      formatCount(r.requestCount),
      formatCount(r.promptTokens),
      formatCount(r.completionTokens),
      formatUsd(r.costUsd),
      formatUsd(r.costPerRequestUsd),
      formatMs(Math.round(r.meanLatencyMs)),
      formatCount(r.errorCount),
    ]),
  );
}

function logTable(logs: AnswerLog[]): HTMLTableElement {
  return table(
    "Answer logs",
    [
      "Time",
      "Question",
      "Model",
      "Grounding",
      "Ended",
      "Tokens",
      "Cost",
      "Total",
      "First text",
      "Sources",
      "Top similarity",
      "Variant",
      "Error",
    ],
    logs.map((log) => [
      timeEl(log.createTime),
      h("span", { class: "log-question", title: log.question }, log.question),
      log.llmModel || "offline",
      GROUNDING_NAMES[log.grounding] ?? "—",
      FINISH_NAMES[log.finishReason] ?? "—",
      formatCount(log.totalTokens),
      formatUsd(log.costUsd),
      formatMs(log.totalMs),
      log.firstTokenMs > 0n ? formatMs(log.firstTokenMs) : "—",
      formatCount(log.citationCount),
      log.topSimilarity.toFixed(3),
      log.experiment?.variant ? `${log.experiment.experimentName}/${log.experiment.variant}` : "—",
      log.errorType
        ? h("span", { class: "log-error", title: log.errorMessage }, `${log.errorType}: ${log.errorMessage}`)
        : "—",
    ]),
    "logs-table",
  );
}

function feedbackTotals(total: FeedbackCounts): HTMLElement {
  const item = (name: string, value: string) => h("div", {}, h("dt", {}, name), h("dd", {}, value));
  return h(
    "dl",
    { class: "feedback-totals" },
    item("Answers", formatCount(total.answerCount)),
    item("Helpful", formatCount(total.positiveCount)),
    item("Not helpful", formatCount(total.negativeCount)),
    item("Share helpful", formatPercent(total.positiveFraction)),
  );
}

function feedbackTable(rows: FeedbackCounts[]): HTMLTableElement {
  return table(
    "Feedback by variant",
    ["Variant", "Answers", "Helpful", "Not helpful", "Share helpful"],
    rows.map((r) => [
      r.key,
      formatCount(r.answerCount),
      formatCount(r.positiveCount),
      formatCount(r.negativeCount),
      formatPercent(r.positiveFraction),
    ]),
  );
}

/** An experiment with its arms as columns, settings and results side by side. */
function experimentView(experiment: Experiment, results: VariantResults[]): HTMLElement {
  const byName = new Map(results.map((r) => [r.variant, r]));
  const variants = experiment.variants;
  const row = (name: string, cell: (i: number) => Child): HTMLTableRowElement =>
    h(
      "tr",
      {},
      h("th", { scope: "row" }, name),
      variants.map((_, i) => h("td", {}, cell(i))),
    );
  const result = (i: number) => byName.get(variants[i].name);
  const arms = h(
    "table",
    { class: "data arms" },
    h("caption", {}, `Arms of ${experiment.name}`),
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        h("td", {}),
        variants.map((v) => h("th", { scope: "col" }, v.name)),
      ),
    ),
    h(
      "tbody",
      {},
      row("Weight", (i) => formatCount(variants[i].weight)),
      row("Model", (i) => variants[i].llmModel || "default"),
      row("Chunks retrieved", (i) => (variants[i].topK ? String(variants[i].topK) : "default")),
      row("Temperature", (i) => (variants[i].temperature ? String(variants[i].temperature) : "default")),
      row("Instructions", (i) =>
        variants[i].systemPrompt ? h("span", { title: variants[i].systemPrompt }, "custom") : "default",
      ),
      row("Answers", (i) => formatCount(result(i)?.answerCount ?? 0n)),
      row("Cost", (i) => formatUsd(result(i)?.costUsd ?? 0)),
      row("Cost per answer", (i) => formatUsd(result(i)?.costPerAnswerUsd ?? 0)),
      row("Median latency", (i) => formatMs(Math.round(result(i)?.p50LatencyMs ?? 0))),
      row("95th percentile latency", (i) => formatMs(Math.round(result(i)?.p95LatencyMs ?? 0))),
      row("Errors", (i) => formatCount(result(i)?.errorCount ?? 0n)),
      row("Helpful", (i) => formatCount(result(i)?.positiveCount ?? 0n)),
      row("Not helpful", (i) => formatCount(result(i)?.negativeCount ?? 0n)),
      row("Share helpful", (i) => formatPercent(result(i)?.positiveFraction ?? 0)),
    ),
  );
  return h(
    "article",
    { class: `experiment ${experiment.active ? "experiment--active" : ""}`.trim() },
    h(
      "h3",
      {},
      experiment.name,
      " ",
      h(
        "span",
        { class: `badge ${experiment.active ? "badge--active" : "badge--inactive"}` },
        experiment.active ? "Active" : "Stopped",
      ),
    ),
    experiment.description ? h("p", {}, experiment.description) : null,
    h("p", { class: "muted" }, "Created ", timeEl(experiment.createTime)),
    scroller(arms, `Arms of ${experiment.name}`),
  );
}

/** The new key's secret, shown once with a copy button. */
function secretBox(name: string, secret: string, onHide: () => void): HTMLElement {
  const status = new Notice("status");
  const code = h("code", { class: "secret", id: "new-key-secret" }, secret);
  const copy = async (): Promise<void> => {
    try {
      if (navigator.clipboard && window.isSecureContext) {
        await navigator.clipboard.writeText(secret);
      } else {
        // Without a secure context the Clipboard API is missing: copy the selected text.
        const range = document.createRange();
        range.selectNodeContents(code);
        const selection = window.getSelection();
        selection?.removeAllRanges();
        selection?.addRange(range);
        if (!document.execCommand("copy")) throw new Error("copy refused");
      }
      status.show("Copied to the clipboard.", "ok");
    } catch {
      status.error("Could not copy: select the secret and copy it by hand.");
    }
  };
  return h(
    "section",
    { class: "secret-box", role: "region", "aria-labelledby": "secret-heading" },
    h("h3", { id: "secret-heading" }, `New key${name ? ` “${name}”` : ""}: copy its secret now`),
    h("p", {}, "This secret is shown only once and is not stored. Send it as authorization: Bearer SECRET."),
    h("p", { class: "secret-line" }, code),
    h(
      "div",
      { class: "buttons" },
      button("Copy secret", () => void copy(), { class: "primary" }),
      button("Hide secret", onHide),
    ),
    status.el,
  );
}
