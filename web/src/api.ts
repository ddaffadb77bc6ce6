// The Connect transport, the API key, and errors turned into sentences a person can act on.

import { create, createRegistry, fromBinary } from "@bufbuild/protobuf";
import type { DescMessage, MessageShape, Registry } from "@bufbuild/protobuf";
import { anyUnpack } from "@bufbuild/protobuf/wkt";
import type { Duration } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import type { Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";

import { AdminService } from "./gen/chatbot/v1/admin_service_pb";
import { ChatService } from "./gen/chatbot/v1/chat_service_pb";
import { DocumentService } from "./gen/chatbot/v1/document_service_pb";
import type { Status } from "./gen/google/rpc/status_pb";
import {
  BadRequestSchema,
  ErrorInfoSchema,
  PreconditionFailureSchema,
  QuotaFailureSchema,
  RetryInfoSchema,
} from "./gen/google/rpc/error_details_pb";
import type { BadRequest, ErrorInfo, RetryInfo } from "./gen/google/rpc/error_details_pb";
import { formatWait } from "./dom";

const KEY_STORAGE = "chatbot.console.apiKey";
const SESSION_STORAGE = "chatbot.console.sessionId";

function storage(kind: "session" | "local"): Storage | null {
  try {
    return kind === "session" ? window.sessionStorage : window.localStorage;
  } catch {
    return null; // Storage can be blocked; the console then forgets on reload.
  }
}

let memoryKey = "";

export function apiKey(): string {
  return storage("session")?.getItem(KEY_STORAGE) ?? memoryKey;
}

export function setApiKey(key: string): void {
  memoryKey = key.trim();
  const store = storage("session");
  if (!store) return;
  if (memoryKey) store.setItem(KEY_STORAGE, memoryKey);
  else store.removeItem(KEY_STORAGE);
}

let memorySession = "";

/**
 * This browser's session id for conversations: the server lets only callers that present it
 * read them, so people sharing an address (or a key) do not see each other's conversations.
 */
export function sessionId(): string {
  const store = storage("local");
  let id = store?.getItem(SESSION_STORAGE) ?? memorySession;
  if (!id) {
    id = crypto.randomUUID ? crypto.randomUUID() : fallbackUuid();
    store?.setItem(SESSION_STORAGE, id);
    memorySession = id;
  }
  return id;
}

function fallbackUuid(): string {
  // crypto.randomUUID needs a secure context; getRandomValues does not.
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

const authorization: Interceptor = (next) => async (request) => {
  const key = apiKey();
  if (key) request.header.set("authorization", `Bearer ${key}`);
  return next(request);
};

// Binary Protobuf: the edge bridges Connect to gRPC without transcoding JSON.
const transport = createConnectTransport({
  baseUrl: window.location.origin,
  useBinaryFormat: true,
  interceptors: [authorization],
});

export const chat = createClient(ChatService, transport);
export const documents = createClient(DocumentService, transport);
export const admin = createClient(AdminService, transport);

const detailTypes: Registry = createRegistry(
  ErrorInfoSchema,
  RetryInfoSchema,
  BadRequestSchema,
  QuotaFailureSchema,
  PreconditionFailureSchema,
);

interface Details {
  info?: ErrorInfo;
  retry?: RetryInfo;
  badRequest?: BadRequest;
}

function seconds(duration: Duration | undefined): number | undefined {
  if (!duration) return undefined;
  return Number(duration.seconds) + duration.nanos / 1e9;
}

/**
 * The first detail of one type. ConnectError.findDetails matches bare type names only, but
 * the edge's Connect bridge sends full type URLs ("type.googleapis.com/google.rpc.ErrorInfo").
 */
function findDetail<Desc extends DescMessage>(
  error: ConnectError,
  schema: Desc,
): MessageShape<Desc> | undefined {
  for (const detail of error.details) {
    try {
      if ("desc" in detail) {
        if (detail.desc.typeName === schema.typeName) return create(schema, detail.value as never);
        continue;
      }
      const typeName = detail.type.slice(detail.type.lastIndexOf("/") + 1);
      if (typeName === schema.typeName) return fromBinary(schema, detail.value);
    } catch {
      // An undecodable detail is skipped; the message still speaks for the error.
    }
  }
  return undefined;
}

/** Seconds the server asked the caller to wait, from RetryInfo or a Retry-After header. */
export function retryAfterSeconds(error: unknown): number | undefined {
  if (!(error instanceof ConnectError)) return undefined;
  const retry = findDetail(error, RetryInfoSchema);
  const fromDetails = seconds(retry?.retryDelay);
  if (fromDetails !== undefined) return fromDetails;
  const header = Number(error.metadata.get("retry-after"));
  return Number.isFinite(header) && header > 0 ? header : undefined;
}

export function errorCode(error: unknown): Code | undefined {
  return error instanceof ConnectError ? error.code : undefined;
}

export function errorReason(error: unknown): string {
  if (!(error instanceof ConnectError)) return "";
  return findDetail(error, ErrorInfoSchema)?.reason ?? "";
}

/** True when the call ended because the page aborted it. */
export function isAbort(error: unknown, signal?: AbortSignal): boolean {
  if (signal?.aborted) return true;
  if (error instanceof DOMException && error.name === "AbortError") return true;
  return error instanceof ConnectError && error.code === Code.Canceled;
}

/** Whether a stream failed because its connection broke (the network, a proxy, a server
 * going away) rather than because the server refused or the reader stopped it. */
export function brokenStream(error: unknown, signal?: AbortSignal): boolean {
  if (isAbort(error, signal)) return false;
  const code = error instanceof ConnectError ? error.code : Code.Unknown;
  return code === Code.Unavailable || code === Code.Unknown || code === Code.Internal;
}

/** Waits `ms`; rejects with an AbortError as soon as `signal` aborts. */
export function pause(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(timer);
      reject(new DOMException("aborted", "AbortError"));
    });
  });
}

/** A failed call as a sentence a person can act on. */
export function describeError(error: unknown): string {
  if (!(error instanceof ConnectError)) {
    if (error instanceof Error) return error.message;
    return String(error);
  }
  const details: Details = {
    info: findDetail(error, ErrorInfoSchema),
    retry: findDetail(error, RetryInfoSchema),
    badRequest: findDetail(error, BadRequestSchema),
  };
  let wait = seconds(details.retry?.retryDelay);
  if (wait === undefined) wait = retryAfterSeconds(error);
  return describe(error.code, error.rawMessage, details, wait);
}

/** A google.rpc.Status carried inside a message (an answer's `done.error`) as a sentence. */
export function describeStatus(status: Status): string {
  const details: Details = {};
  for (const any of status.details) {
    try {
      const message = anyUnpack(any, detailTypes);
      if (!message) continue;
      if (message.$typeName === "google.rpc.ErrorInfo") details.info ??= message as ErrorInfo;
      if (message.$typeName === "google.rpc.RetryInfo") details.retry ??= message as RetryInfo;
      if (message.$typeName === "google.rpc.BadRequest") details.badRequest ??= message as BadRequest;
    } catch {
      // An undecodable detail leaves the message to speak for itself.
    }
  }
  return describe(status.code as Code, status.message, details, seconds(details.retry?.retryDelay));
}

function sentence(text: string): string {
  const trimmed = text.trim();
  if (!trimmed) return "";
  const capital = trimmed[0].toUpperCase() + trimmed.slice(1);
  return /[.!?]$/.test(capital) ? capital : `${capital}.`;
}

function describe(code: Code, message: string, details: Details, wait: number | undefined): string {
  const reason = details.info?.reason ?? "";
  const retry = wait !== undefined ? ` Retry in ${formatWait(wait)}.` : "";
  switch (reason) {
    case "RATE_LIMITED":
      return `Rate limited, retry in ${formatWait(wait ?? 1)}.`;
    case "LLM_RATE_LIMITED":
      return `The language model is rate limited.${retry || " Try again shortly."}`;
    case "DAILY_BUDGET_EXCEEDED":
    case "KEY_BUDGET_EXCEEDED":
    case "BUDGET_EXHAUSTED": {
      const whose = reason === "KEY_BUDGET_EXCEEDED" ? "This API key's daily budget" : "Today's budget";
      return `${whose} is used up.${retry} ${sentence(message)}`.trim();
    }
    case "ADMIN_REQUIRED":
      return "This needs an admin key: enter one under API key.";
    case "API_KEY_REQUIRED":
      return "This server needs an API key: enter one under API key.";
    case "INVALID_API_KEY":
      return "The API key is unknown or revoked: check it, or forget it to call anonymously.";
    case "CONVERSATION_NOT_OWNED":
      return "This conversation belongs to another caller or browser session.";
  }
  if (code === Code.PermissionDenied) {
    return `This needs an admin key (or a key allowed to do this). ${sentence(message)}`.trim();
  }
  if (code === Code.Unauthenticated) {
    return `The server did not accept the API key. ${sentence(message)}`.trim();
  }
  const violations = details.badRequest?.fieldViolations ?? [];
  if (violations.length > 0) {
    const list = violations.map((v) => (v.field ? `${v.field}: ${v.description}` : v.description));
    return `Please check the request: ${list.join("; ")}.`;
  }
  if (code === Code.ResourceExhausted) {
    return `${sentence(message) || "Too many requests."}${retry}`;
  }
  if (!message || /failed to fetch|networkerror|load failed/i.test(message)) {
    if (code === Code.Unavailable || code === Code.Unknown) {
      return `The server cannot be reached.${retry || " Try again shortly."}`;
    }
  }
  if (code === Code.Unavailable && !message) {
    return `The server cannot be reached.${retry || " Try again shortly."}`;
  }
  const text = sentence(message) || `The call failed (${Code[code] ?? code}).`;
  return `${text}${retry}`;
}
