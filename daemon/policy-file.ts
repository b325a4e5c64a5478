// Reading a policy file (docs/SECURITY.md): JSON, checked whole before use,
// so a reload either replaces the policy entirely or changes nothing. Every
// problem names its place in the file.

import { readFileSync } from "node:fs";
import { InvalidArgumentError, subjectProblem } from "../protocol/index.js";
import { RIGHTS, type Policy, type PolicyMatch, type PolicyRule } from "./core/policy.js";

const RULE_KEYS = ["name", "match", "connect", ...RIGHTS, "monitor"];
const MATCH_KEYS = ["uid", "gid", "exe", "codeSigning", "teamId", "bridge"];

function fail(path: string, where: string, why: string): never {
  throw new InvalidArgumentError(`policy ${path}: ${where}: ${why}`);
}

function ids(path: string, where: string, value: unknown): number[] {
  if (!Array.isArray(value) || value.length === 0 || !value.every((v) => Number.isSafeInteger(v) && (v as number) >= 0)) {
    fail(path, where, "must be a non-empty array of ids (non-negative integers)");
  }
  return value as number[];
}

function strings(path: string, where: string, value: unknown): string[] {
  if (!Array.isArray(value) || !value.every((v) => typeof v === "string" && v.length > 0)) fail(path, where, "must be an array of non-empty strings");
  return value as string[];
}

export function parsePolicy(text: string, path: string): Policy {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    fail(path, "file", `not JSON: ${(error as Error).message}`);
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) fail(path, "file", "must be a JSON object");
  const top = parsed as Record<string, unknown>;
  for (const key of Object.keys(top)) if (!["version", "rules", "otherwise"].includes(key)) fail(path, key, 'unknown key; known: version, rules, otherwise');
  if (top["version"] !== 1) fail(path, "version", "must be 1");
  const otherwise = top["otherwise"] ?? "deny";
  if (otherwise !== "allow" && otherwise !== "deny") fail(path, "otherwise", 'must be "allow" or "deny"');
  if (!Array.isArray(top["rules"])) fail(path, "rules", "must be an array");
  const names = new Set<string>();
  const rules = (top["rules"] as unknown[]).map((raw, i): PolicyRule => {
    const where = `rules[${i}]`;
    if (raw === null || typeof raw !== "object" || Array.isArray(raw)) fail(path, where, "must be an object");
    const rule = raw as Record<string, unknown>;
    for (const key of Object.keys(rule)) if (!RULE_KEYS.includes(key)) fail(path, `${where}.${key}`, `unknown key; known: ${RULE_KEYS.join(", ")}`);
    const name = rule["name"];
    if (typeof name !== "string" || name === "") fail(path, `${where}.name`, "must be a non-empty string");
    if (names.has(name)) fail(path, `${where}.name`, `"${name}" is used twice`);
    names.add(name);
    const connect = rule["connect"];
    if (connect !== "allow" && connect !== "deny") fail(path, `${where}.connect`, 'must be "allow" or "deny"');
    const rawMatch = rule["match"] ?? {};
    if (rawMatch === null || typeof rawMatch !== "object" || Array.isArray(rawMatch)) fail(path, `${where}.match`, "must be an object");
    const match: PolicyMatch = {};
    for (const [key, value] of Object.entries(rawMatch as Record<string, unknown>)) {
      const at = `${where}.match.${key}`;
      if (key === "uid" || key === "gid") match[key] = ids(path, at, value);
      else if (key === "exe") match.exe = strings(path, at, value);
      else if (key === "codeSigning" || key === "teamId") {
        if (typeof value !== "string" || value === "") fail(path, at, "must be a non-empty string");
        match[key] = value;
      } else if (key === "bridge") {
        if (typeof value !== "boolean") fail(path, at, "must be true or false");
        match.bridge = value;
      } else fail(path, at, `unknown key; known: ${MATCH_KEYS.join(", ")}`);
    }
    const out: PolicyRule = { name, match, connect };
    for (const right of RIGHTS) {
      if (rule[right] === undefined) continue;
      const patterns = strings(path, `${where}.${right}`, rule[right]);
      patterns.forEach((pattern, k) => {
        const problem = subjectProblem(pattern, true);
        if (problem !== undefined) fail(path, `${where}.${right}[${k}]`, problem);
      });
      out[right] = patterns;
    }
    const monitor = rule["monitor"];
    if (monitor !== undefined) {
      if (typeof monitor !== "boolean") fail(path, `${where}.monitor`, "must be true or false");
      out.monitor = monitor;
    }
    return out;
  });
  return { rules, otherwise, source: path };
}

export function readPolicyFile(path: string): Policy {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    fail(path, "file", (error as Error).message);
  }
  return parsePolicy(text, path);
}
