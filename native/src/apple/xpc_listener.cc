// The XPC transport's listener, mechanically: a mach service (or anonymous,
// for tests, TN3113) with one event handler per peer. Each new peer is
// reported to JS with its identity (from its audit token) and, when the
// listener has a code-signing requirement, what checking the peer's code
// against it found; TypeScript decides whether to refuse it
// (daemon/transports/xpc-server.ts, daemon/core/policy.ts).
//
// Lifetime: every block XPC holds captures the State by shared_ptr, so an
// event that arrives after close() (a cancelled peer's final INVALID, a peer
// accepted while closing) finds it alive and, seeing it closed, does nothing.
// Order: a peer's "peer" event is queued before the peer is activated, so no
// message or "gone" of it can reach JS first (the TS side copes with any
// order all the same, daemon/transports/xpc-peer-events.ts).
#include "apple/xpc_listener.h"

#include <bsm/libbsm.h>
#include <dispatch/dispatch.h>
#include <xpc/xpc.h>

#include <cstddef>
#include <map>
#include <mutex>
#include <string>
#include <utility>

#include "apple/audit_token.h"
#include "apple/code_signing.h"
#include "apple/xpc_shared.h"
#include "call_sink.h"
#include "napi_args.h"

namespace xpcbus {

namespace {

// XPC delivers a peer's messages as fast as it sends them and cannot be told
// to wait, so what the JS thread has not yet taken is bounded per peer
// (docs/PROTOCOL.md §14). A publisher that does not wait for answers may run
// this far ahead of a busy broker: 16384 small messages are a few MiB.
constexpr size_t kMaxQueuedMessagesPerPeer = 16384;
// At least two messages at the conversion bounds (16 MiB of strings and data
// plus their nodes, value_tree.h) fit; a message that arrives with nothing
// queued is always taken, whatever it costs.
constexpr size_t kMaxQueuedBytesPerPeer = 64u * 1024 * 1024;

}  // namespace

struct XpcListener::State : std::enable_shared_from_this<State> {
  enum class Phase { kIdle, kStarted, kClosed };

  struct Peer {
    xpc_connection_t connection = nullptr;  // retained
    size_t queued = 0;                      // message events queued for JS, not yet delivered
    size_t queued_bytes = 0;                // their TreeCost()
    // Over its bound, or it sent an unreadable message: JS is closing it, and
    // its messages are dropped unread until it is gone.
    bool dropping = false;
  };
  struct Reply {
    uint32_t peer;
    xpc_object_t reply;  // retained, from xpc_dictionary_create_reply
  };

  std::shared_ptr<CallSink> sink;
  std::string requirement;
  // Created and released on the JS thread only.
  dispatch_queue_t queue = nullptr;
  xpc_connection_t listener = nullptr;

  std::mutex mutex;  // guards what follows; never held while JS runs
  Phase phase = Phase::kIdle;
  std::map<uint32_t, Peer> peers;
  std::map<uint32_t, Reply> replies;  // by token
  uint32_t next_peer = 1;
  uint32_t next_token = 1;

  void OnListenerEvent(xpc_object_t event) {
    if (xpc_get_type(event) == XPC_TYPE_CONNECTION) {
      Accept(static_cast<xpc_connection_t>(event));
    } else if (event == XPC_ERROR_CONNECTION_INVALID) {
      {
        std::lock_guard<std::mutex> lock(mutex);
        if (phase == Phase::kClosed) return;  // our own cancel
      }
      auto e = std::make_shared<Event>();
      e->kind = "invalid";
      e->reason = "the listener was invalidated (is the service in the job's MachServices?)";
      EmitEvent(*sink, e);
    }
    // XPC_ERROR_TERMINATION_IMMINENT is delivered to peer connections only
    // (xpc/connection.h), never here: see OnPeerEvent.
  }

  void Accept(xpc_connection_t peer) {
    auto identity = std::make_shared<Event>();
    identity->kind = "peer";
    audit_token_t token;
    xpc_connection_get_audit_token(peer, &token);
    ReadAuditTokenIdentity(token, &identity->identity);
    identity->audit_token.assign(reinterpret_cast<const char*>(&token), sizeof(token));
    identity->team_id = TeamIdentifier(token);
    if (!requirement.empty()) {
      // Checked at accept time (all macOS versions), before the peer is
      // activated; the result goes to JS as data, which refuses a peer that
      // fails with a reason it can read (docs/PROTOCOL.md, section 14).
      identity->has_code_signing = true;
      identity->requirement = requirement;
      identity->code_signing = CheckCodeSigning(token, requirement);
      if (identity->code_signing.satisfied) {
        if (__builtin_available(macOS 12.0, *)) {
          // Enforced by XPC from here on, for every message. Only on a peer
          // that passed: on one that failed, XPC would drop the connection
          // before the broker's err could reach it.
          identity->enforced_by_xpc = xpc_connection_set_peer_code_signing_requirement(peer, requirement.c_str()) == 0;
        }
      }
    }
    std::shared_ptr<State> self = shared_from_this();
    bool kept = false;
    {
      std::lock_guard<std::mutex> lock(mutex);
      if (phase != Phase::kClosed) {
        uint32_t id = next_peer++;
        identity->peer = id;
        xpc_connection_set_event_handler(peer, ^(xpc_object_t event) {
          self->OnPeerEvent(id, event);
        });
        kept = EmitEvent(*sink, identity);
        if (kept) {
          xpc_retain(peer);
          peers[id].connection = peer;
        }
        // Activated only now, after "peer" is queued for JS, and under the
        // lock, so JS's send() and cancel() for this id wait until it is active.
        xpc_connection_activate(peer);
      }
    }
    // Accepted while closing (or the sink has ended): not ours. XPC disposes
    // of a peer cancelled from here (xpc_connection_set_event_handler in
    // xpc/connection.h); its handler, if set, finds it unknown.
    if (!kept) xpc_connection_cancel(peer);
  }

  void OnPeerEvent(uint32_t id, xpc_object_t event) {
    xpc_type_t type = xpc_get_type(event);
    if (type == XPC_TYPE_DICTIONARY) {
      OnMessage(id, event);
      return;
    }
    if (type != XPC_TYPE_ERROR) return;
    bool signing = false;
    if (__builtin_available(macOS 12.0, *)) signing = event == XPC_ERROR_PEER_CODE_SIGNING_REQUIREMENT;
    if (signing) {
      // XPC refused a message: the peer no longer satisfies the requirement.
      // JS tells the peer why and cancels it.
      EmitPeerEvent("refused", id, "");
    } else if (event == XPC_ERROR_TERMINATION_IMMINENT) {
      // Delivered to every peer, never to the listener: launchd is about to
      // end the job and this peer will send nothing more. JS says bye to it
      // and starts the broker's own shutdown (docs/PROTOCOL.md §14).
      EmitPeerEvent("terminating", id, "launchd is terminating the broker's job");
    } else if (event == XPC_ERROR_CONNECTION_INVALID) {
      Forget(id, "the peer's connection was invalidated");
    }
  }

  void OnMessage(uint32_t id, xpc_object_t message) {
    {
      std::lock_guard<std::mutex> lock(mutex);
      auto found = peers.find(id);
      if (found == peers.end() || found->second.dropping) return;
    }
    std::string error;
    std::shared_ptr<Event> e = MessageEvent("message", id, message, &error);
    std::lock_guard<std::mutex> lock(mutex);
    auto found = peers.find(id);
    if (found == peers.end() || found->second.dropping) return;
    Peer& peer = found->second;
    if (!e) {
      // JS closes a peer on its first unreadable message (err bad_frame,
      // PROTOCOL.md §14), so one fault per peer is all it needs.
      peer.dropping = true;
      EmitPeerEvent("fault", id, error);
      return;
    }
    size_t cost = sizeof(Event) + TreeCost(e->message);
    if (peer.queued > 0 && (peer.queued + 1 > kMaxQueuedMessagesPerPeer || peer.queued_bytes + cost > kMaxQueuedBytesPerPeer)) {
      // From here on its messages are dropped; JS closes it with an err.
      peer.dropping = true;
      auto flooded = std::make_shared<Event>();
      flooded->kind = "flooded";
      flooded->peer = id;
      flooded->reason = "the peer sent more than " + std::to_string(kMaxQueuedMessagesPerPeer) + " messages or " +
                        std::to_string(kMaxQueuedBytesPerPeer >> 20) + " MiB that the broker had not yet read";
      EmitEvent(*sink, flooded);
      return;
    }
    // Any message may carry a reply context; TypeScript keeps the ones the
    // protocol answers and hands the others back with reply(peer, token, null).
    xpc_object_t reply = xpc_dictionary_create_reply(message);
    if (reply != nullptr) {
      e->reply_token = next_token++;
      if (next_token == 0) next_token = 1;  // 0 means "none" to JS
      replies[e->reply_token] = {id, reply};
    }
    std::weak_ptr<State> weak = weak_from_this();
    bool queued = EmitEvent(*sink, e, [weak, id, cost] {
      std::shared_ptr<State> state = weak.lock();
      if (!state) return;
      std::lock_guard<std::mutex> lock(state->mutex);
      auto p = state->peers.find(id);
      if (p == state->peers.end()) return;
      p->second.queued--;
      p->second.queued_bytes -= cost;
    });
    if (queued) {
      peer.queued++;
      peer.queued_bytes += cost;
    } else if (reply != nullptr) {
      replies.erase(e->reply_token);
      xpc_release(reply);
    }
  }

  void EmitPeerEvent(const char* kind, uint32_t id, const std::string& reason) {
    auto e = std::make_shared<Event>();
    e->kind = kind;
    e->peer = id;
    e->reason = reason;
    EmitEvent(*sink, e);
  }

  void Forget(uint32_t id, const char* reason) {
    {
      std::lock_guard<std::mutex> lock(mutex);
      auto found = peers.find(id);
      if (found == peers.end()) return;  // closed: Shutdown() released it
      xpc_release(found->second.connection);
      peers.erase(found);
      ReleaseReplies(id);
    }
    EmitPeerEvent("gone", id, reason);
  }

  // With `mutex` held.
  void ReleaseReplies(uint32_t id) {
    for (auto it = replies.begin(); it != replies.end();) {
      if (it->second.peer == id) {
        xpc_release(it->second.reply);
        it = replies.erase(it);
      } else {
        ++it;
      }
    }
  }

  // A retained reference the caller owns, or nullptr when the peer is gone.
  xpc_connection_t RetainPeer(uint32_t id) {
    std::lock_guard<std::mutex> lock(mutex);
    auto found = peers.find(id);
    if (found == peers.end()) return nullptr;
    xpc_retain(found->second.connection);
    return found->second.connection;
  }

  // The reply context `token` of peer `id`, now the caller's, or nullptr.
  xpc_object_t TakeReply(uint32_t id, uint32_t token) {
    std::lock_guard<std::mutex> lock(mutex);
    auto found = replies.find(token);
    if (found == replies.end() || found->second.peer != id) return nullptr;
    xpc_object_t reply = found->second.reply;
    replies.erase(found);
    return reply;
  }
};

namespace {

// Cancels `peer` after everything already sent to it (a final err or bye is
// delivered first; a plain cancel discards what is not yet sent). Takes over
// the caller's reference.
void CancelAfterSent(xpc_connection_t peer) {
  xpc_connection_send_barrier(peer, ^{
    xpc_connection_cancel(peer);
    xpc_release(peer);
  });
}

}  // namespace

Napi::Function XpcListener::Init(Napi::Env env) {
  return DefineClass(env, "XpcListener",
                     {InstanceMethod<&XpcListener::Start>("start"),
                      InstanceMethod<&XpcListener::Endpoint>("endpoint"),
                      InstanceMethod<&XpcListener::Send>("send"),
                      InstanceMethod<&XpcListener::Reply>("reply"),
                      InstanceMethod<&XpcListener::Cancel>("cancel"),
                      InstanceMethod<&XpcListener::Close>("close")});
}

XpcListener::XpcListener(const Napi::CallbackInfo& info) : Napi::ObjectWrap<XpcListener>(info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !(info[0].IsString() || info[0].IsNull()) || !info[1].IsFunction()) {
    Napi::TypeError::New(env, "new XpcListener(service | null, onEvent, options?)").ThrowAsJavaScriptException();
    return;
  }
  std::string requirement;
  if (info.Length() > 2 && info[2].IsObject()) {
    Napi::Value req = info[2].As<Napi::Object>().Get("codeSigningRequirement");
    if (env.IsExceptionPending()) return;  // a getter threw: let it propagate
    if (req.IsString()) requirement = req.As<Napi::String>().Utf8Value();
  }
  auto state = std::make_shared<State>();
  state->requirement = std::move(requirement);
  // Keeps the process alive until close(), as a listening socket does: a
  // broker on XPC alone has nothing else pending.
  state->sink = CallSink::New(env, info[1].As<Napi::Function>(), "xpcbus.xpc.listener", true);
  state->queue = dispatch_queue_create("io.xpcbus.xpc.listener", DISPATCH_QUEUE_SERIAL);
  if (info[0].IsString()) {
    std::string service = info[0].As<Napi::String>().Utf8Value();
    state->listener = xpc_connection_create_mach_service(service.c_str(), state->queue, XPC_CONNECTION_MACH_SERVICE_LISTENER);
  } else {
    state->listener = xpc_connection_create(nullptr, state->queue);
  }
  xpc_connection_set_event_handler(state->listener, ^(xpc_object_t event) {
    state->OnListenerEvent(event);
  });
  state_ = state;
  // Registered after the sink, so it runs before Node tears the function
  // down (hooks run last-in first-out): a Worker or the process that ends
  // with the listener open cancels every connection while JS can still be
  // told nothing more, as the Linux notify waiter does.
  env_ = env;
  if (napi_add_env_cleanup_hook(env, &XpcListener::EnvCleanup, this) == napi_ok) hooked_ = true;
}

XpcListener::~XpcListener() { Shutdown(); }

void XpcListener::EnvCleanup(void* arg) {
  auto* self = static_cast<XpcListener*>(arg);
  self->hooked_ = false;  // Node drops a hook once it has run
  self->Shutdown();
}

bool XpcListener::Open(Napi::Env env) {
  if (state_) return true;
  Napi::Error::New(env, "the XPC listener is closed").ThrowAsJavaScriptException();
  return false;
}

bool XpcListener::ReadPeer(const Napi::CallbackInfo& info, size_t arg, uint32_t* out) {
  double value;
  if (!ReadNumber(info, arg, "peer", &value)) return false;
  *out = static_cast<uint32_t>(value);
  return true;
}

// start(): begins accepting. Again: nothing (xpc_connection_activate is
// idempotent, where a second resume would unbalance the connection).
Napi::Value XpcListener::Start(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!Open(env)) return env.Undefined();
  {
    std::lock_guard<std::mutex> lock(state_->mutex);
    if (state_->phase != State::Phase::kIdle) return env.Undefined();
    state_->phase = State::Phase::kStarted;
  }
  xpc_connection_activate(state_->listener);
  return env.Undefined();
}

// endpoint() -> External: for xpc_connection_create_from_endpoint (anonymous listeners).
Napi::Value XpcListener::Endpoint(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!Open(env)) return env.Undefined();
  return WrapXpc(env, xpc_endpoint_create(state_->listener), XpcKind::Endpoint);
}

// send(peer, encoded): false when the peer is gone.
Napi::Value XpcListener::Send(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t id;
  xpc_object_t message;
  if (!Open(env) || !ReadPeer(info, 0, &id) ||
      !UnwrapXpc(env, info[1], XpcKind::Message, "send(peer, encoded): encoded must come from xpcEncode", &message)) {
    return env.Undefined();
  }
  xpc_connection_t peer = state_->RetainPeer(id);
  if (peer == nullptr) return Napi::Boolean::New(env, false);
  xpc_connection_send_message(peer, message);
  xpc_release(peer);
  return Napi::Boolean::New(env, true);
}

// reply(peer, replyToken, encoded | null): answers the message that carried
// replyToken, or with null hands its reply context back unanswered. False
// when there is no such context (already used, or the peer is gone).
Napi::Value XpcListener::Reply(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t id;
  double token;
  xpc_object_t message = nullptr;
  if (!Open(env) || !ReadPeer(info, 0, &id) || !ReadNumber(info, 1, "replyToken", &token)) return env.Undefined();
  if (!(info.Length() > 2 && info[2].IsNull()) &&
      !UnwrapXpc(env, info[2], XpcKind::Message, "reply(peer, replyToken, encoded): encoded must come from xpcEncode or be null",
                 &message)) {
    return env.Undefined();
  }
  xpc_object_t reply = state_->TakeReply(id, static_cast<uint32_t>(token));
  if (reply == nullptr) return Napi::Boolean::New(env, false);
  if (message == nullptr) {
    xpc_release(reply);
    return Napi::Boolean::New(env, true);
  }
  xpc_connection_t peer = state_->RetainPeer(id);
  if (peer == nullptr) {
    xpc_release(reply);
    return Napi::Boolean::New(env, false);
  }
  xpc_dictionary_apply(message, ^bool(const char* key, xpc_object_t value) {
    xpc_dictionary_set_value(reply, key, value);
    return true;
  });
  xpc_connection_send_message(peer, reply);
  xpc_release(reply);
  xpc_release(peer);
  return Napi::Boolean::New(env, true);
}

// cancel(peer): closes one peer after what was sent to it; its "gone" follows.
Napi::Value XpcListener::Cancel(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t id;
  if (!Open(env) || !ReadPeer(info, 0, &id)) return env.Undefined();
  xpc_connection_t peer = state_->RetainPeer(id);
  if (peer != nullptr) CancelAfterSent(peer);
  return env.Undefined();
}

// Idempotent: from close(), the finalizer, or the environment's teardown.
void XpcListener::Shutdown() {
  if (hooked_) {
    napi_remove_env_cleanup_hook(env_, &XpcListener::EnvCleanup, this);
    hooked_ = false;
  }
  if (!state_) return;
  std::shared_ptr<State> state = std::move(state_);
  // First, so nothing reaches JS from here on (Queue() is false once ended).
  state->sink->End();
  State::Phase was;
  {
    std::lock_guard<std::mutex> lock(state->mutex);
    was = state->phase;
    state->phase = State::Phase::kClosed;
    // The map's references go to the barriers; each peer's final INVALID then
    // finds nothing to forget.
    for (auto& peer : state->peers) CancelAfterSent(peer.second.connection);
    state->peers.clear();
    for (auto& reply : state->replies) xpc_release(reply.second.reply);
    state->replies.clear();
  }
  // Releasing an inactive connection is undefined (xpc/connection.h): one
  // never started is activated first; seeing kClosed it accepts nobody.
  if (was == State::Phase::kIdle) xpc_connection_activate(state->listener);
  xpc_connection_cancel(state->listener);
  xpc_release(state->listener);
  state->listener = nullptr;
  dispatch_release(state->queue);
  state->queue = nullptr;
}

Napi::Value XpcListener::Close(const Napi::CallbackInfo& info) {
  Shutdown();
  return info.Env().Undefined();
}

}  // namespace xpcbus
