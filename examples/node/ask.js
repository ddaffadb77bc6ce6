// Streams an answer from the chatbot service, as any Node program can, from proto/ alone.
//
//   node ask.js [--target 127.0.0.1:50051] [--api-key KEY] [--ca-file PEM [--cert-file PEM --key-file PEM]] [--top-k N] "your question"
"use strict";

const grpc = require("@grpc/grpc-js");
const { channelCredentials, loadChatbot, parseArguments } = require("./chatbot");

function main() {
  const options = parseArguments(process.argv.slice(2), "ask.js");
  const { ChatService, metadata } = loadChatbot(options);
  const client = new ChatService(options.target, channelCredentials(options));
  const deadline = new Date(Date.now() + 120_000);

  const call = client.StreamAnswer(
    { question: options.text, top_k: options.topK },
    metadata,
    { deadline },
  );
  call.on("data", (message) => {
    switch (message.event) {
      case "delta":
        process.stdout.write(message.delta.text);
        break;
      case "citations":
        process.stdout.write("\n");
        for (const citation of message.citations.citations) {
          console.log(`[${citation.number}] ${citation.document_title}, p. ${citation.page_number}`);
        }
        break;
      case "usage":
        console.error(`(${message.usage.usage.total_tokens} tokens, ${message.usage.total_ms} ms)`);
        break;
      case "done":
        console.error(`finish_reason=${message.done.finish_reason} grounding=${message.done.grounding}`);
        break;
      default:
        break;
    }
  });
  call.on("error", (error) => {
    console.error(`${grpc.status[error.code]}: ${error.details}`);
    process.exitCode = 1;
  });
  call.on("end", () => client.close());
}

main();
