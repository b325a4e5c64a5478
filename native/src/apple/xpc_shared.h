// What the XPC listener (xpc_listener.cc) and client (xpc_client.cc) share:
// the events they hand to JS through a CallSink (call_sink.h), and XPC
// objects held by JS. Messages are converted to value trees on the XPC queue
// (strings and data copied out before the object goes); the XPC queue never
// waits on JS. Which message means what is decided in TypeScript
// (daemon/transports/xpc-server.ts, client-sdk/xpc-client-transport.ts).
#pragma once

#include <napi.h>
#include <xpc/xpc.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "apple/code_signing.h"
#include "call_sink.h"
#include "peer_credentials.h"
#include "value_tree.h"

// Private SPI, stable since macOS 10.7 and used by Apple's own daemons: the
// peer's audit token, which names the process (pid + pid version) without
// the pid-reuse race. Not in the SDK headers, hence declared here.
extern "C" void xpc_connection_get_audit_token(xpc_connection_t connection, audit_token_t* token);

namespace xpcbus {

// What the XPC queues hand to JS.
struct Event {
  // Listener: peer | message | fault | gone | refused | flooded | terminating | invalid.
  // Client: message | reply | fault | interrupted | invalid | untrusted.
  std::string kind;
  uint32_t peer = 0;
  uint32_t reply_token = 0;
  ValueNode message;
  bool has_message = false;
  std::string reason;
  // kind "peer": who it is, from its audit token.
  PeerCredentials identity;
  std::string team_id;
  std::string audit_token;  // the raw audit_token_t, for later code-signing checks
  // kind "peer", when the listener has a code-signing requirement: what the
  // check at accept found, and whether XPC enforces it from then on.
  bool has_code_signing = false;
  std::string requirement;
  CodeSigningResult code_signing;
  bool enforced_by_xpc = false;
};

// Queues `event` for JS's onEvent; false once `sink` has ended (closed, or
// the environment is going). `delivered`, when given, runs on the JS thread
// after onEvent returned, or when Node drops the call at teardown: the
// listener's per-peer bound counts with it.
bool EmitEvent(CallSink& sink, std::shared_ptr<Event> event, std::function<void()> delivered = nullptr);

// A `kind` event carrying `message` (a dictionary) as a value tree, or
// nullptr with `error` set when it has no tree form.
std::shared_ptr<Event> MessageEvent(const char* kind, uint32_t peer, xpc_object_t message, std::string* error);

// What a value tree costs to hold, roughly: its strings, data and keys plus
// each node's own size. What the listener's per-peer bound counts in bytes.
size_t TreeCost(const ValueNode& node);

// The two kinds of XPC object JS holds. Each is a type-tagged External
// (napi_type_tag_object): handing an endpoint where a message is expected,
// or the reverse, is a TypeError rather than XPC aborting the process.
enum class XpcKind { Message, Endpoint };

// An XPC object owned by JS, released when collected; takes over `object`'s
// reference. Empty with a JS exception pending when tagging failed.
Napi::Value WrapXpc(Napi::Env env, xpc_object_t object, XpcKind kind);

// `value` as an XPC object of `kind` from WrapXpc (not retained: JS holds
// it for the call), or false after throwing a TypeError naming `what`.
bool UnwrapXpc(Napi::Env env, Napi::Value value, XpcKind kind, const char* what, xpc_object_t* out);

// Argument 0, a protocol map, as a new XPC dictionary (the caller releases
// it), or false after throwing a TypeError that starts with `what`.
bool EncodeMap(const Napi::CallbackInfo& info, const char* what, xpc_object_t* out);

// xpcEncode(message) -> External: the XPC dictionary for a protocol map,
// built once and sent to any number of peers.
Napi::Value Encode(const Napi::CallbackInfo& info);

}  // namespace xpcbus
