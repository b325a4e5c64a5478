// A platform-neutral tree of the values XPC carries (null, bool, int64,
// uint64, double, string, bytes, date, uuid, array, map). JS <-> tree is
// shared code, tested on Linux; tree <-> xpc_object_t (apple/xpc_value.cc)
// is the only platform-specific part. Building a tree copies everything, so
// a tree owns its strings and bytes and outlives the object it came from.
#pragma once

#include <napi.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace xpcbus {

struct ValueNode {
  enum class Kind { Null, Bool, Int64, Uint64, Double, String, Bytes, Date, Uuid, Array, Map };
  Kind kind = Kind::Null;
  bool boolean = false;
  int64_t int64 = 0;    // Int64, and Date (nanoseconds since 1970, as XPC dates)
  uint64_t uint64 = 0;
  double number = 0;
  std::string text;     // String (UTF-8), Bytes, Uuid (16 bytes)
  std::vector<ValueNode> items;                           // Array
  std::vector<std::pair<std::string, ValueNode>> fields;  // Map, in insertion order
};

// Bounds on one tree, so a hostile message cannot exhaust memory or stack.
struct ValueLimits {
  uint32_t max_depth = 32;
  uint32_t max_nodes = 100000;
  uint64_t max_bytes = 16u * 1024 * 1024;  // strings + bytes + keys
};

// Converts a JS value into `out`. On failure returns false and sets `error`
// to a message naming the path of the offending value (e.g. "$.status.peers[3]").
//   null/undefined -> Null; boolean -> Bool; number: a safe integer >= 0 -> Uint64,
//   a safe integer < 0 -> Int64, else Double; bigint -> Uint64 (>= 0) or Int64;
//   string -> String; Uint8Array/Buffer -> Bytes; Date -> Date;
//   { $uuid: Uint8Array(16) } -> Uuid; Array -> Array; plain object -> Map.
bool TreeFromJs(Napi::Env env, Napi::Value value, const ValueLimits& limits, ValueNode* out, std::string* error);

// The inverse; Uint64/Int64 beyond 2^53 become bigint; Bytes a Buffer; Uuid { $uuid: Buffer }.
Napi::Value TreeToJs(Napi::Env env, const ValueNode& node);

// Exposes valueTreeRoundTrip(value, limits?) for tests of the shared code.
void InitValueTree(Napi::Env env, Napi::Object exports);

}  // namespace xpcbus
