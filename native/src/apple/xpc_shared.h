// What the XPC listener (xpc_listener.cc) and client (xpc_client.cc) share:
// the events they hand to JS through a ThreadSafeFunction, and XPC objects
// held by JS. Messages are converted to value trees on the XPC queue (strings
// and data copied out before the object goes); the XPC queue never waits on
// JS. Which message means what is decided in TypeScript
// (daemon/transports/xpc-server.ts, client-sdk/xpc-client-transport.ts).
#pragma once

#include <napi.h>
#include <xpc/xpc.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "apple/code_signing.h"
#include "peer_credentials.h"
#include "value_tree.h"

namespace xpcbus {

// What the threads hand to JS.
struct Event {
  std::string kind;  // peer | message | gone | refused | fault | drain | reply | interrupted | invalid
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

// One ThreadSafeFunction per listener or client, carrying Events.
struct EventSink : std::enable_shared_from_this<EventSink> {
  Napi::ThreadSafeFunction tsfn;
  std::mutex mutex;
  bool closed = false;

  void Emit(std::shared_ptr<Event> event);
  void Close();
};

std::shared_ptr<EventSink> NewSink(Napi::Env env, Napi::Function onEvent, const char* name);

// A `kind` event carrying `message` (a dictionary) as a value tree, or
// nullptr with `error` set when it has no tree form.
std::shared_ptr<Event> MessageEvent(const char* kind, uint32_t peer, xpc_object_t message, std::string* error);

// An XPC object owned by JS (an encoded message, an endpoint): released when collected.
Napi::External<void> WrapXpc(Napi::Env env, xpc_object_t object);

// Argument `arg` as an XPC object from WrapXpc, or false after throwing.
bool UnwrapXpc(const Napi::CallbackInfo& info, size_t arg, xpc_object_t* out);

// Argument 0, a protocol map, as a new XPC dictionary (the caller releases
// it), or false after throwing a TypeError that starts with `what`.
bool EncodeMap(const Napi::CallbackInfo& info, const char* what, xpc_object_t* out);

// xpcEncode(message) -> External: the XPC dictionary for a protocol map,
// built once and sent to any number of peers.
Napi::Value Encode(const Napi::CallbackInfo& info);

}  // namespace xpcbus
