// The XPC transport's listener, mechanically: a mach service (or anonymous,
// for tests, TN3113) with one event handler per peer. Each new peer is
// reported to JS with its identity (from its audit token) and, when the
// listener has a code-signing requirement, what checking the peer's code
// against it found; TypeScript decides whether to refuse it
// (daemon/transports/xpc-server.ts, daemon/core/policy.ts).
#include "apple/xpc_listener.h"

#include <bsm/libbsm.h>
#include <dispatch/dispatch.h>
#include <xpc/xpc.h>

#include <map>
#include <mutex>
#include <string>
#include <utility>

#include "apple/audit_token.h"
#include "apple/code_signing.h"
#include "apple/xpc_shared.h"
#include "napi_args.h"

// Private SPI, stable since macOS 10.7 and used by Apple's own daemons: the
// peer's audit token, which names the process (pid + pid version) without
// the pid-reuse race. Not in the SDK headers, hence declared here.
extern "C" void xpc_connection_get_audit_token(xpc_connection_t connection, audit_token_t* token);

namespace xpcbus {

struct XpcListener::State {
  std::shared_ptr<EventSink> sink;
  dispatch_queue_t queue = nullptr;
  xpc_connection_t listener = nullptr;
  std::string requirement;
  std::mutex mutex;
  std::map<uint32_t, xpc_connection_t> peers;                         // retained
  std::map<uint32_t, std::pair<uint32_t, xpc_object_t>> replies;      // token -> (peer, reply dict)
  uint32_t next_peer = 1;
  uint32_t next_token = 1;

  void OnListenerEvent(xpc_object_t event) {
    if (xpc_get_type(event) == XPC_TYPE_CONNECTION) {
      Accept(static_cast<xpc_connection_t>(event));
    } else if (event == XPC_ERROR_TERMINATION_IMMINENT) {
      auto e = std::make_shared<Event>();
      e->kind = "drain";
      sink->Emit(e);
    } else if (event == XPC_ERROR_CONNECTION_INVALID) {
      auto e = std::make_shared<Event>();
      e->kind = "invalid";
      e->reason = "the listener was invalidated (is the service in the job's MachServices?)";
      sink->Emit(e);
    }
  }

  void Accept(xpc_connection_t peer) {
    auto identity = std::make_shared<Event>();
    identity->kind = "peer";
    audit_token_t token;
    xpc_connection_get_audit_token(peer, &token);
    ReadAuditTokenIdentity(token, &identity->identity);
    identity->audit_token.assign(reinterpret_cast<const char*>(&token), sizeof(token));
    identity->team_id = TeamIdentifier(token);
    uint32_t id;
    {
      std::lock_guard<std::mutex> lock(mutex);
      id = next_peer++;
      xpc_retain(peer);
      peers[id] = peer;
    }
    identity->peer = id;
    State* self = this;
    xpc_connection_set_event_handler(peer, ^(xpc_object_t event) {
      self->OnPeerEvent(id, event);
    });
    if (!requirement.empty()) {
      // Checked at accept time (all macOS versions), before the peer is
      // resumed; the result goes to JS as data, which refuses a peer that
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
    xpc_connection_resume(peer);
    sink->Emit(identity);
  }

  void OnPeerEvent(uint32_t id, xpc_object_t event) {
    xpc_type_t type = xpc_get_type(event);
    if (type == XPC_TYPE_DICTIONARY) {
      std::string error;
      std::shared_ptr<Event> e = MessageEvent("message", id, event, &error);
      if (!e) {
        auto fault = std::make_shared<Event>();
        fault->kind = "fault";
        fault->peer = id;
        fault->reason = error;
        sink->Emit(fault);
        return;
      }
      xpc_object_t reply = xpc_dictionary_create_reply(event);
      if (reply != nullptr) {
        std::lock_guard<std::mutex> lock(mutex);
        e->reply_token = next_token++;
        replies[e->reply_token] = {id, reply};
      }
      sink->Emit(e);
      return;
    }
    if (type != XPC_TYPE_ERROR) return;
    bool signing = false;
    if (__builtin_available(macOS 12.0, *)) signing = event == XPC_ERROR_PEER_CODE_SIGNING_REQUIREMENT;
    if (signing) {
      // XPC refused a message: the peer no longer satisfies the requirement.
      // JS tells the peer why and cancels it.
      auto e = std::make_shared<Event>();
      e->kind = "refused";
      e->peer = id;
      sink->Emit(e);
      return;
    }
    if (event == XPC_ERROR_CONNECTION_INVALID) Forget(id, "the peer's connection was invalidated");
  }

  void Forget(uint32_t id, const char* reason) {
    {
      std::lock_guard<std::mutex> lock(mutex);
      auto found = peers.find(id);
      if (found == peers.end()) return;
      xpc_release(found->second);
      peers.erase(found);
      for (auto it = replies.begin(); it != replies.end();) {
        if (it->second.first == id) {
          xpc_release(it->second.second);
          it = replies.erase(it);
        } else {
          ++it;
        }
      }
    }
    auto e = std::make_shared<Event>();
    e->kind = "gone";
    e->peer = id;
    e->reason = reason;
    sink->Emit(e);
  }

  xpc_connection_t Peer(uint32_t id) {
    std::lock_guard<std::mutex> lock(mutex);
    auto found = peers.find(id);
    if (found == peers.end()) return nullptr;
    xpc_retain(found->second);
    return found->second;
  }
};

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
  state_ = std::make_shared<State>();
  if (info.Length() > 2 && info[2].IsObject()) {
    Napi::Value req = info[2].As<Napi::Object>().Get("codeSigningRequirement");
    if (req.IsString()) state_->requirement = req.As<Napi::String>().Utf8Value();
  }
  state_->sink = NewSink(env, info[1].As<Napi::Function>(), "xpcbus.xpc.listener");
  state_->queue = dispatch_queue_create("io.xpcbus.xpc.listener", DISPATCH_QUEUE_SERIAL);
  if (info[0].IsString()) {
    std::string service = info[0].As<Napi::String>().Utf8Value();
    state_->listener = xpc_connection_create_mach_service(service.c_str(), state_->queue, XPC_CONNECTION_MACH_SERVICE_LISTENER);
  } else {
    state_->listener = xpc_connection_create(nullptr, state_->queue);
  }
  std::shared_ptr<State> state = state_;
  xpc_connection_set_event_handler(state_->listener, ^(xpc_object_t event) {
    state->OnListenerEvent(event);
  });
}

XpcListener::~XpcListener() { Shutdown(); }

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

Napi::Value XpcListener::Start(const Napi::CallbackInfo& info) {
  if (Open(info.Env())) xpc_connection_resume(state_->listener);
  return info.Env().Undefined();
}

// endpoint() -> External: for xpc_connection_create_from_endpoint (anonymous listeners).
Napi::Value XpcListener::Endpoint(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!Open(env)) return env.Undefined();
  return WrapXpc(env, xpc_endpoint_create(state_->listener));
}

// send(peer, encoded): false when the peer is gone.
Napi::Value XpcListener::Send(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t id;
  xpc_object_t message;
  if (!Open(env) || !ReadPeer(info, 0, &id) || !UnwrapXpc(info, 1, &message)) return env.Undefined();
  xpc_connection_t peer = state_->Peer(id);
  if (peer == nullptr) return Napi::Boolean::New(env, false);
  xpc_connection_send_message(peer, message);
  xpc_release(peer);
  return Napi::Boolean::New(env, true);
}

// reply(peer, replyToken, encoded): answers the message that carried replyToken.
Napi::Value XpcListener::Reply(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t id;
  xpc_object_t message;
  if (!Open(env) || !ReadPeer(info, 0, &id) || !info[1].IsNumber() || !UnwrapXpc(info, 2, &message)) return env.Undefined();
  uint32_t token = info[1].As<Napi::Number>().Uint32Value();
  xpc_object_t reply = nullptr;
  {
    std::lock_guard<std::mutex> lock(state_->mutex);
    auto found = state_->replies.find(token);
    if (found != state_->replies.end() && found->second.first == id) {
      reply = found->second.second;
      state_->replies.erase(found);
    }
  }
  xpc_connection_t peer = state_->Peer(id);
  if (reply == nullptr || peer == nullptr) {
    if (reply != nullptr) xpc_release(reply);
    if (peer != nullptr) xpc_release(peer);
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

// cancel(peer): closes one peer; its "gone" event follows.
Napi::Value XpcListener::Cancel(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t id;
  if (!Open(env) || !ReadPeer(info, 0, &id)) return env.Undefined();
  xpc_connection_t peer = state_->Peer(id);
  if (peer != nullptr) {
    // After what was already sent to it, so a final err or bye is delivered first.
    xpc_connection_send_barrier(peer, ^{
      xpc_connection_cancel(peer);
    });
    xpc_release(peer);
  }
  return env.Undefined();
}

void XpcListener::Shutdown() {
  if (!state_) return;
  state_->sink->Close();
  xpc_connection_cancel(state_->listener);
  {
    std::lock_guard<std::mutex> lock(state_->mutex);
    for (auto& peer : state_->peers) {
      xpc_connection_cancel(peer.second);
      xpc_release(peer.second);
    }
    state_->peers.clear();
    for (auto& reply : state_->replies) xpc_release(reply.second.second);
    state_->replies.clear();
  }
  xpc_release(state_->listener);
  dispatch_release(state_->queue);
  state_.reset();
}

Napi::Value XpcListener::Close(const Napi::CallbackInfo& info) {
  Shutdown();
  return info.Env().Undefined();
}

}  // namespace xpcbus
