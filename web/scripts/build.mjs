// npm run build: bundles the console into the three files the edge serves.
// --check rebuilds into a temporary directory instead and fails when the committed files
// (the bundle, or src/gen against proto/) differ from what the sources give.

import { build } from "esbuild";
import { mkdtemp, mkdir, readdir, readFile, rm, writeFile, copyFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative, resolve } from "node:path";

import { generate, WEB } from "./buf.mjs";

const CONSOLE = resolve(WEB, "..", "server", "chatbot_server", "edge", "console");
const FILES = ["index.html", "console.js", "console.css"];

async function bundle(outdir) {
  await mkdir(outdir, { recursive: true });
  await build({
    absWorkingDir: WEB,
    entryPoints: [
      { in: "src/main.ts", out: "console" },
      { in: "src/console.css", out: "console" },
    ],
    outdir,
    bundle: true,
    minify: true,
    format: "iife",
    platform: "browser",
    target: ["es2020", "chrome100", "firefox100", "safari15"],
    charset: "utf8",
    legalComments: "eof",
    sourcemap: false,
    logLevel: "warning",
  });
  await copyFile(join(WEB, "src", "index.html"), join(outdir, "index.html"));
}

async function listFiles(dir, base = dir) {
  const found = [];
  for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) found.push(...(await listFiles(path, base)));
    else found.push(relative(base, path));
  }
  return found.sort();
}

/** Paths that differ between two directories, or exist in only one. */
async function differences(expected, actual) {
  const names = new Set([...(await listFiles(expected)), ...(await listFiles(actual))]);
  const differing = [];
  for (const name of [...names].sort()) {
    const [a, b] = await Promise.all(
      [expected, actual].map((dir) => readFile(join(dir, name)).catch(() => null)),
    );
    if (!a || !b || !a.equals(b)) differing.push(name);
  }
  return differing;
}

async function check() {
  const temp = await mkdtemp(join(tmpdir(), "console-check-"));
  try {
    generate(temp);
    const staleGen = await differences(join(temp, "src", "gen"), join(WEB, "src", "gen"));
    await bundle(join(temp, "console"));
    const staleBundle = await differences(join(temp, "console"), CONSOLE);
    if (staleGen.length === 0 && staleBundle.length === 0) return true;
    for (const name of staleGen) console.error(`web/src/gen/${name} differs from proto/`);
    for (const name of staleBundle)
      console.error(`${relative(resolve(WEB, ".."), join(CONSOLE, name))} is stale`);
    console.error("The console is out of date: run make console");
    return false;
  } finally {
    await rm(temp, { recursive: true, force: true });
  }
}

if (process.argv.includes("--check")) {
  if (!(await check())) process.exit(1);
} else {
  await bundle(CONSOLE);
  for (const name of FILES) {
    const size = (await readFile(join(CONSOLE, name))).length;
    console.log(`${relative(resolve(WEB, ".."), join(CONSOLE, name))}  ${size.toLocaleString("en")} bytes`);
  }
}
