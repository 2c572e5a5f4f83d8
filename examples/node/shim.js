#!/usr/bin/env node
// An mjpki-adapter/1 shim in Node.js, standard library only: it shows that the wire protocol needs nothing from Python.
//
//   mjpki serve-system --port 8765 &                      # any system behind the protocol's HTTP transport
//   mjpki run --shim "node examples/node/shim.js http://127.0.0.1:8765/"
//
// The suite writes one JSON request per line on stdin; this program answers each with one JSON line on stdout, in
// order. It forwards every request to the URL (adding a session id of its own, new for each system), so the system it
// presents is whatever that URL serves. A Go or Java adapter would do the same loop and call its own system instead.
//
// MJPKI_EXAMPLE_LIE=ACTION makes it report every ACCEPTED outcome of that action as refused (APP_NOT_INSTALLED): a
// deliberately faulty system, to see the suite catch it.
"use strict";

const http = require("node:http");
const https = require("node:https");
const crypto = require("node:crypto");
const readline = require("node:readline");

const url = new URL(process.argv[2] || process.env.MJPKI_SYSTEM_URL || "http://127.0.0.1:8765/");
const lie = process.env.MJPKI_EXAMPLE_LIE || "";
let session = crypto.randomBytes(12).toString("hex");

function post(message) {
  // One request, one POST; the reply body is the protocol's reply object.
  const body = Buffer.from(JSON.stringify(message), "utf8");
  const client = url.protocol === "https:" ? https : http;
  return new Promise((resolve, reject) => {
    const req = client.request(
      url,
      { method: "POST", headers: { "Content-Type": "application/json", "Content-Length": body.length } },
      (res) => {
        const chunks = [];
        res.on("data", (c) => chunks.push(c));
        res.on("end", () => {
          if (res.statusCode !== 200) return reject(new Error(`${url} answered HTTP ${res.statusCode}`));
          try {
            resolve(JSON.parse(Buffer.concat(chunks).toString("utf8")));
          } catch (e) {
            reject(new Error(`${url} answered with something that is not JSON`));
          }
        });
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

async function answer(request) {
  if (request.op === "new") session = crypto.randomBytes(12).toString("hex"); // one session per system
  const reply = await post(request.op === "hello" ? request : { ...request, session });
  if (lie && request.op === "step" && reply.ok && request.action.action === lie && reply.outcome.code === "ACCEPTED") {
    reply.outcome = { code: "APP_NOT_INSTALLED", details: {} };
  }
  return reply;
}

async function main() {
  const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
  for await (const line of lines) {
    if (!line.trim()) continue;
    let request;
    try {
      request = JSON.parse(line);
    } catch (e) {
      process.stdout.write(JSON.stringify({ id: null, ok: false, error: `bad request: not JSON (${e.message})` }) + "\n");
      continue;
    }
    let reply;
    try {
      reply = await answer(request);
    } catch (e) {
      reply = { id: request.id, ok: false, error: `cannot reach the system: ${e.message}` };
    }
    reply.id = request.id; // the reply names the request it answers
    process.stdout.write(JSON.stringify(reply) + "\n"); // one line per reply: JSON.stringify never emits a raw newline
  }
}

main().catch((e) => {
  process.stderr.write(`shim.js: ${e.stack || e}\n`);
  process.exit(1);
});
