// The Chat view: conversations, the question box, and answers streamed as they are written.

import { AnswerView } from "./answer";
import { brokenStream, chat, describeError, isAbort, pause, sessionId } from "./api";
import { button, field, h, Notice, timeEl } from "./dom";
import { MessageRole } from "./gen/chatbot/v1/chat_service_pb";
import type { Conversation } from "./gen/chatbot/v1/chat_service_pb";

// A stream that breaks is resumed this many times, waiting a little longer each time.
const RESUMES = 5;
const RESUME_DELAY_MS = 500;

export class ChatView {
  readonly el: HTMLElement;
  private conversationId = "";
  private abort: AbortController | null = null;
  // The answer being streamed, for CancelAnswer when the reader stops it.
  private answerId = "";
  private nextPageToken = "";
  private readonly conversationList = h("ul", { class: "conversation-list" });
  private readonly moreConversations = button("More conversations", () => void this.loadConversations(true), {
    hidden: true,
  });
  private readonly listNotice = new Notice("alert");
  private readonly transcript = h("ol", { class: "transcript", "aria-label": "Conversation" });
  private readonly empty = h(
    "p",
    { class: "transcript-empty" },
    "Ask a question about the stored documents.",
  );
  private readonly question = h("textarea", {
    rows: 2,
    maxlength: 4000,
    required: true,
    autocomplete: "off",
    class: "question-input",
  });
  private readonly send = h("button", { type: "submit", class: "primary" }, "Send");
  private readonly stop = button("Stop", () => this.stopAnswer(), { class: "stop", hidden: true });
  private readonly chatNotice = new Notice("alert");
  private readonly live = h("p", { class: "visually-hidden", role: "status" });
  private readonly heading = h("h2", { id: "chat-heading" }, "New conversation");

  constructor() {
    const form = h(
      "form",
      { class: "ask" },
      field("Question", this.question, "Enter sends; Shift+Enter starts a new line."),
      h("div", { class: "ask-buttons" }, this.send, this.stop),
    );
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      void this.ask();
    });
    this.question.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        form.requestSubmit();
      }
    });

    const aside = h(
      "section",
      { class: "conversations" },
      h(
        "div",
        { class: "section-head" },
        h("h2", { id: "conversations-heading" }, "Conversations"),
        button("New conversation", () => this.newConversation(), { class: "new-conversation" }),
      ),
      this.listNotice.el,
      this.conversationList,
      this.moreConversations,
    );
    const main = h(
      "section",
      { class: "chat-main" },
      this.heading,
      this.empty,
      this.transcript,
      this.chatNotice.el,
      form,
      this.live,
    );
    this.el = h("div", { class: "chat-layout" }, aside, main);
  }

  /** Called when the view is shown or the API key changes. */
  refresh(): void {
    void this.loadConversations(false);
  }

  focus(): void {
    this.question.focus();
  }

  private setStreaming(on: boolean): void {
    this.send.disabled = on;
    this.stop.hidden = !on;
    this.el.classList.toggle("is-streaming", on);
  }

  private async ask(): Promise<void> {
    const question = this.question.value.trim();
    if (!question || this.abort) return;
    this.chatNotice.clear();
    this.question.value = "";
    const answer = this.addTurn(question, new AnswerView());
    const abort = new AbortController();
    this.abort = abort;
    this.setStreaming(true);
    this.live.textContent = "Answering…";
    const startedNew = this.conversationId === "";
    let started = false;
    this.answerId = "";
    try {
      let stream = chat.streamAnswer(
        { question, conversationId: this.conversationId, sessionId: sessionId() },
        { signal: abort.signal },
      );
      let last = 0n;
      for (let resumes = 0; ; resumes++) {
        try {
          for await (const response of stream) {
            last = response.sequence;
            const event = response.event;
            switch (event.case) {
              case "started":
                started = true;
                this.answerId = event.value.answerId;
                this.conversationId = event.value.conversationId;
                answer.started(event.value);
                if (startedNew) this.heading.textContent = question.slice(0, 80);
                break;
              case "delta":
                answer.append(event.value.text);
                break;
              case "citations":
                answer.setCitations(event.value.citations);
                break;
              case "usage":
                answer.setUsage(event.value);
                break;
              case "done":
                answer.finish(event.value);
                break;
            }
          }
          break;
        } catch (error) {
          // A broken connection: the answer goes on on the server; pick it up where the
          // stream broke, from whichever server the edge picks.
          if (!this.answerId || !brokenStream(error, abort.signal) || resumes >= RESUMES) throw error;
          await pause(RESUME_DELAY_MS * (resumes + 1), abort.signal);
          stream = chat.resumeAnswer(
            { answerId: this.answerId, afterSequence: last },
            { signal: abort.signal },
          );
        }
      }
      answer.settle();
      this.live.textContent = "Answer complete.";
    } catch (error) {
      if (isAbort(error, abort.signal)) {
        answer.stopped();
        this.live.textContent = "Answer stopped.";
      } else {
        answer.fail(describeError(error));
        this.live.textContent = "The answer failed.";
        // Refused before it began (a rate limit, say): give the question back to retry.
        if (!started && this.question.value === "") this.question.value = question;
      }
    } finally {
      const hadFocus = document.activeElement === this.stop;
      this.abort = null;
      this.setStreaming(false);
      if (hadFocus) this.question.focus();
      void this.loadConversations(false);
    }
  }

  private addTurn(question: string, answer: AnswerView): AnswerView {
    this.empty.hidden = true;
    this.transcript.append(
      h(
        "li",
        { class: "turn" },
        h("p", { class: "question" }, h("span", { class: "visually-hidden" }, "You asked: "), question),
        answer.el,
      ),
    );
    answer.el.scrollIntoView({ block: "nearest" });
    return answer;
  }

  /** Stops the answer on the server at once (it would otherwise wait for a resume), and
   * stops reading it. */
  private stopAnswer(): void {
    if (this.answerId) void chat.cancelAnswer({ answerId: this.answerId }).catch(() => undefined);
    this.abort?.abort();
  }

  private newConversation(): void {
    this.abort?.abort();
    this.conversationId = "";
    this.transcript.replaceChildren();
    this.empty.hidden = false;
    this.chatNotice.clear();
    this.heading.textContent = "New conversation";
    this.markCurrent();
    this.question.focus();
  }

  private async openConversation(conversation: Conversation): Promise<void> {
    this.abort?.abort();
    this.chatNotice.clear();
    try {
      const response = await chat.getConversation({
        conversationId: conversation.conversationId,
        sessionId: sessionId(),
      });
      this.conversationId = conversation.conversationId;
      this.heading.textContent = response.conversation?.title || conversation.title || "Conversation";
      this.transcript.replaceChildren();
      let pending = "";
      for (const message of response.messages) {
        if (message.role === MessageRole.USER) {
          if (pending) this.addTurnWithoutAnswer(pending);
          pending = message.content;
        } else if (message.role === MessageRole.ASSISTANT) {
          this.addTurn(pending, AnswerView.fromMessage(message));
          pending = "";
        }
      }
      if (pending) this.addTurnWithoutAnswer(pending);
      this.empty.hidden = response.messages.length > 0;
      this.markCurrent();
      this.question.focus();
    } catch (error) {
      this.chatNotice.error(describeError(error));
    }
  }

  private addTurnWithoutAnswer(question: string): void {
    this.empty.hidden = true;
    this.transcript.append(h("li", { class: "turn" }, h("p", { class: "question" }, question)));
  }

  private async deleteConversation(conversation: Conversation): Promise<void> {
    this.listNotice.clear();
    try {
      await chat.deleteConversation({
        conversationId: conversation.conversationId,
        sessionId: sessionId(),
      });
      if (conversation.conversationId === this.conversationId) this.newConversation();
      await this.loadConversations(false);
    } catch (error) {
      this.listNotice.error(describeError(error));
    }
  }

  private async loadConversations(more: boolean): Promise<void> {
    try {
      const response = await chat.listConversations({
        sessionId: sessionId(),
        pageSize: 20,
        pageToken: more ? this.nextPageToken : "",
      });
      this.listNotice.clear();
      const items = response.conversations.map((c) => this.conversationItem(c));
      if (more) this.conversationList.append(...items);
      else this.conversationList.replaceChildren(...items);
      if (!more && items.length === 0) {
        this.conversationList.append(h("li", { class: "muted" }, "No conversations yet."));
      }
      this.nextPageToken = response.nextPageToken;
      this.moreConversations.hidden = !response.nextPageToken;
      this.markCurrent();
    } catch (error) {
      this.listNotice.error(describeError(error));
    }
  }

  private conversationItem(conversation: Conversation): HTMLLIElement {
    const title = conversation.title || "Untitled conversation";
    const open = button(title, () => void this.openConversation(conversation), {
      class: "conversation-open",
    });
    open.dataset.conversationId = conversation.conversationId;
    return h(
      "li",
      { class: "conversation" },
      open,
      h(
        "small",
        { class: "conversation-meta" },
        `${conversation.messageCount} messages · `,
        timeEl(conversation.updateTime ?? conversation.createTime),
      ),
      button("Delete", () => void this.deleteConversation(conversation), {
        class: "danger small",
        "aria-label": `Delete conversation: ${title}`,
      }),
    );
  }

  private markCurrent(): void {
    for (const el of this.conversationList.querySelectorAll<HTMLButtonElement>(".conversation-open")) {
      if (el.dataset.conversationId === this.conversationId && this.conversationId) {
        el.setAttribute("aria-current", "true");
      } else {
        el.removeAttribute("aria-current");
      }
    }
  }
}
