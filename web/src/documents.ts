// The Documents view: uploads with progress, the document list with its actions, and search.

import { describeError, documents } from "./api";
import {
  button,
  checkbox,
  field,
  formatBytes,
  formatCount,
  formatMs,
  formatPercent,
  h,
  Notice,
  scroller,
  timeEl,
} from "./dom";
import { RetrievalMode, RetrievalSignal } from "./gen/chatbot/v1/common_pb";
import type { RetrievedChunk } from "./gen/chatbot/v1/common_pb";
import { Grounding } from "./gen/chatbot/v1/chat_service_pb";
import { DocumentStatus } from "./gen/chatbot/v1/document_service_pb";
import type { Document, WatchDocumentResponse } from "./gen/chatbot/v1/document_service_pb";
import { uploadFile, watchDocument } from "./upload";

const STATUS_NAMES: Record<DocumentStatus, string> = {
  [DocumentStatus.UNSPECIFIED]: "Unknown",
  [DocumentStatus.PENDING]: "Pending",
  [DocumentStatus.PROCESSING]: "Processing",
  [DocumentStatus.READY]: "Ready",
  [DocumentStatus.FAILED]: "Failed",
};

function statusBadge(status: DocumentStatus): HTMLElement {
  const name = STATUS_NAMES[status] ?? "Unknown";
  return h("span", { class: `status status--${name.toLowerCase()}` }, name);
}

export class DocumentsView {
  readonly el: HTMLElement;
  private readonly uploads = h("ol", { class: "uploads", "aria-label": "Uploads" });
  private readonly files = h("input", { type: "file", multiple: true, accept: "application/pdf,.pdf" });
  private readonly title = h("input", { type: "text", maxlength: 300 });
  private readonly documentType = h("input", { type: "text", maxlength: 50 });
  private readonly tags = h("input", { type: "text" });
  private readonly language = h("input", { type: "text", maxlength: 35, size: 6 });
  private readonly overwrite = h("input", {});
  private readonly uploadButton = h("button", { type: "submit", class: "primary" }, "Upload");
  private readonly uploadNotice = new Notice("alert");

  private readonly statusFilter = h(
    "select",
    {},
    h("option", { value: "0" }, "All documents"),
    [DocumentStatus.PENDING, DocumentStatus.PROCESSING, DocumentStatus.READY, DocumentStatus.FAILED].map(
      (s) => h("option", { value: s }, STATUS_NAMES[s]),
    ),
  );
  private readonly listNotice = new Notice("alert");
  private readonly listStatus = new Notice("status");
  private readonly listBody = h("tbody", {});
  private readonly listCount = h("p", { class: "muted" });
  private readonly moreDocuments = button("More documents", () => void this.loadDocuments(true), {
    hidden: true,
  });
  private nextPageToken = "";

  private readonly query = h("input", { type: "search", maxlength: 2000, required: true });
  private readonly topK = h("input", { type: "number", min: 1, max: 50, value: 10 });
  private readonly mode = h(
    "select",
    {},
    h("option", { value: RetrievalMode.HYBRID }, "Hybrid (vector and full text)"),
    h("option", { value: RetrievalMode.VECTOR }, "Vector similarity only"),
    h("option", { value: RetrievalMode.TEXT }, "Full text only"),
  );
  private readonly searchNotice = new Notice("alert");
  private readonly searchSummary = h("p", { class: "search-summary", role: "status" });
  private readonly results = h("ol", { class: "search-results" });

  constructor() {
    const uploadForm = h(
      "form",
      { class: "upload-form" },
      field("PDF files", this.files),
      h(
        "div",
        { class: "field-row" },
        field("Title", this.title, "For a single file; empty uses the file name."),
        field("Document type", this.documentType, "For example manual."),
        field("Tags", this.tags, "Comma-separated."),
        field("Language", this.language, "For example en; empty detects it."),
      ),
      checkbox("Store again even if the same file is already stored", this.overwrite),
      h("div", { class: "buttons" }, this.uploadButton),
      this.uploadNotice.el,
    );
    uploadForm.addEventListener("submit", (event) => {
      event.preventDefault();
      void this.uploadSelected();
    });

    this.statusFilter.addEventListener("change", () => void this.loadDocuments(false));
    const listTable = h(
      "table",
      { class: "data documents-table" },
      h("caption", {}, "Stored documents"),
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          ["Title", "Status", "Pages", "Chunks", "Language", "Uploaded", "Notes", "Actions"].map((t) =>
            h("th", { scope: "col" }, t),
          ),
        ),
      ),
      this.listBody,
    );

    const searchForm = h(
      "form",
      { class: "search-form", role: "search" },
      field("Search", this.query),
      h("div", { class: "field-row" }, field("Number of results", this.topK), field("Ranking", this.mode)),
      h("div", { class: "buttons" }, h("button", { type: "submit", class: "primary" }, "Search")),
    );
    searchForm.addEventListener("submit", (event) => {
      event.preventDefault();
      void this.search();
    });

    this.el = h(
      "div",
      { class: "documents-layout" },
      h(
        "section",
        { class: "panel" },
        h("h2", { id: "upload-heading" }, "Upload PDFs"),
        uploadForm,
        this.uploads,
      ),
      h(
        "section",
        { class: "panel" },
        h(
          "div",
          { class: "section-head" },
          h("h2", { id: "documents-heading" }, "Documents"),
          h(
            "div",
            { class: "inline" },
            field("Status", this.statusFilter),
            button("Refresh", () => void this.loadDocuments(false)),
          ),
        ),
        this.listNotice.el,
        this.listStatus.el,
        this.listCount,
        scroller(listTable, "Stored documents"),
        this.moreDocuments,
      ),
      h(
        "section",
        { class: "panel" },
        h("h2", { id: "search-heading" }, "Search documents"),
        searchForm,
        this.searchNotice.el,
        this.searchSummary,
        this.results,
      ),
    );
  }

  refresh(): void {
    void this.loadDocuments(false);
  }

  // ---- Uploads

  private async uploadSelected(): Promise<void> {
    const files = Array.from(this.files.files ?? []);
    this.uploadNotice.clear();
    if (files.length === 0) {
      this.uploadNotice.error("Choose one or more PDF files first.");
      return;
    }
    const tags = this.tags.value
      .split(",")
      .map((t) => t.trim())
      .filter(Boolean);
    const shared = {
      documentType: this.documentType.value.trim(),
      tags,
      language: this.language.value.trim(),
      overwrite: this.overwrite.checked,
    };
    const title = files.length === 1 ? this.title.value.trim() : "";
    const rows = files.map((file) => new UploadRow(file));
    this.uploads.prepend(...rows.map((r) => r.el));
    this.files.value = "";
    this.uploadButton.disabled = true;
    // One file at a time keeps within the server's limit on open uploads.
    try {
      for (const row of rows) {
        const documentId = await row.upload({ ...shared, title });
        if (documentId) {
          void this.loadDocuments(false);
          void row.watch(documentId).then(() => this.loadDocuments(false));
        }
      }
    } finally {
      this.uploadButton.disabled = false;
    }
  }

  // ---- Document list

  private async loadDocuments(more: boolean): Promise<void> {
    try {
      const response = await documents.listDocuments({
        pageSize: 50,
        pageToken: more ? this.nextPageToken : "",
        status: Number(this.statusFilter.value) as DocumentStatus,
      });
      this.listNotice.clear();
      const rows = response.documents.map((d) => this.documentRow(d));
      if (more) this.listBody.append(...rows);
      else this.listBody.replaceChildren(...rows);
      if (!more && rows.length === 0) {
        this.listBody.append(h("tr", {}, h("td", { colspan: 8, class: "muted" }, "No documents.")));
      }
      const shown = this.listBody.querySelectorAll("tr.document").length;
      this.listCount.textContent = `${formatCount(shown)} of ${formatCount(response.totalSize)} documents shown.`;
      this.nextPageToken = response.nextPageToken;
      this.moreDocuments.hidden = !response.nextPageToken;
    } catch (error) {
      this.listNotice.error(describeError(error));
    }
  }

  private documentRow(doc: Document): HTMLTableRowElement {
    const title = doc.title || doc.filename;
    const notes: (HTMLElement | null)[] = [];
    if (doc.error) notes.push(h("p", { class: "document-error" }, doc.error));
    if (doc.warnings.length > 0) {
      notes.push(
        h(
          "ul",
          { class: "document-warnings" },
          doc.warnings.map((w) => h("li", {}, w)),
        ),
      );
    }
    const row = h(
      "tr",
      { class: "document" },
      h(
        "td",
        {},
        h("span", { class: "document-title" }, title),
        doc.filename && doc.filename !== title
          ? h("small", { class: "document-filename" }, doc.filename)
          : null,
        h("small", { class: "muted" }, formatBytes(doc.sizeBytes)),
      ),
      h("td", {}, statusBadge(doc.status)),
      h("td", { class: "number" }, doc.pageCount ? formatCount(doc.pageCount) : "—"),
      h("td", { class: "number" }, doc.chunkCount ? formatCount(doc.chunkCount) : "—"),
      h("td", {}, doc.language || "—"),
      h("td", {}, timeEl(doc.createTime)),
      h("td", { class: "notes" }, notes.length > 0 ? notes : "—"),
      h(
        "td",
        { class: "actions" },
        button("Reprocess", () => void this.reprocess(doc), {
          class: "small",
          "aria-label": `Reprocess ${title}`,
        }),
        button("Delete", () => void this.remove(doc), {
          class: "small danger",
          "aria-label": `Delete ${title}`,
        }),
      ),
    );
    row.dataset.documentId = doc.documentId;
    return row;
  }

  private async reprocess(doc: Document): Promise<void> {
    this.listNotice.clear();
    try {
      await documents.reprocessDocument({ documentId: doc.documentId });
      this.listStatus.show(`${doc.title || doc.filename} is queued to be processed again.`, "ok");
      await this.loadDocuments(false);
    } catch (error) {
      this.listNotice.error(describeError(error));
    }
  }

  private async remove(doc: Document): Promise<void> {
    this.listNotice.clear();
    try {
      await documents.deleteDocument({ documentId: doc.documentId });
      this.listStatus.show(`${doc.title || doc.filename} was deleted.`, "ok");
      await this.loadDocuments(false);
    } catch (error) {
      this.listNotice.error(describeError(error));
    }
  }

  // ---- Search

  private async search(): Promise<void> {
    const query = this.query.value.trim();
    if (!query) return;
    this.searchNotice.clear();
    this.searchSummary.textContent = "Searching…";
    try {
      const response = await documents.search({
        query,
        topK: Math.min(50, Math.max(1, Number(this.topK.value) || 10)),
        mode: Number(this.mode.value) as RetrievalMode,
      });
      const parts = [
        `${response.results.length} results in ${formatMs(response.tookMs)}`,
        `language ${response.queryLanguage || "unknown"}`,
        `embedding model ${response.embeddingModel || "none"}`,
      ];
      if (response.grounding === Grounding.ANSWERED) parts.push("the passages hold an answer");
      if (response.grounding === Grounding.NOT_FOUND)
        parts.push("the passages do not seem to hold an answer");
      this.searchSummary.textContent = `${parts.join(" · ")}.`;
      this.results.replaceChildren(...response.results.map((chunk, i) => searchHit(chunk, i + 1)));
    } catch (error) {
      this.searchSummary.textContent = "";
      this.results.replaceChildren();
      this.searchNotice.error(describeError(error));
    }
  }
}

const SIGNAL_NAMES: Partial<Record<RetrievalSignal, string>> = {
  [RetrievalSignal.VECTOR]: "vector",
  [RetrievalSignal.FULL_TEXT]: "full text",
};

function excerpt(text: string, length = 320): string {
  return text.length > length ? `${text.slice(0, length).trimEnd()}…` : text;
}

function searchHit(chunk: RetrievedChunk, rank: number): HTMLLIElement {
  const signals = chunk.signals.map((s) => SIGNAL_NAMES[s]).filter((s): s is string => Boolean(s));
  const term = (name: string, value: string): HTMLElement =>
    h("div", {}, h("dt", {}, name), h("dd", {}, value));
  return h(
    "li",
    { class: "search-hit" },
    h(
      "article",
      { "aria-label": `Result ${rank}: ${chunk.documentTitle}` },
      h("h3", { class: "hit-title" }, chunk.documentTitle || "Untitled document"),
      h(
        "p",
        { class: "hit-where" },
        `Page ${chunk.pageNumber}`,
        chunk.sectionTitle ? ` · ${chunk.sectionTitle}` : "",
        ` · chunk ${chunk.ordinal + 1}`,
      ),
      h(
        "p",
        { class: "hit-signals" },
        "Found by ",
        signals.length > 0
          ? signals.flatMap((s, i) => [
              i > 0 ? " " : "",
              h("span", { class: `signal signal--${s.replace(" ", "-")}` }, s),
            ])
          : "—",
      ),
      h("blockquote", { class: "hit-text" }, excerpt(chunk.text)),
      chunk.text.length > 320
        ? h("details", { class: "hit-full" }, h("summary", {}, "Whole passage"), h("p", {}, chunk.text))
        : null,
      h(
        "dl",
        { class: "hit-scores" },
        term("Relevance", chunk.relevanceScore.toFixed(3)),
        term("Vector similarity", chunk.vectorSimilarity.toFixed(3)),
        term("Vector rank", chunk.vectorRank > 0 ? String(chunk.vectorRank) : "—"),
        term("Full-text rank", chunk.textRank > 0 ? String(chunk.textRank) : "—"),
        term("Term coverage", formatPercent(chunk.termCoverage)),
      ),
    ),
  );
}

/** One file's upload: bytes sent, then processing until READY or FAILED. */
class UploadRow {
  readonly el: HTMLLIElement;
  private readonly sent: HTMLProgressElement;
  private readonly processing: HTMLProgressElement;
  private readonly status = h("p", { class: "upload-status", role: "status" });
  private readonly details = h("ul", { class: "upload-warnings", hidden: true });

  constructor(private readonly file: File) {
    this.sent = h("progress", {
      class: "upload-progress",
      max: Math.max(file.size, 1),
      value: 0,
      "aria-label": `Bytes sent: ${file.name}`,
    });
    this.processing = h("progress", {
      class: "processing-progress",
      "aria-label": `Processing: ${file.name}`,
      hidden: true,
    });
    this.el = h(
      "li",
      { class: "upload upload--waiting" },
      h("p", { class: "upload-name" }, h("strong", {}, file.name), ` (${formatBytes(file.size)})`),
      this.sent,
      this.processing,
      this.status,
      this.details,
    );
    this.status.textContent = "Waiting…";
  }

  private state(name: string, text: string): void {
    this.el.className = `upload upload--${name}`;
    this.status.textContent = text;
  }

  /** Sends the file; returns the stored document's id, or "" when it failed. */
  async upload(options: Parameters<typeof uploadFile>[1]): Promise<string> {
    try {
      const response = await uploadFile(this.file, {
        ...options,
        onHashing: () => this.state("hashing", "Computing the checksum…"),
        onProgress: (sent, total) => {
          this.sent.max = Math.max(total, 1);
          this.sent.value = sent;
          this.state(
            "sending",
            `Sending: ${formatBytes(sent)} of ${formatBytes(total)} (${formatPercent(total ? sent / total : 1)})`,
          );
        },
        onRetry: (message) => (this.status.textContent = message),
      });
      this.sent.value = this.sent.max;
      const doc = response.document;
      if (!doc) {
        this.state("error", "The server stored nothing.");
        return "";
      }
      this.el.dataset.documentId = doc.documentId;
      const prefix = response.deduplicated ? "Already stored (same content): " : "Stored: ";
      this.showDocument(doc, prefix);
      return doc.status === DocumentStatus.READY || doc.status === DocumentStatus.FAILED
        ? ""
        : doc.documentId;
    } catch (error) {
      this.state("error", `Upload failed: ${describeError(error)}`);
      return "";
    }
  }

  async watch(documentId: string): Promise<void> {
    try {
      await watchDocument(documentId, (change) => this.progress(change));
    } catch (error) {
      this.state("error", `Lost track of processing: ${describeError(error)}`);
    }
  }

  private progress(change: WatchDocumentResponse): void {
    const doc = change.document;
    if (!doc) return;
    if (doc.status === DocumentStatus.PROCESSING) {
      const parts = [`${formatCount(change.pagesDone)} pages extracted`];
      if (change.chunksTotal > 0) {
        parts.push(`${formatCount(change.chunksDone)} of ${formatCount(change.chunksTotal)} chunks embedded`);
        this.processing.max = change.chunksTotal;
        this.processing.value = change.chunksDone;
      } else {
        this.processing.removeAttribute("value"); // indeterminate until chunking is done
      }
      this.processing.hidden = false;
      this.state("processing", `Processing: ${parts.join(", ")}`);
      return;
    }
    this.showDocument(doc, "");
  }

  private showDocument(doc: Document, prefix: string): void {
    switch (doc.status) {
      case DocumentStatus.READY:
        this.processing.hidden = true;
        this.state(
          "ready",
          `${prefix}Ready: ${formatCount(doc.pageCount)} pages, ${formatCount(doc.chunkCount)} chunks.`,
        );
        break;
      case DocumentStatus.FAILED:
        this.processing.hidden = true;
        this.state("failed", `${prefix}Failed: ${doc.error || "processing failed"}`);
        break;
      case DocumentStatus.PROCESSING:
        this.state("processing", `${prefix}Processing…`);
        break;
      default:
        this.state("pending", `${prefix}Pending: waiting for a worker…`);
    }
    this.details.replaceChildren(...doc.warnings.map((w) => h("li", {}, w)));
    this.details.hidden = doc.warnings.length === 0;
  }
}
