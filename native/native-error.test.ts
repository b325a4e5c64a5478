// What the addon throws becomes a NativeError (an XpcbusError with a code and
// the errno), and the notifiers above it throw nothing else.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { TableNotifier } from "../daemon/index.js";
import { XpcbusError } from "../protocol/index.js";
import { loadNative } from "./loader.js";
import { NativeError, toNativeError } from "./native-error.js";

describe("toNativeError", () => {
  it("keeps the errno an addon error carries, the message, and the original as cause", () => {
    const thrown = Object.assign(new Error("cannot map notify table /x: Permission denied"), { errno: 13 });
    const error = toNativeError(thrown);
    expect(error).toBeInstanceOf(NativeError);
    expect(error).toBeInstanceOf(XpcbusError);
    expect(error).toMatchObject({ name: "NativeError", code: "native_failed", errno: 13, notifyStatus: undefined, message: thrown.message });
    expect(error.cause).toBe(thrown);
  });

  it("keeps a notify(3) status, and leads with the context when given", () => {
    const thrown = Object.assign(new Error("posting a.b: not authorized (notify status 1000000)"), { status: 1000000 });
    expect(toNativeError(thrown, "posting")).toMatchObject({ code: "native_failed", errno: undefined, notifyStatus: 1000000, message: `posting: ${thrown.message}` });
  });

  it("wraps what is not an errno error too, and passes a NativeError through", () => {
    expect(toNativeError(new TypeError("slot must be a number"))).toMatchObject({ code: "native_failed", errno: undefined, message: "slot must be a number" });
    expect(toNativeError("odd")).toMatchObject({ code: "native_failed", message: "odd" });
    const already = new NativeError("native_unavailable", "no addon");
    expect(toNativeError(already)).toBe(already);
  });
});

describe.skipIf(loadNative().platform !== "linux")("the table notifier's native failures (Linux)", () => {
  const dir = mkdtempSync(join(tmpdir(), "xpcbus-native-error-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("a table it cannot create is a NativeError with the errno", () => {
    const path = join(dir, "missing-dir", "t.notify");
    let caught: unknown;
    try {
      new TableNotifier({ path, prefix: "p", slots: 4, maxStates: 4 }).close();
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(NativeError);
    expect(caught).toMatchObject({ code: "native_failed", errno: 2, message: expect.stringContaining(path) });
  });
});
