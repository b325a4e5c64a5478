// What `npm pack` puts in the package, from `npm pack --dry-run --json`: what
// users run (dist/ without tests, benchmarks, test support or source maps),
// the CLI, and what the addon needs (its sources for a build from source,
// native/prebuilds/ for none). .ci/pack-smoke.sh installs the real tarball.
//
// --ignore-scripts: a real pack's prepack empties dist/ and rebuilds it,
// under the feet of the other test files running now (they spawn dist/'s
// daemon), and compiles the addon. So `files` alone must keep the package
// clean, whatever a checkout's dist/ holds: checked here on this checkout's
// dist/ as `npm test` leaves it (with maps, test support and bench), and on
// a made-up package holding everything `files` must keep out.
import { execFile } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";

const root = import.meta.dirname;
const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as {
  main: string;
  types: string;
  bin: Record<string, string>;
  exports: Record<string, string | Record<string, string>>;
};

async function packList(dir: string): Promise<string[]> {
  const { stdout } = await promisify(execFile)("npm", ["pack", "--dry-run", "--json", "--ignore-scripts", "--loglevel=error"], {
    cwd: dir,
    maxBuffer: 16 * 1024 * 1024,
  });
  const [report] = JSON.parse(stdout) as [{ files: { path: string }[] }];
  return report.files.map((f) => f.path).sort();
}

/** What no package may hold; each found file with why. */
function unwanted(files: string[]): string[] {
  const held = new Set(files);
  const found: string[] = [];
  for (const f of files) {
    if (/\.test\./.test(f)) found.push(`${f}: a test`);
    if (/(^|\/)bench\//.test(f)) found.push(`${f}: a benchmark`);
    if (/(^|\/)test-support\//.test(f)) found.push(`${f}: test support`);
    if (f.startsWith("native/build")) found.push(`${f}: a checkout's build of the addon`);
    if (/\.(c|m)?ts$/.test(f) && !/\.d\.(c|m)?ts$/.test(f)) found.push(`${f}: a TypeScript source`);
    if (f.endsWith(".map")) {
      const map = JSON.parse(readFileSync(join(root, f), "utf8")) as { sources?: string[] };
      for (const source of map.sources ?? []) {
        const path = relative(".", join(dirname(f), source));
        if (!held.has(path)) found.push(`${f}: a map without its source ${path}`);
      }
    }
  }
  return found;
}

function entryPoints(): string[] {
  const targets = [pkg.main, pkg.types, ...Object.values(pkg.bin)];
  for (const e of Object.values(pkg.exports)) targets.push(...(typeof e === "string" ? [e] : Object.values(e)));
  return [...new Set(targets.map((t) => t.replace(/^\.\//, "")))].sort();
}

/** Every file under native/src (the addon's sources and headers): what a build from source needs. */
function addonSources(): string[] {
  const files: string[] = [];
  const walk = (dir: string) => {
    for (const e of readdirSync(join(root, dir), { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(dir, e.name));
      else files.push(join(dir, e.name));
    }
  };
  walk("native/src");
  return ["native/binding.gyp", ...files].sort();
}

const temporary: string[] = [];
afterAll(() => {
  for (const dir of temporary) rmSync(dir, { recursive: true, force: true });
});

describe("npm pack", () => {
  it.skipIf(!existsSync(join(root, "dist", "daemon", "cli", "main.js")))(
    "ships this checkout's entry points, CLI and addon sources, and no tests, bench, test support or stray sources",
    async () => {
      const files = await packList(root);
      expect(unwanted(files)).toEqual([]);
      expect(entryPoints().filter((f) => !files.includes(f))).toEqual([]);
      expect(addonSources().filter((f) => !files.includes(f))).toEqual([]);
      expect(files).toContain("README.md");
      expect(files).toContain("docs/API.md");
      // Nothing outside what `files` names (npm adds package.json, README, LICENSE).
      expect(files.filter((f) => !/^(dist\/|native\/(src\/|binding\.gyp|prebuilds\/)|docs\/|package\.json$|README\.md$|LICENSE)/.test(f))).toEqual([]);
    },
  );

  it("keeps out what a dirty checkout holds, and ships the prebuilds", async () => {
    const dir = mkdtempSync(join(tmpdir(), "xpcbus-pack-list-"));
    temporary.push(dir);
    cpSync(join(root, "package.json"), join(dir, "package.json"));
    const made = (path: string, text = "x") => {
      mkdirSync(dirname(join(dir, path)), { recursive: true });
      writeFileSync(join(dir, path), text);
    };
    const wanted = [
      ...entryPoints(),
      "dist/daemon/core/broker.js",
      "native/binding.gyp",
      "native/src/addon.cc",
      "native/src/linux/platform.cc",
      "native/prebuilds/linux-x64/xpcbus.glibc.node",
      "native/prebuilds/darwin-arm64/xpcbus.node",
      "native/prebuilds/darwin-x64/xpcbus.node",
      "docs/API.md",
    ];
    const kept = [
      "dist/daemon/core/broker.js.map",
      "dist/daemon/cli/main.js.map",
      "dist/bench/run.js",
      "dist/daemon/test-support/spawn-daemon.js",
      "dist/native/test-support/helpers.d.ts",
      "dist/daemon/broker.test.js",
      "native/build/Release/xpcbus_native.node",
      "native/build-sanitize/build/Release/xpcbus_native.node",
      "native/loader.ts",
      "native/notify-table.test.ts",
      "native/test-sanitize.sh",
      "launchd/installer.ts",
      "launchd/service-files.test.ts",
      "daemon/index.ts",
      "bench/floors.bench.ts",
      "tsconfig.json",
      ".ci/run",
    ];
    for (const f of [...wanted, ...kept]) if (f !== "package.json") made(f, f.endsWith(".map") ? JSON.stringify({ version: 3, sources: ["x.ts"] }) : "x");
    const files = await packList(dir);
    expect(files.filter((f) => kept.includes(f))).toEqual([]);
    expect(wanted.filter((f) => !files.includes(f))).toEqual([]);
  });
});
