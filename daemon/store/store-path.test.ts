// Where a broker keeps its store when --store does not say (store-path.ts).

import { describe, expect, it } from "vitest";
import { defaultStorePath, type StorePathInputs } from "./store-path.js";

const base: StorePathInputs = {
  system: false,
  socketPathIsDefault: true,
  socketPath: "/run/user/1000/xpcbus/broker.sock",
  env: {},
  platform: "linux",
  homedir: "/home/ada",
};

describe("defaultStorePath", () => {
  it("a per-user broker on its default socket: $XDG_STATE_HOME/xpcbus, else ~/.local/state/xpcbus", () => {
    expect(defaultStorePath(base)).toBe("/home/ada/.local/state/xpcbus/store.db");
    expect(defaultStorePath({ ...base, env: { XDG_STATE_HOME: "/var/state/ada" } })).toBe("/var/state/ada/xpcbus/store.db");
  });

  it("ignores an empty or relative $XDG_STATE_HOME, as the XDG spec says", () => {
    expect(defaultStorePath({ ...base, env: { XDG_STATE_HOME: "" } })).toBe("/home/ada/.local/state/xpcbus/store.db");
    expect(defaultStorePath({ ...base, env: { XDG_STATE_HOME: "state" } })).toBe("/home/ada/.local/state/xpcbus/store.db");
  });

  it("macOS: ~/Library/Application Support/xpcbus", () => {
    expect(defaultStorePath({ ...base, platform: "darwin", homedir: "/Users/ada", env: { XDG_STATE_HOME: "/x" } })).toBe(
      "/Users/ada/Library/Application Support/xpcbus/store.db",
    );
  });

  it("--system: /var/lib/xpcbus on Linux, /Library/Application Support/xpcbus on macOS", () => {
    expect(defaultStorePath({ ...base, system: true, socketPath: "/run/xpcbus/broker.sock" })).toBe("/var/lib/xpcbus/store.db");
    expect(defaultStorePath({ ...base, system: true, platform: "darwin" })).toBe("/Library/Application Support/xpcbus/store.db");
  });

  it("a broker on a socket it did not choose keeps its store beside the socket, whatever else is set", () => {
    const socketPath = "/tmp/test-123/broker.sock";
    expect(defaultStorePath({ ...base, socketPathIsDefault: false, socketPath })).toBe("/tmp/test-123/broker.sock.store.db");
    expect(defaultStorePath({ ...base, socketPathIsDefault: false, socketPath, system: true, env: { XDG_STATE_HOME: "/s" } })).toBe(
      "/tmp/test-123/broker.sock.store.db",
    );
    expect(defaultStorePath({ ...base, socketPathIsDefault: false, socketPath, platform: "darwin" })).toBe("/tmp/test-123/broker.sock.store.db");
  });
});
