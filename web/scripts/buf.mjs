// Runs `buf generate` with web/buf.gen.yaml: BUF names the binary, else the project's
// virtual environment has it (make install), else PATH.

import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const WEB = resolve(dirname(fileURLToPath(import.meta.url)), "..");

function bufBinary() {
  if (process.env.BUF) return process.env.BUF;
  const venv = resolve(WEB, "..", ".venv", "bin", "buf");
  return existsSync(venv) ? venv : "buf";
}

/** Generates into `outputBase`/src/gen (the web directory itself by default). */
export function generate(outputBase = WEB) {
  const args = ["generate", "--template", "buf.gen.yaml"];
  if (outputBase !== WEB) args.push("--output", outputBase);
  const result = spawnSync(bufBinary(), args, { cwd: WEB, stdio: "inherit" });
  if (result.error) throw result.error;
  if (result.status !== 0) throw new Error(`buf generate exited with ${result.status}`);
}
