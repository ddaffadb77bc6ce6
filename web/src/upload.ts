// Resumable uploads for browsers, which cannot stream a request: BeginUpload, AppendUpload
// in pieces of at most 1 MiB, CommitUpload. Then WatchDocument until READY or FAILED.

import { Code } from "@connectrpc/connect";

import { documents, errorCode, errorReason, pause, retryAfterSeconds } from "./api";
import type { CommitUploadResponse, WatchDocumentResponse } from "./gen/chatbot/v1/document_service_pb";
import { sha256Hex } from "./sha256";

// The most the service takes in one piece.
const PIECE_BYTES = 1024 * 1024;
const ATTEMPTS = 5;

export interface UploadOptions {
  title?: string;
  documentType?: string;
  tags?: string[];
  language?: string;
  overwrite?: boolean;
  signal?: AbortSignal;
  onHashing?: () => void;
  onProgress?: (sentBytes: number, totalBytes: number) => void;
  onRetry?: (message: string) => void;
}

// Worth another try: the network, an overloaded or restarting server, a limit that lifts.
const TRANSIENT = new Set<Code>([
  Code.Unavailable,
  Code.DeadlineExceeded,
  Code.Unknown,
  Code.Aborted,
  Code.Internal,
  Code.ResourceExhausted,
]);

export async function uploadFile(file: File, options: UploadOptions = {}): Promise<CommitUploadResponse> {
  const { signal } = options;
  options.onHashing?.();
  const bytes = new Uint8Array(await file.arrayBuffer());
  const sha256 = await sha256Hex(bytes);
  const begin = await documents.beginUpload(
    {
      metadata: {
        filename: file.name,
        title: options.title ?? "",
        documentType: options.documentType ?? "",
        tags: options.tags ?? [],
        language: options.language ?? "",
        overwrite: options.overwrite ?? false,
        sizeBytes: BigInt(bytes.length),
        sha256,
      },
    },
    { signal },
  );
  const uploadId = begin.upload?.uploadId ?? "";
  let offset = Number(begin.upload?.receivedBytes ?? 0n);
  let failures = 0;
  options.onProgress?.(offset, bytes.length);
  while (offset < bytes.length) {
    const end = Math.min(offset + PIECE_BYTES, bytes.length);
    try {
      const appended = await documents.appendUpload(
        { uploadId, offset: BigInt(offset), data: bytes.subarray(offset, end) },
        { signal },
      );
      offset = Number(appended.upload?.receivedBytes ?? BigInt(end));
      failures = 0;
      options.onProgress?.(offset, bytes.length);
    } catch (error) {
      if (signal?.aborted) throw error;
      failures += 1;
      const code = errorCode(error);
      if (failures >= ATTEMPTS) throw error;
      if (code === Code.FailedPrecondition || errorReason(error) === "UPLOAD_OFFSET_MISMATCH") {
        // The server holds a different number of bytes than we think: resume from there.
        const progress = await documents.getUpload({ uploadId }, { signal });
        offset = Number(progress.upload?.receivedBytes ?? 0n);
        options.onRetry?.("Resuming where the server left off…");
        options.onProgress?.(offset, bytes.length);
        continue;
      }
      if (code === undefined || !TRANSIENT.has(code)) throw error;
      const wait = retryAfterSeconds(error);
      const delay = wait !== undefined ? wait * 1000 : 500 * 2 ** (failures - 1);
      options.onRetry?.(`Retrying a piece (attempt ${failures + 1} of ${ATTEMPTS})…`);
      await pause(Math.min(delay, 30_000), signal);
    }
  }
  return documents.commitUpload({ uploadId }, { signal });
}

/** Streams a document's processing until it is READY or FAILED (the server ends the stream). */
export async function watchDocument(
  documentId: string,
  onChange: (change: WatchDocumentResponse) => void,
  signal?: AbortSignal,
): Promise<void> {
  for await (const change of documents.watchDocument({ documentId }, { signal })) {
    onChange(change);
  }
}
