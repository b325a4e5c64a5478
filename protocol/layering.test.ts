// The import rule of docs/ARCHITECTURE.md, checked on the sources: a file
// reaches another top-level folder only through that folder's index.ts, the
// protocol layer imports nothing of ours, and nothing that is built imports
// test tooling. Fails the suite (and so the build) on the first file that
// breaks it, naming the file and the import.
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, normalize, relative, sep } from "node:path";
import { describe, expect, it } from "vitest";

const ROOT = join(import.meta.dirname, "..");
const FOLDERS = ["protocol", "client-sdk", "daemon", "native", "launchd", "bench"];
const SKIP = new Set(["node_modules", "build", "build-sanitize", "results", "dist"]);
// `from "./x.js"`, `import "./x.js"`, `import("./x.js")`, `export … from "./x.js"`.
const SPECIFIER = /(?:\bfrom|\bimport)\s*\(?\s*["'](\.{1,2}\/[^"']+)["']/g;

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return SKIP.has(entry.name) ? [] : sources(path);
    return entry.name.endsWith(".ts") && !entry.name.endsWith(".d.ts") ? [path] : [];
  });
}

/** Tests, test tooling and the benchmarks: never part of the published build. */
function isTooling(file: string): boolean {
  return file.endsWith(".test.ts") || file.includes(`${sep}test-support${sep}`) || file.startsWith(`bench${sep}`);
}

function violations(): string[] {
  const found: string[] = [];
  for (const folder of FOLDERS) {
    for (const path of sources(join(ROOT, folder))) {
      const file = relative(ROOT, path);
      const text = readFileSync(path, "utf8");
      for (const match of text.matchAll(SPECIFIER)) {
        const spec = match[1]!;
        const target = relative(ROOT, normalize(join(dirname(path), spec)));
        const [targetFolder] = target.split(sep);
        if (targetFolder === folder) continue;
        if (target.includes(`${sep}test-support${sep}`)) {
          if (!isTooling(file)) found.push(`${file}: built code imports test tooling "${spec}"`);
          continue;
        }
        if (folder === "protocol" && !isTooling(file)) {
          found.push(`${file}: the protocol layer imports "${spec}"; it must import nothing of ours`);
          continue;
        }
        if (target !== join(targetFolder!, "index.js")) found.push(`${file}: imports "${spec}" instead of ${targetFolder}/index.js`);
      }
    }
  }
  return found;
}

describe("layering", () => {
  it("crosses top-level folders only through index.ts; protocol imports nothing of ours", () => {
    expect(violations()).toEqual([]);
  });

  it("catches a deep import (the rule itself is tested)", () => {
    // Built from parts, so this file does not itself hold the deep import it shows.
    const deep = ["..", "client-sdk", "client.js"].join("/");
    const sample = `import { x } from "${deep}";\nimport { y } from "../protocol/index.js";`;
    const specs = [...sample.matchAll(SPECIFIER)].map((m) => m[1]);
    expect(specs).toEqual(["../client-sdk/client.js", "../protocol/index.js"]);
  });
});
