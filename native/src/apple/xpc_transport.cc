// The XPC transport, mechanically: a listener (mach service, or anonymous
// for tests, TN3113) with one event handler per peer, and a client
// connection. Messages are converted to value trees on the XPC queue
// (strings and data copied out before the object goes) and handed to JS
// through a ThreadSafeFunction; the XPC queue never waits on JS. Which
// message means what is decided in TypeScript (daemon/transports/xpc-*.ts).
#include <CoreFoundation/CoreFoundation.h>
#include <Security/Security.h>
#include <bsm/libbsm.h>
#include <dispatch/dispatch.h>
#include <libproc.h>
#include <xpc/xpc.h>

#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "apple/xpc_value.h"
#include "napi_args.h"
#include "platform.h"
#include "value_tree.h"

// Private SPI, stable since macOS 10.7 and used by Apple's own daemons: the
// peer's audit token, which names the process (pid + pid version) without
// the pid-reuse race. Not in the SDK headers, hence declared here.
extern "C" void xpc_connection_get_audit_token(xpc_connection_t connection, audit_token_t* token);

namespace xpcbus {

namespace {

// An XPC object owned by JS (an encoded message, an endpoint): released when collected.
Napi::External<void> WrapXpc(Napi::Env env, xpc_object_t object) {
  return Napi::External<void>::New(env, object, [](Napi::Env, void* data) { xpc_release(static_cast<xpc_object_t>(data)); });
}

bool UnwrapXpc(const Napi::CallbackInfo& info, size_t arg, xpc_object_t* out) {
  if (info.Length() <= arg || !info[arg].IsExternal()) {
    Napi::TypeError::New(info.Env(), "expected an encoded XPC message (from xpcEncode)").ThrowAsJavaScriptException();
    return false;
  }
  *out = static_cast<xpc_object_t>(info[arg].As<Napi::External<void>>().Data());
  return true;
}

// A protocol map as a new XPC dictionary (the caller releases it), or false
// after throwing a TypeError that starts with `what`.
bool EncodeMap(const Napi::CallbackInfo& info, const char* what, xpc_object_t* out) {
  Napi::Env env = info.Env();
  ValueNode tree;
  std::string error;
  if (info.Length() < 1 || !info[0].IsObject() || !TreeFromJs(env, info[0], ValueLimits(), &tree, &error) ||
      tree.kind != ValueNode::Kind::Map) {
    Napi::TypeError::New(env, std::string(what) + ": " + (error.empty() ? std::string("a plain object is required") : error))
        .ThrowAsJavaScriptException();
    return false;
  }
  *out = TreeToXpc(tree);
  return true;
}

// xpcEncode(message) -> External: the XPC dictionary for a protocol map,
// built once and sent to any number of peers.
Napi::Value Encode(const Napi::CallbackInfo& info) {
  xpc_object_t message;
  if (!EncodeMap(info, "xpcEncode(message)", &message)) return info.Env().Undefined();
  return WrapXpc(info.Env(), message);
}

// What the threads hand to JS.
struct Event {
  std::string kind;  // peer | message | gone | refused | fault | drain | reply | interrupted | invalid
  uint32_t peer = 0;
  uint32_t reply_token = 0;
  ValueNode message;
  bool has_message = false;
  std::string reason;
  long pid = -1, uid = -1, gid = -1;
  std::string exe;
  std::string team_id;
  std::string audit_token;  // the raw audit_token_t, for later code-signing checks
};

Napi::Object EventToJs(Napi::Env env, const Event& event) {
  Napi::Object out = Napi::Object::New(env);
  out.Set("kind", event.kind);
  if (event.peer != 0) out.Set("peer", event.peer);
  if (event.reply_token != 0) out.Set("replyToken", event.reply_token);
  if (event.has_message) out.Set("message", TreeToJs(env, event.message));
  if (!event.reason.empty()) out.Set("reason", event.reason);
  if (event.kind == "peer" || event.kind == "refused") {
    Napi::Object identity = Napi::Object::New(env);
    identity.Set("pid", event.pid < 0 ? env.Null() : Napi::Number::New(env, event.pid));
    identity.Set("uid", event.uid < 0 ? env.Null() : Napi::Number::New(env, event.uid));
    identity.Set("gid", event.gid < 0 ? env.Null() : Napi::Number::New(env, event.gid));
    identity.Set("exe", event.exe.empty() ? env.Null() : Napi::String::New(env, event.exe));
    identity.Set("method", "xpc_audit_token");
    identity.Set("teamId", event.team_id.empty() ? env.Null() : Napi::String::New(env, event.team_id));
    identity.Set("auditToken", Napi::Buffer<char>::Copy(env, event.audit_token.data(), event.audit_token.size()));
    out.Set("identity", identity);
  }
  return out;
}

// One ThreadSafeFunction per listener or client, carrying Events.
struct EventSink : std::enable_shared_from_this<EventSink> {
  Napi::ThreadSafeFunction tsfn;
  std::mutex mutex;
  bool closed = false;

  void Emit(std::shared_ptr<Event> event) {
    std::lock_guard<std::mutex> lock(mutex);
    if (closed) return;
    tsfn.NonBlockingCall([event](Napi::Env env, Napi::Function onEvent) {
      if (env == nullptr) return;
      napi_value argument = EventToJs(env, *event);
      napi_value recv = nullptr;
      napi_value result = nullptr;
      napi_get_undefined(env, &recv);
      napi_call_function(env, recv, onEvent, 1, &argument, &result);
    });
  }

  void Close() {
    std::lock_guard<std::mutex> lock(mutex);
    if (closed) return;
    closed = true;
    tsfn.Release();
  }
};

std::shared_ptr<EventSink> NewSink(Napi::Env env, Napi::Function onEvent, const char* name) {
  auto sink = std::make_shared<EventSink>();
  sink->tsfn = Napi::ThreadSafeFunction::New(env, onEvent, name, 0, 1);
  return sink;
}

std::shared_ptr<Event> MessageEvent(const char* kind, uint32_t peer, xpc_object_t message, std::string* error) {
  auto event = std::make_shared<Event>();
  event->kind = kind;
  event->peer = peer;
  if (xpc_get_type(message) != XPC_TYPE_DICTIONARY) {
    *error = "an XPC message must be a dictionary";
    return nullptr;
  }
  if (!TreeFromXpc(message, ValueLimits(), &event->message, error)) return nullptr;
  event->has_message = true;
  return event;
}

// Whether the peer with `token` satisfies `requirement`, checked with the
// Security framework at accept time (all macOS versions), so a refused peer
// can be told why. Fills `why` when it does not.
bool SatisfiesRequirement(const audit_token_t& token, const std::string& requirement, std::string* why) {
  SecRequirementRef req = nullptr;
  CFStringRef text = CFStringCreateWithCString(kCFAllocatorDefault, requirement.c_str(), kCFStringEncodingUTF8);
  OSStatus status = SecRequirementCreateWithString(text, kSecCSDefaultFlags, &req);
  CFRelease(text);
  if (status != errSecSuccess) {
    *why = "the broker's code-signing requirement does not parse (OSStatus " + std::to_string(status) + ")";
    return false;
  }
  CFDataRef audit = CFDataCreate(kCFAllocatorDefault, reinterpret_cast<const UInt8*>(&token), sizeof(token));
  const void* keys[] = {kSecGuestAttributeAudit};
  const void* values[] = {audit};
  CFDictionaryRef attributes = CFDictionaryCreate(kCFAllocatorDefault, keys, values, 1, &kCFTypeDictionaryKeyCallBacks,
                                                  &kCFTypeDictionaryValueCallBacks);
  SecCodeRef code = nullptr;
  status = SecCodeCopyGuestWithAttributes(nullptr, attributes, kSecCSDefaultFlags, &code);
  CFRelease(attributes);
  CFRelease(audit);
  if (status == errSecSuccess) status = SecCodeCheckValidity(code, kSecCSDefaultFlags, req);
  if (code != nullptr) CFRelease(code);
  CFRelease(req);
  if (status != errSecSuccess) {
    *why = "the peer does not satisfy the code-signing requirement \"" + requirement + "\" (OSStatus " +
           std::to_string(status) + ")";
    return false;
  }
  return true;
}

// The team identifier the peer's code is signed with, or "" (unsigned, ad hoc, or unknown).
std::string TeamIdentifier(const audit_token_t& token) {
  CFDataRef audit = CFDataCreate(kCFAllocatorDefault, reinterpret_cast<const UInt8*>(&token), sizeof(token));
  const void* keys[] = {kSecGuestAttributeAudit};
  const void* values[] = {audit};
  CFDictionaryRef attributes = CFDictionaryCreate(kCFAllocatorDefault, keys, values, 1, &kCFTypeDictionaryKeyCallBacks,
                                                  &kCFTypeDictionaryValueCallBacks);
  SecCodeRef code = nullptr;
  std::string team;
  if (SecCodeCopyGuestWithAttributes(nullptr, attributes, kSecCSDefaultFlags, &code) == errSecSuccess) {
    SecStaticCodeRef on_disk = nullptr;
    CFDictionaryRef info = nullptr;
    if (SecCodeCopyStaticCode(code, kSecCSDefaultFlags, &on_disk) == errSecSuccess &&
        SecCodeCopySigningInformation(on_disk, kSecCSSigningInformation, &info) == errSecSuccess && info != nullptr) {
      CFTypeRef value = CFDictionaryGetValue(info, kSecCodeInfoTeamIdentifier);
      char buffer[64];
      if (value != nullptr && CFGetTypeID(value) == CFStringGetTypeID() &&
          CFStringGetCString(static_cast<CFStringRef>(value), buffer, sizeof(buffer), kCFStringEncodingUTF8)) {
        team = buffer;
      }
    }
    if (info != nullptr) CFRelease(info);
    if (on_disk != nullptr) CFRelease(on_disk);
    CFRelease(code);
  }
  CFRelease(attributes);
  CFRelease(audit);
  return team;
}

// codeSatisfies(auditToken: Buffer, requirement: string) -> boolean, for the policy's codeSigning rules.
Napi::Value CodeSatisfies(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string requirement;
  if (info.Length() < 1 || !info[0].IsBuffer() || info[0].As<Napi::Buffer<char>>().Length() != sizeof(audit_token_t) ||
      !ReadString(info, 1, "requirement", &requirement)) {
    if (!env.IsExceptionPending()) Napi::TypeError::New(env, "codeSatisfies(auditToken: Buffer(32), requirement)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  audit_token_t token;
  std::memcpy(&token, info[0].As<Napi::Buffer<char>>().Data(), sizeof(token));
  std::string why;
  return Napi::Boolean::New(env, SatisfiesRequirement(token, requirement, &why));
}

void SendError(xpc_connection_t peer, const char* code, const std::string& reason) {
  xpc_object_t err = xpc_dictionary_create(nullptr, nullptr, 0);
  xpc_dictionary_set_string(err, "op", "err");
  xpc_dictionary_set_string(err, "code", code);
  xpc_dictionary_set_string(err, "reason", reason.c_str());
  xpc_connection_send_message(peer, err);
  xpc_release(err);
}

}  // namespace

// ---------------------------------------------------------------------------

class XpcListener : public Napi::ObjectWrap<XpcListener> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "XpcListener",
                       {InstanceMethod<&XpcListener::Start>("start"),
                        InstanceMethod<&XpcListener::Endpoint>("endpoint"),
                        InstanceMethod<&XpcListener::Send>("send"),
                        InstanceMethod<&XpcListener::Reply>("reply"),
                        InstanceMethod<&XpcListener::Cancel>("cancel"),
                        InstanceMethod<&XpcListener::Close>("close")});
  }

  // new XpcListener(service: string | null, onEvent, { codeSigningRequirement? })
  // service null: an anonymous listener, reached through endpoint().
  explicit XpcListener(const Napi::CallbackInfo& info) : Napi::ObjectWrap<XpcListener>(info) {
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

  ~XpcListener() override { Shutdown(); }

 private:
  struct State {
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
      identity->pid = xpc_connection_get_pid(peer);
      identity->uid = xpc_connection_get_euid(peer);
      identity->gid = xpc_connection_get_egid(peer);
      audit_token_t token;
      xpc_connection_get_audit_token(peer, &token);
      char path[PROC_PIDPATHINFO_MAXSIZE];
      int n = 0;
      if (__builtin_available(macOS 11.0, *)) {
        n = proc_pidpath_audittoken(&token, path, sizeof(path));
      } else {
        n = proc_pidpath(static_cast<int>(identity->pid), path, sizeof(path));
      }
      if (n > 0) identity->exe.assign(path, static_cast<size_t>(n));
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
        self->OnPeerEvent(id, peer, event);
      });
      if (!requirement.empty()) {
        std::string why;
        if (!SatisfiesRequirement(token, requirement, &why)) {
          // Tell the peer before cancelling, so it sees a reason, not just INTERRUPTED.
          xpc_connection_resume(peer);
          SendError(peer, "code_signing_failed", why);
          xpc_connection_send_barrier(peer, ^{
            xpc_connection_cancel(peer);
          });
          identity->kind = "refused";
          identity->reason = why;
          sink->Emit(identity);
          return;
        }
        if (__builtin_available(macOS 12.0, *)) {
          // Enforced by XPC from here on, for every message.
          if (xpc_connection_set_peer_code_signing_requirement(peer, requirement.c_str()) != 0) {
            identity->reason = "xpc_connection_set_peer_code_signing_requirement failed";
          }
        }
      }
      xpc_connection_resume(peer);
      sink->Emit(identity);
    }

    void OnPeerEvent(uint32_t id, xpc_connection_t peer, xpc_object_t event) {
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
        SendError(peer, "code_signing_failed", "the peer no longer satisfies the code-signing requirement");
        xpc_connection_cancel(peer);
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

  bool Open(Napi::Env env) {
    if (state_) return true;
    Napi::Error::New(env, "the XPC listener is closed").ThrowAsJavaScriptException();
    return false;
  }

  bool ReadPeer(const Napi::CallbackInfo& info, size_t arg, uint32_t* out) {
    double value;
    if (!ReadNumber(info, arg, "peer", &value)) return false;
    *out = static_cast<uint32_t>(value);
    return true;
  }

  Napi::Value Start(const Napi::CallbackInfo& info) {
    if (Open(info.Env())) xpc_connection_resume(state_->listener);
    return info.Env().Undefined();
  }

  // endpoint() -> External: for xpc_connection_create_from_endpoint (anonymous listeners).
  Napi::Value Endpoint(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!Open(env)) return env.Undefined();
    return WrapXpc(env, xpc_endpoint_create(state_->listener));
  }

  // send(peer, encoded): false when the peer is gone.
  Napi::Value Send(const Napi::CallbackInfo& info) {
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
  Napi::Value Reply(const Napi::CallbackInfo& info) {
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
  Napi::Value Cancel(const Napi::CallbackInfo& info) {
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

  void Shutdown() {
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

  Napi::Value Close(const Napi::CallbackInfo& info) {
    Shutdown();
    return info.Env().Undefined();
  }

  std::shared_ptr<State> state_;
};

// ---------------------------------------------------------------------------

class XpcClient : public Napi::ObjectWrap<XpcClient> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "XpcClient",
                       {InstanceMethod<&XpcClient::Send>("send"),
                        InstanceMethod<&XpcClient::SendWithReply>("sendWithReply"),
                        InstanceMethod<&XpcClient::Cancel>("cancel")});
  }

  // new XpcClient(service | endpoint, onEvent, { privileged? }): connects and resumes.
  explicit XpcClient(const Napi::CallbackInfo& info) : Napi::ObjectWrap<XpcClient>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !(info[0].IsString() || info[0].IsExternal()) || !info[1].IsFunction()) {
      Napi::TypeError::New(env, "new XpcClient(service | endpoint, onEvent, options?)").ThrowAsJavaScriptException();
      return;
    }
    bool privileged = false;
    if (info.Length() > 2 && info[2].IsObject()) {
      Napi::Value v = info[2].As<Napi::Object>().Get("privileged");
      privileged = v.IsBoolean() && v.As<Napi::Boolean>().Value();
    }
    sink_ = NewSink(env, info[1].As<Napi::Function>(), "xpcbus.xpc.client");
    queue_ = dispatch_queue_create("io.xpcbus.xpc.client", DISPATCH_QUEUE_SERIAL);
    if (info[0].IsString()) {
      std::string service = info[0].As<Napi::String>().Utf8Value();
      // PRIVILEGED only for a system daemon: it makes launchd look the name up in the system domain.
      connection_ = xpc_connection_create_mach_service(service.c_str(), queue_, privileged ? XPC_CONNECTION_MACH_SERVICE_PRIVILEGED : 0);
    } else {
      xpc_endpoint_t endpoint = static_cast<xpc_endpoint_t>(info[0].As<Napi::External<void>>().Data());
      connection_ = xpc_connection_create_from_endpoint(endpoint);
      xpc_connection_set_target_queue(connection_, queue_);
    }
    std::shared_ptr<EventSink> sink = sink_;
    xpc_connection_set_event_handler(connection_, ^(xpc_object_t event) {
      std::shared_ptr<Event> e;
      if (xpc_get_type(event) == XPC_TYPE_DICTIONARY) {
        std::string error;
        e = MessageEvent("message", 0, event, &error);
        if (!e) {
          e = std::make_shared<Event>();
          e->kind = "fault";
          e->reason = error;
        }
      } else if (event == XPC_ERROR_CONNECTION_INTERRUPTED) {
        e = std::make_shared<Event>();
        e->kind = "interrupted";
        e->reason = "the broker's connection was interrupted (it exited or restarted)";
      } else if (event == XPC_ERROR_CONNECTION_INVALID) {
        e = std::make_shared<Event>();
        e->kind = "invalid";
        e->reason = "the XPC connection is invalid (no such service, or it was cancelled)";
      } else {
        return;
      }
      sink->Emit(e);
    });
    xpc_connection_resume(connection_);
  }

  ~XpcClient() override { Shutdown(); }

 private:
  bool Encoded(const Napi::CallbackInfo& info, xpc_object_t* out) {
    if (connection_ == nullptr) {
      Napi::Error::New(info.Env(), "the XPC connection is closed").ThrowAsJavaScriptException();
      return false;
    }
    return EncodeMap(info, "XPC message", out);
  }

  Napi::Value Send(const Napi::CallbackInfo& info) {
    xpc_object_t message;
    if (!Encoded(info, &message)) return info.Env().Undefined();
    xpc_connection_send_message(connection_, message);
    xpc_release(message);
    return info.Env().Undefined();
  }

  // sendWithReply(message): the reply arrives as a { kind: "reply" } event.
  Napi::Value SendWithReply(const Napi::CallbackInfo& info) {
    xpc_object_t message;
    if (!Encoded(info, &message)) return info.Env().Undefined();
    std::shared_ptr<EventSink> sink = sink_;
    xpc_connection_send_message_with_reply(connection_, message, queue_, ^(xpc_object_t reply) {
      if (xpc_get_type(reply) != XPC_TYPE_DICTIONARY) return;  // errors reach the event handler too
      std::string error;
      std::shared_ptr<Event> e = MessageEvent("reply", 0, reply, &error);
      if (e) sink->Emit(e);
    });
    xpc_release(message);
    return info.Env().Undefined();
  }

  void Shutdown() {
    if (connection_ == nullptr) return;
    sink_->Close();
    xpc_connection_cancel(connection_);
    xpc_release(connection_);
    connection_ = nullptr;
    dispatch_release(queue_);
  }

  Napi::Value Cancel(const Napi::CallbackInfo& info) {
    Shutdown();
    return info.Env().Undefined();
  }

  std::shared_ptr<EventSink> sink_;
  dispatch_queue_t queue_ = nullptr;
  xpc_connection_t connection_ = nullptr;
};

void InitXpc(Napi::Env env, Napi::Object exports) {
  exports.Set("xpcEncode", Napi::Function::New(env, Encode, "xpcEncode"));
  exports.Set("codeSatisfies", Napi::Function::New(env, CodeSatisfies, "codeSatisfies"));
  exports.Set("XpcListener", XpcListener::Init(env));
  exports.Set("XpcClient", XpcClient::Init(env));
}

}  // namespace xpcbus
