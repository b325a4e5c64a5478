// docs/API.md is written by hand from client-sdk/index.ts; this keeps the two
// in step: every name the SDK's entry point exports (values and types, those
// of `export *` included, as TypeScript resolves them) must appear in API.md
// as a heading or in backticks.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import ts from "typescript";
import { describe, expect, it } from "vitest";

const root = join(import.meta.dirname, "..");

function exportedNames(): string[] {
  const entry = join(root, "client-sdk", "index.ts");
  const program = ts.createProgram([entry], {
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2022,
    types: ["node"],
    noEmit: true,
    skipLibCheck: true,
  });
  const checker = program.getTypeChecker();
  const source = program.getSourceFile(entry);
  const module = source === undefined ? undefined : checker.getSymbolAtLocation(source);
  if (module === undefined) throw new Error(`TypeScript found no module in ${entry}`);
  return checker.getExportsOfModule(module).map((s) => s.getName()).sort();
}

/** Names API.md documents: `code spans` (each identifier in them) and heading words. */
function documentedNames(): Set<string> {
  const text = readFileSync(join(root, "docs", "API.md"), "utf8");
  const names = new Set<string>();
  for (const [, span] of text.matchAll(/`([^`]+)`/g)) for (const id of span!.match(/[A-Za-z_$][\w$]*/g) ?? []) names.add(id);
  for (const [, heading] of text.matchAll(/^#+\s+(.*)$/gm)) for (const id of heading!.match(/[A-Za-z_$][\w$]*/g) ?? []) names.add(id);
  return names;
}

describe("docs/API.md", () => {
  it("names everything client-sdk/index.ts exports", () => {
    const exported = exportedNames();
    expect(exported).toContain("connect");
    expect(exported).toContain("XpcbusError"); // through `export * from "./errors.js"`
    const documented = documentedNames();
    expect(exported.filter((name) => !documented.has(name))).toEqual([]);
  });
});
