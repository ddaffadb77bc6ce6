// Loads chatbot.v1 from the proto files, with the options that keep the contract intact.
//
// The proto-loader options matter: without keepCase, fields are renamed to camelCase and
// snake_case ones you set (top_k) are silently dropped; without longs: String, int64 values
// (took_ms, total_tokens) arrive as Long objects.
"use strict";

const fs = require("node:fs");
const path = require("node:path");
const grpc = require("@grpc/grpc-js");
const protoLoader = require("@grpc/proto-loader");

const ROOT = path.resolve(__dirname, "..", "..");
const LOADER_OPTIONS = {
  keepCase: true, // field names exactly as in the .proto files
  longs: String, // int64 as decimal strings, never Long objects
  enums: String, // enum values by name, e.g. "FINISH_REASON_STOP"
  defaults: true, // unset fields present with their default values
  oneofs: true, // the oneof's name tells which event arrived: message.event === "delta"
  includeDirs: [path.join(ROOT, "proto"), path.join(ROOT, "third_party")],
};
const PROTOS = ["chatbot/v1/chat_service.proto", "chatbot/v1/document_service.proto"];

// The services, and call metadata carrying the API key when one is given.
function loadChatbot(options) {
  const definition = protoLoader.loadSync(PROTOS, LOADER_OPTIONS);
  const v1 = grpc.loadPackageDefinition(definition).chatbot.v1;
  const metadata = new grpc.Metadata();
  if (options.apiKey) metadata.set("authorization", `Bearer ${options.apiKey}`);
  return { ChatService: v1.ChatService, DocumentService: v1.DocumentService, metadata };
}

// Plain text, or TLS when a CA file is given (with a client certificate for mutual TLS).
function channelCredentials(options) {
  if (!options.caFile) return grpc.credentials.createInsecure();
  const read = (file) => (file ? fs.readFileSync(file) : null);
  return grpc.credentials.createSsl(read(options.caFile), read(options.keyFile), read(options.certFile));
}

// --target, --api-key (default $CHATBOT_API_KEY), --ca-file, --cert-file, --key-file
// (defaults $CHATBOT_CA_FILE, $CHATBOT_CERT_FILE, $CHATBOT_KEY_FILE), --top-k, then the text.
function parseArguments(argv, script) {
  const env = process.env;
  const options = {
    target: "127.0.0.1:50051",
    apiKey: env.CHATBOT_API_KEY || "",
    caFile: env.CHATBOT_CA_FILE || "",
    certFile: env.CHATBOT_CERT_FILE || "",
    keyFile: env.CHATBOT_KEY_FILE || "",
    topK: 0,
  };
  const flags = { "--target": "target", "--api-key": "apiKey", "--ca-file": "caFile",
                  "--cert-file": "certFile", "--key-file": "keyFile" };
  const rest = [];
  for (let i = 0; i < argv.length; i += 1) {
    if (argv[i] in flags) options[flags[argv[i]]] = argv[++i];
    else if (argv[i] === "--top-k") options.topK = Number(argv[++i]);
    else rest.push(argv[i]);
  }
  options.text = rest.join(" ");
  if (!options.text) {
    console.error(`usage: node ${script} [--target HOST:PORT] [--api-key KEY] [--ca-file PEM ` +
                  "[--cert-file PEM --key-file PEM]] [--top-k N] TEXT");
    process.exit(2);
  }
  return options;
}

module.exports = { channelCredentials, loadChatbot, parseArguments };
