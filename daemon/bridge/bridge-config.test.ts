// The bridge file: defaults, every kind of problem with its place, all of a
// file's problems at once, paths relative to the file, and the subject
// mappings the runtime uses, in process; then `xpcbus bridge check` once for
// real (the built CLI) on a good and a bad file.
import { chmodSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { InvalidArgumentError } from "../../protocol/index.js";
import { cleanup, runCli, tempDir } from "../test-support/harness.js";
import {
  BridgeFileError,
  DEFAULT_BUFFER_BYTES,
  exportedSubject,
  hostnameToken,
  mapImportedSubject,
  parseBridgeConfig,
  readBridgeFile,
  type BridgeProblem,
} from "./bridge-config.js";

afterEach(cleanup);

const HOST = { hostname: "my.host.local" };
const SERVERS = { servers: ["nats://127.0.0.1:4222"] };
const minimal = (extra: Record<string, unknown> = {}) => ({ version: 1, nats: SERVERS, export: [{ subject: "app.>" }], ...extra });

/** Parses `file` (an object is written as JSON) as if it were at `source`. */
function parse(file: unknown, source = "/nonexistent/bridge.json") {
  return parseBridgeConfig(typeof file === "string" ? file : JSON.stringify(file), source, HOST);
}

function problemsOf(file: unknown, source?: string): readonly BridgeProblem[] {
  try {
    parse(file, source);
  } catch (error) {
    expect(error).toBeInstanceOf(BridgeFileError);
    return (error as BridgeFileError).problems;
  }
  throw new Error("expected problems, the file was accepted");
}

describe("bridge file: accepted", () => {
  it("fills in every default", () => {
    const config = parse({ version: 1, nats: SERVERS, export: [{ subject: "app.>" }], import: [{ subject: "fleet.*.app.>" }] }, "/etc/xpcbus/bridge.json");
    expect(config).toEqual({
      source: "/etc/xpcbus/bridge.json",
      nats: { servers: ["nats://127.0.0.1:4222"], name: "xpcbus-my.host.local" },
      export: [{ subject: "app.>", prefix: "fleet.my-host-local." }],
      import: [{ subject: "fleet.*.app.>", stripTokens: 0, localPrefix: "" }],
      bufferBytes: DEFAULT_BUFFER_BYTES,
      reconnect: { initialDelayMs: 250, maxDelayMs: 10_000 },
    });
    expect(DEFAULT_BUFFER_BYTES).toBe(8 * 1024 * 1024);
  });

  it("keeps what is given", () => {
    const config = parse({
      version: 1,
      nats: { servers: ["tls://a.example:4443", "nats://b.example"], name: "edge-7", user: "me", pass: "secret" },
      export: [
        { subject: "app.>", prefix: "" },
        { subject: "metrics.*", prefix: "site-3.metrics." },
      ],
      import: [{ subject: "fleet.*.app.>", stripTokens: 2, localPrefix: "remote." }],
      bufferBytes: 1024,
      reconnect: { initialDelayMs: 100, maxDelayMs: 100 },
    });
    expect(config.nats).toEqual({ servers: ["tls://a.example:4443", "nats://b.example:4222"], name: "edge-7", user: "me", pass: "secret" });
    expect(config.export).toEqual([
      { subject: "app.>", prefix: "" },
      { subject: "metrics.*", prefix: "site-3.metrics." },
    ]);
    expect(config.import).toEqual([{ subject: "fleet.*.app.>", stripTokens: 2, localPrefix: "remote." }]);
    expect(config.bufferBytes).toBe(1024);
    expect(config.reconnect).toEqual({ initialDelayMs: 100, maxDelayMs: 100 });
  });

  it("takes host:port as nats://host:port, and fills in the default port", () => {
    const config = parse(minimal({ nats: { servers: ["10.0.0.1:4333", "localhost", "tls://[::1]", "nats://[::1]:5000"] } }));
    expect(config.nats.servers).toEqual(["nats://10.0.0.1:4333", "nats://localhost:4222", "tls://[::1]:4222", "nats://[::1]:5000"]);
  });

  it("accepts a file with imports only, or exports only", () => {
    expect(parse({ version: 1, nats: SERVERS, import: [{ subject: "a.>" }] }).export).toEqual([]);
    expect(parse({ version: 1, nats: SERVERS, export: [{ subject: "a.>" }] }).import).toEqual([]);
  });

  it("makes the hostname one token for the default prefix", () => {
    expect(hostnameToken("my.host.local")).toBe("my-host-local");
    expect(hostnameToken("Büro PC/2")).toBe("B_ro_PC_2");
    expect(hostnameToken("a_b:c-d")).toBe("a_b:c-d");
    expect(hostnameToken("")).toBe("unknown-host");
    expect(parseBridgeConfig(JSON.stringify(minimal()), "/x/b.json", { hostname: "Büro.PC" }).export[0]?.prefix).toBe("fleet.B_ro-PC.");
  });

  it("resolves paths against the bridge file's directory, not the working directory", () => {
    const dir = tempDir();
    mkdirSync(join(dir, "conf", "tls"), { recursive: true });
    for (const name of ["user.creds", "tls/ca.pem", "tls/cert.pem", "tls/key.pem"]) writeFileSync(join(dir, "conf", name), "x");
    writeFileSync(join(dir, "seed.nk"), "SU...");
    const file = join(dir, "conf", "bridge.json");
    writeFileSync(file, JSON.stringify(minimal({ nats: { ...SERVERS, credentials: "user.creds", tls: { ca: "tls/ca.pem", cert: "./tls/cert.pem", key: join(dir, "conf", "tls", "key.pem") } } })));
    const config = readBridgeFile(file, HOST);
    expect(config.nats.credentialsFile).toBe(join(dir, "conf", "user.creds"));
    expect(config.nats.tls).toEqual({ caFile: join(dir, "conf", "tls", "ca.pem"), certFile: join(dir, "conf", "tls", "cert.pem"), keyFile: join(dir, "conf", "tls", "key.pem") });
    writeFileSync(file, JSON.stringify(minimal({ nats: { ...SERVERS, nkeySeed: "../seed.nk" } })));
    expect(readBridgeFile(file, HOST).nats.nkeySeedFile).toBe(join(dir, "seed.nk"));
  });
});

describe("bridge file: problems, each with its place", () => {
  // [what, file, place, why]
  const cases: [string, unknown, string, RegExp][] = [
    ["not JSON", '{\n  "version": 1,\n  "nats": ,\n}', "file", /^not JSON: line 3, column 11: /],
    ["not JSON, cut short", '{"version": 1', "file", /^not JSON: line 1, column 14: /],
    ["not an object", "[1]", "file", /must be a JSON object/],
    ["an unknown top-level key", minimal({ buffer: 1 }), "buffer", /unknown key; known: version, nats, export, import, bufferBytes, reconnect/],
    ["no version", { nats: SERVERS, export: [{ subject: "a" }] }, "version", /must be 1 \(missing\)/],
    ["another version", minimal({ version: "1" }), "version", /must be 1 \(got "1"\)/],
    ["no nats", { version: 1, export: [{ subject: "a" }] }, "nats", /missing/],
    ["nats not an object", minimal({ nats: "nats://x" }), "nats", /must be an object/],
    ["an unknown nats key", minimal({ nats: { ...SERVERS, server: "x" } }), "nats.server", /unknown key; known: servers, name/],
    ["no servers", minimal({ nats: {} }), "nats.servers", /non-empty array/],
    ["empty servers", minimal({ nats: { servers: [] } }), "nats.servers", /non-empty array/],
    ["a server of another scheme", minimal({ nats: { servers: ["nats://a", "ws://b:80"] } }), "nats.servers[1]", /scheme must be nats:\/\/ or tls:\/\/ \(got ws:\/\/\)/],
    ["a server that is no URL", minimal({ nats: { servers: ["a b:1"] } }), "nats.servers[0]", /is not a URL/],
    ["a server with a bad port", minimal({ nats: { servers: ["nats://a:99999"] } }), "nats.servers[0]", /is not a URL/],
    ["a server with a user in the URL", minimal({ nats: { servers: ["nats://me:pw@a"] } }), "nats.servers[0]", /not in the URL/],
    ["a server with a path", minimal({ nats: { servers: ["nats://a/x"] } }), "nats.servers[0]", /no path/],
    ["a server that is not a string", minimal({ nats: { servers: [4222] } }), "nats.servers[0]", /must be a string/],
    ["an empty name", minimal({ nats: { ...SERVERS, name: "" } }), "nats.name", /non-empty string/],
    ["two ways to authenticate", minimal({ nats: { ...SERVERS, token: "t", user: "u", pass: "p" } }), "nats", /at most one way to authenticate: token, user/],
    ["pass without user", minimal({ nats: { ...SERVERS, pass: "p" } }), "nats.pass", /needs nats.user/],
    ["an empty token", minimal({ nats: { ...SERVERS, token: "" } }), "nats.token", /non-empty string/],
    ["a missing credentials file", minimal({ nats: { ...SERVERS, credentials: "user.creds" } }), "nats.credentials", /\/nonexistent\/user\.creds does not exist/],
    ["a missing nkey seed file", minimal({ nats: { ...SERVERS, nkeySeed: "/nonexistent/seed.nk" } }), "nats.nkeySeed", /\/nonexistent\/seed\.nk does not exist/],
    ["a missing TLS CA", minimal({ nats: { ...SERVERS, tls: { ca: "ca.pem" } } }), "nats.tls.ca", /\/nonexistent\/ca\.pem does not exist/],
    ["a directory as a TLS file", minimal({ nats: { ...SERVERS, tls: { ca: "/" } } }), "nats.tls.ca", /\/ is not a file/],
    ["an empty tls", minimal({ nats: { ...SERVERS, tls: {} } }), "nats.tls", /is empty/],
    ["cert without key", minimal({ nats: { ...SERVERS, tls: { cert: process.execPath } } }), "nats.tls", /cert and key go together/],
    ["an unknown tls key", minimal({ nats: { ...SERVERS, tls: { ca: process.execPath, crt: "x" } } }), "nats.tls.crt", /unknown key; known: ca, cert, key/],
    ["export not an array", minimal({ export: { subject: "a" } }), "export", /must be an array/],
    ["an export that is not an object", minimal({ export: ["a.>"] }), "export[0]", /must be an object/],
    ["nothing to bridge", { version: 1, nats: SERVERS, export: [], import: [] }, "export", /nothing to bridge/],
    ["nothing to bridge (neither given)", { version: 1, nats: SERVERS }, "export", /nothing to bridge/],
    ["an unknown export key", minimal({ export: [{ subject: "a", prefx: "b." }] }), "export[0].prefx", /unknown key; known: subject, prefix/],
    ["an export without subject", minimal({ export: [{ prefix: "" }] }), "export[0].subject", /must be a string/],
    ["an export of a bad pattern", minimal({ export: [{ subject: "a.>.b" }] }), "export[0].subject", /">" may only be the last token/],
    ["an export of a bad character", minimal({ export: [{ subject: "a/b" }] }), "export[0].subject", /outside A-Z a-z 0-9 _ - :/],
    ["an export under _INBOX.", minimal({ export: [{ subject: "_INBOX.>" }] }), "export[0].subject", /reserved for request inboxes/],
    ["a prefix without the dot", minimal({ export: [{ subject: "a", prefix: "fleet" }] }), "export[0].prefix", /end with "\."/],
    ["a prefix with a wildcard", minimal({ export: [{ subject: "a", prefix: "fleet.*." }] }), "export[0].prefix", /only subscriptions may use/],
    ["a prefix with an empty token", minimal({ export: [{ subject: "a", prefix: "fleet..x." }] }), "export[0].prefix", /empty token/],
    ["a prefix that is not a string", minimal({ export: [{ subject: "a", prefix: null }] }), "export[0].prefix", /must be a string/],
    ["a prefix making 17 tokens", minimal({ export: [{ subject: "a.b.c.d.e.f.g.h.i.j.k.l.m.n.>", prefix: "p.q." }] }), "export[0].prefix", /"p\.q\." \+ ".*" makes .* at most 16 tokens/],
    ["a prefix making 257 bytes", minimal({ export: [{ subject: `${"a".repeat(252)}.>`, prefix: "pfx." }] }), "export[0].prefix", /at most 256 bytes/],
    ["a long hostname in the default prefix", minimal({ export: [{ subject: `${"a".repeat(240)}.>` }] }), "export[0].prefix", /the default prefix "fleet\.my-host-local\." \(from the hostname\)/],
    ["import not an array", minimal({ import: "a.>" }), "import", /must be an array/],
    ["an unknown import key", minimal({ import: [{ subject: "a.>", strip: 1 }] }), "import[0].strip", /unknown key; known: subject, stripTokens, localPrefix/],
    ["an import of a bad pattern", minimal({ import: [{ subject: "a.b*" }] }), "import[0].subject", /outside A-Z a-z 0-9 _ - :/],
    ["an import without subject", minimal({ import: [{}] }), "import[0].subject", /must be a string/],
    ["stripTokens negative", minimal({ import: [{ subject: "a.b.>", stripTokens: -1 }] }), "import[0].stripTokens", /non-negative integer \(got -1\)/],
    ["stripTokens fractional", minimal({ import: [{ subject: "a.b.>", stripTokens: 1.5 }] }), "import[0].stripTokens", /non-negative integer/],
    ["stripTokens reaching the >", minimal({ import: [{ subject: "fleet.*.>", stripTokens: 2 }] }), "import[0].stripTokens", /at most 1 for "fleet\.\*\.>".*\(got 2\)/],
    ["stripTokens taking the whole pattern", minimal({ import: [{ subject: "a.b", stripTokens: 2 }] }), "import[0].stripTokens", /at most 1 for "a\.b"/],
    ["stripTokens on a pattern starting with >", minimal({ import: [{ subject: ">", stripTokens: 1 }] }), "import[0].stripTokens", /starts with ">"/],
    ["a localPrefix without the dot", minimal({ import: [{ subject: "a.>", localPrefix: "remote" }] }), "import[0].localPrefix", /end with "\."/],
    ["a localPrefix making 17 tokens", minimal({ import: [{ subject: "a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.>", localPrefix: "r." }] }), "import[0].localPrefix", /the local side makes .* at most 16 tokens/],
    ["a localPrefix under _INBOX.", minimal({ import: [{ subject: "a.>", localPrefix: "_INBOX." }] }), "import[0].localPrefix", /the local side "_INBOX\.a\.>" is under "_INBOX\."/],
    ["stripping down to _INBOX.", minimal({ import: [{ subject: "x._INBOX.>", stripTokens: 1 }] }), "import[0].stripTokens", /the local side "_INBOX\.>"/],
    ["an import of _INBOX.", minimal({ import: [{ subject: "_INBOX.>" }] }), "import[0].subject", /the local side "_INBOX\.>"/],
    ["bufferBytes zero", minimal({ bufferBytes: 0 }), "bufferBytes", /integer from 1 to .* \(got 0\)/],
    ["bufferBytes a string", minimal({ bufferBytes: "8MiB" }), "bufferBytes", /integer from 1 to/],
    ["reconnect not an object", minimal({ reconnect: 250 }), "reconnect", /must be an object/],
    ["an unknown reconnect key", minimal({ reconnect: { delayMs: 1 } }), "reconnect.delayMs", /unknown key; known: initialDelayMs, maxDelayMs/],
    ["a reconnect delay of 0", minimal({ reconnect: { maxDelayMs: 0 } }), "reconnect.maxDelayMs", /integer from 1 to 2147483647/],
    ["a reconnect delay past setTimeout", minimal({ reconnect: { maxDelayMs: 2 ** 31 } }), "reconnect.maxDelayMs", /integer from 1 to 2147483647/],
    ["initial above max", minimal({ reconnect: { initialDelayMs: 500, maxDelayMs: 400 } }), "reconnect.initialDelayMs", /initialDelayMs \(500\) must not exceed maxDelayMs \(400\)/],
    ["max below the default initial", minimal({ reconnect: { maxDelayMs: 100 } }), "reconnect.maxDelayMs", /initialDelayMs \(250, the default\) must not exceed maxDelayMs \(100\)/],
  ];
  it.each(cases)("%s", (_what, file, place, why) => {
    const problems = problemsOf(file);
    expect(problems).toHaveLength(1);
    expect(problems[0]?.place).toBe(place);
    expect(problems[0]?.why).toMatch(why);
  });

  it("reports every problem at once, in the file's order, one line each, as an InvalidArgumentError", () => {
    const file = {
      version: 2,
      nats: { servers: ["nats://a", "http://b"], token: "t", nkeySeed: "seed.nk", extra: true },
      export: [{ subject: "ok.>" }, { subject: "_INBOX.x" }, { subject: "a", prefix: "p" }],
      import: [{ subject: "fleet.*.>", stripTokens: 5 }, 7],
      bufferBytes: -1,
      reconnect: { initialDelayMs: 0 },
      extra: 1,
    };
    let error: unknown;
    try {
      parse(file, "conf/bridge.json");
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(InvalidArgumentError);
    expect((error as InvalidArgumentError).code).toBe("invalid_argument");
    const places = (error as BridgeFileError).problems.map((p) => p.place);
    expect(places).toEqual([
      "extra",
      "version",
      "nats.extra",
      "nats.servers[1]",
      "nats",
      "nats.nkeySeed",
      "export[1].subject",
      "export[2].prefix",
      "import[0].stripTokens",
      "import[1]",
      "bufferBytes",
      "reconnect.initialDelayMs",
    ]);
    const lines = (error as Error).message.split("\n");
    expect(lines[0]).toBe("bridge conf/bridge.json: 12 problem(s)");
    expect(lines.slice(1).map((line) => /^ {2}(\S+): \S/.exec(line)?.[1])).toEqual(places);
  });

  it("names a file that cannot be read", () => {
    const missing = join(tempDir(), "none.json");
    expect(() => readBridgeFile(missing, HOST)).toThrow(new RegExp(`^bridge ${missing}: 1 problem\\(s\\)\\n {2}file: ENOENT`));
  });

  it.skipIf(process.getuid?.() === 0)("names a credentials file that cannot be read (root reads any file, so not as root)", () => {
    const dir = tempDir();
    writeFileSync(join(dir, "user.creds"), "x");
    chmodSync(join(dir, "user.creds"), 0o000);
    const problems = problemsOf(minimal({ nats: { ...SERVERS, credentials: "user.creds" } }), join(dir, "bridge.json"));
    expect(problems).toEqual([{ place: "nats.credentials", why: `${join(dir, "user.creds")} cannot be read (permission denied)` }]);
  });
});

describe("bridge subject mapping", () => {
  it("exports as prefix + local subject", () => {
    expect(exportedSubject({ subject: "app.>", prefix: "fleet.host-a." }, "app.temp")).toBe("fleet.host-a.app.temp");
    expect(exportedSubject({ subject: "app.>", prefix: "" }, "app.temp")).toBe("app.temp");
  });

  it("imports by stripping tokens and putting the local prefix in front", () => {
    const entry = { subject: "fleet.*.app.>", stripTokens: 2, localPrefix: "" };
    expect(mapImportedSubject(entry, "fleet.hostB.app.x")).toBe("app.x");
    expect(mapImportedSubject({ ...entry, localPrefix: "remote." }, "fleet.hostB.app.x.y")).toBe("remote.app.x.y");
    expect(mapImportedSubject({ ...entry, stripTokens: 0 }, "fleet.hostB.app.x")).toBe("fleet.hostB.app.x");
    expect(mapImportedSubject({ subject: "a.b", stripTokens: 1, localPrefix: "" }, "a.b")).toBe("b");
  });

  it("maps nothing that does not match, or that xpcbus could not publish", () => {
    const entry = { subject: "fleet.*.app.>", stripTokens: 2, localPrefix: "" };
    expect(mapImportedSubject(entry, "fleet.hostB.other.x")).toBeUndefined();
    expect(mapImportedSubject(entry, "fleet.hostB.app")).toBeUndefined();
    // NATS allows characters and lengths that xpcbus does not.
    expect(mapImportedSubject(entry, "fleet.hostB.app.a$b")).toBeUndefined();
    expect(mapImportedSubject(entry, `fleet.hostB.app.${"x".repeat(260)}`)).toBeUndefined();
    expect(mapImportedSubject({ subject: ">", stripTokens: 0, localPrefix: "" }, "a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q")).toBeUndefined();
    // A subject the pattern admits can still land under _INBOX. locally.
    expect(mapImportedSubject({ subject: "x.>", stripTokens: 1, localPrefix: "" }, "x._INBOX.7.1")).toBeUndefined();
    // Length counts after stripping: too long still, and then short enough.
    expect(mapImportedSubject({ subject: "a.>", stripTokens: 1, localPrefix: "" }, `a.${"x".repeat(257)}`)).toBeUndefined();
    expect(mapImportedSubject({ subject: "*.>", stripTokens: 1, localPrefix: "" }, `${"x".repeat(300)}.y`)).toBe("y");
  });
});

describe("xpcbus bridge check (the built CLI)", () => {
  it("says what a good file bridges (exit 0), and every problem of a bad one on stderr (exit 2)", async () => {
    const dir = tempDir();
    const good = join(dir, "good.json");
    writeFileSync(good, JSON.stringify({ version: 1, nats: { servers: ["nats://a:4222", "b:4223"] }, export: [{ subject: "app.>" }, { subject: "x" }], import: [{ subject: "fleet.*.app.>", stripTokens: 2 }] }));
    expect(await runCli(["bridge", "check", good])).toEqual({ code: 0, stdout: "ok: 2 export(s), 1 import(s), servers nats://a:4222 nats://b:4223\n", stderr: "" });

    const bad = join(dir, "bad.json");
    writeFileSync(bad, JSON.stringify({ version: 1, nats: { servers: [] }, export: [{ subject: "a", prefix: "p" }], import: [{ subject: "a.>", stripTokens: 1 }] }));
    const result = await runCli(["bridge", "check", bad]);
    expect(result.code).toBe(2);
    expect(result.stdout).toBe("");
    expect(result.stderr.split("\n")).toEqual([
      `xpcbus: bridge ${bad}: 3 problem(s)`,
      expect.stringMatching(/^ {2}nats\.servers: /),
      expect.stringMatching(/^ {2}export\[0\]\.prefix: /),
      expect.stringMatching(/^ {2}import\[0\]\.stripTokens: /),
      "",
    ]);
  });
});
