// Retrieves the chunks most relevant to a query, without a language model.
//
//   node search.js [--target 127.0.0.1:50051] [--api-key KEY] [--ca-file PEM [--cert-file PEM --key-file PEM]] [--top-k N] "your query"
"use strict";

const grpc = require("@grpc/grpc-js");
const { channelCredentials, loadChatbot, parseArguments } = require("./chatbot");

function main() {
  const options = parseArguments(process.argv.slice(2), "search.js");
  const { DocumentService, metadata } = loadChatbot(options);
  const client = new DocumentService(options.target, channelCredentials(options));
  const deadline = new Date(Date.now() + 30_000);
  client.Search({ query: options.text, top_k: options.topK }, metadata, { deadline }, (error, response) => {
    client.close();
    if (error) {
      console.error(`${grpc.status[error.code]}: ${error.details}`);
      process.exitCode = 1;
      return;
    }
    for (const hit of response.results) {
      console.log(`${hit.relevance_score.toFixed(2)}  ${hit.document_title}, p. ${hit.page_number}`);
    }
    // int64 fields arrive as strings with longs: String.
    console.error(`${response.results.length} results in ${response.took_ms} ms (${typeof response.took_ms})`);
  });
}

main();
