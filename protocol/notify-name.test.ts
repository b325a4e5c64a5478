// Notification names: the 511-byte bound notifyd's IPC carries, and
// notifyd's per-uid namespace (`user.uid.<uid>`) as the broker checks it.
import { describe, expect, it } from "vitest";
import { brokerUidProblem, MAX_NOTIFY_NAME_BYTES, notifyNameProblem, ownsUserUidName, postingProblem } from "./index.js";

describe("notification names", () => {
  it("are at most 511 bytes: notifyd's c_string[*:512] holds 511 and the NUL", () => {
    expect(MAX_NOTIFY_NAME_BYTES).toBe(511);
    expect(notifyNameProblem("a".repeat(511))).toBeUndefined();
    expect(notifyNameProblem("a".repeat(512))).toBe("a notification name is at most 511 bytes (got 512)");
  });

  it("user.uid.<uid> and the names under it belong to that uid, spelled as notifyd spells it", () => {
    expect(ownsUserUidName("app.x", 501)).toBe(true);
    expect(ownsUserUidName("user.uid.501", 501)).toBe(true);
    expect(ownsUserUidName("user.uid.501.x", 501)).toBe(true);
    expect(ownsUserUidName("user.uid.5012.x", 501)).toBe(false);
    expect(ownsUserUidName("user.uid.0501.x", 501)).toBe(false);
    expect(ownsUserUidName("user.uid.x", 501)).toBe(false);
    expect(ownsUserUidName("user.uid.0.x", 501)).toBe(false);
  });

  it("a non-root broker cannot serve another uid's names; a root broker serves all", () => {
    expect(brokerUidProblem("user.uid.0.x", 501)).toMatch(/"user\.uid\.0" names belong to another user: this broker runs as uid 501/);
    expect(brokerUidProblem("user.uid.501.x", 501)).toBeUndefined();
    expect(brokerUidProblem("com.example.x", 501)).toBeUndefined();
    expect(brokerUidProblem("user.uid.501.x", 0)).toBeUndefined();
  });

  it("a peer may post only its own user.uid. names", () => {
    expect(postingProblem("user.uid.501.x", 501, "io.xpcbus.broker")).toBeUndefined();
    expect(postingProblem("user.uid.501", 501, "io.xpcbus.broker")).toBeUndefined();
    expect(postingProblem("user.uid.501", 502, "io.xpcbus.broker")).toBe('"user.uid.501" names may be posted only by the user they name');
    expect(postingProblem("user.uid.0.x", 501, "io.xpcbus.broker")).toBeDefined();
    expect(postingProblem("user.uid.x.y", 501, "io.xpcbus.broker")).toBeDefined();
    expect(postingProblem("user.uid.501.x", null, "io.xpcbus.broker")).toBeDefined();
  });
});
