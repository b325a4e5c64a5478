// The XPC transport's client connection, mechanically: to a mach service, or
// to an anonymous listener's endpoint. Messages, replies and the
// connection's errors go to JS as events; what they mean is decided in
// client-sdk/xpc-client-transport.ts. The handlers hold the CallSink by
// shared_ptr, so one that runs after cancel() finds it ended and does nothing.
#include "apple/xpc_client.h"

#include <string>

#include "apple/xpc_shared.h"
#include "call_sink.h"

namespace xpcbus {

Napi::Function XpcClient::Init(Napi::Env env) {
  return DefineClass(env, "XpcClient",
                     {InstanceMethod<&XpcClient::Send>("send"),
                      InstanceMethod<&XpcClient::SendWithReply>("sendWithReply"),
                      InstanceMethod<&XpcClient::Cancel>("cancel")});
}

XpcClient::XpcClient(const Napi::CallbackInfo& info) : Napi::ObjectWrap<XpcClient>(info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !(info[0].IsString() || info[0].IsExternal()) || !info[1].IsFunction()) {
    Napi::TypeError::New(env, "new XpcClient(service | endpoint, onEvent, options?)").ThrowAsJavaScriptException();
    return;
  }
  xpc_object_t endpoint = nullptr;
  if (!info[0].IsString() &&
      !UnwrapXpc(env, info[0], XpcKind::Endpoint, "new XpcClient(endpoint, ...): endpoint must come from an XpcListener's endpoint()",
                 &endpoint)) {
    return;
  }
  bool privileged = false;
  std::string requirement;
  if (info.Length() > 2 && info[2].IsObject()) {
    Napi::Object options = info[2].As<Napi::Object>();
    Napi::Value v = options.Get("privileged");
    if (env.IsExceptionPending()) return;  // a getter threw: let it propagate
    privileged = v.IsBoolean() && v.As<Napi::Boolean>().Value();
    Napi::Value r = options.Get("brokerRequirement");
    if (env.IsExceptionPending()) return;
    if (r.IsString()) requirement = r.As<Napi::String>().Utf8Value();
  }
  // Keeps the process alive while connected, as an open socket does.
  sink_ = CallSink::New(env, info[1].As<Napi::Function>(), "xpcbus.xpc.client", true);
  queue_ = dispatch_queue_create("io.xpcbus.xpc.client", DISPATCH_QUEUE_SERIAL);
  if (endpoint == nullptr) {
    std::string service = info[0].As<Napi::String>().Utf8Value();
    // PRIVILEGED only for a system daemon: it makes launchd look the name up in the system domain.
    connection_ = xpc_connection_create_mach_service(service.c_str(), queue_, privileged ? XPC_CONNECTION_MACH_SERVICE_PRIVILEGED : 0);
  } else {
    connection_ = xpc_connection_create_from_endpoint(static_cast<xpc_endpoint_t>(endpoint));
    xpc_connection_set_target_queue(connection_, queue_);
  }
  // The broker's code must satisfy `requirement`: XPC checks every message
  // itself from macOS 12 (set below, once the handler is in place); before,
  // the first message's sender is checked here through its audit token.
  // 0: not checked yet; 1: trusted (or nothing to check); 2: refused.
  // Read and written on the XPC queue alone, once the connection is active.
  trust_ = std::make_shared<int>(requirement.empty() ? 1 : 0);
  std::shared_ptr<int> trust = trust_;
  std::shared_ptr<CallSink> sink = sink_;
  xpc_connection_set_event_handler(connection_, ^(xpc_object_t event) {
    std::shared_ptr<Event> e;
    if (xpc_get_type(event) == XPC_TYPE_DICTIONARY && *trust != 1) {
      if (*trust == 2) return;  // refused: nothing from this broker reaches JS
      xpc_connection_t remote = xpc_dictionary_get_remote_connection(event);
      CodeSigningResult check;
      if (remote != nullptr) {
        audit_token_t token;
        xpc_connection_get_audit_token(remote, &token);
        check = CheckCodeSigning(token, requirement);
      }
      if (!check.satisfied) {
        *trust = 2;
        e = std::make_shared<Event>();
        e->kind = "untrusted";
        e->reason = check.requirement_parsed
                        ? "the broker's code does not satisfy the brokerRequirement (OSStatus " + std::to_string(check.status) + ")"
                        : "brokerRequirement is not a code-signing requirement (OSStatus " + std::to_string(check.status) + ")";
        EmitEvent(*sink, e);
        return;
      }
      *trust = 1;
    }
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
      if (__builtin_available(macOS 12.0, *)) {
        if (event == XPC_ERROR_PEER_CODE_SIGNING_REQUIREMENT) {
          e = std::make_shared<Event>();
          e->kind = "untrusted";
          e->reason = "the broker's code does not satisfy the brokerRequirement (XPC refused its messages)";
          EmitEvent(*sink, e);
        }
      }
      return;
    }
    EmitEvent(*sink, e);
  });
  if (!requirement.empty()) {
    if (__builtin_available(macOS 12.0, *)) {
      // Before activation (the queue runs nothing yet): XPC enforces it from now on.
      if (xpc_connection_set_peer_code_signing_requirement(connection_, requirement.c_str()) != 0) {
        xpc_connection_activate(connection_);  // never released inactive
        Shutdown();
        Napi::TypeError::New(env, "brokerRequirement is not a code-signing requirement XPC accepts").ThrowAsJavaScriptException();
        return;
      }
      *trust = 1;
    }
  }
  // Activated exactly once, here: the connection is never inactive when
  // released (xpc/connection.h makes that undefined).
  xpc_connection_activate(connection_);
  // After the sink, so it runs before Node tears the function down (hooks
  // run last-in first-out); as the Linux notify waiter does.
  env_ = env;
  if (napi_add_env_cleanup_hook(env, &XpcClient::EnvCleanup, this) == napi_ok) hooked_ = true;
}

XpcClient::~XpcClient() { Shutdown(); }

void XpcClient::EnvCleanup(void* arg) {
  auto* self = static_cast<XpcClient*>(arg);
  self->hooked_ = false;  // Node drops a hook once it has run
  self->Shutdown();
}

bool XpcClient::Encoded(const Napi::CallbackInfo& info, xpc_object_t* out) {
  if (connection_ == nullptr) {
    Napi::Error::New(info.Env(), "the XPC connection is closed").ThrowAsJavaScriptException();
    return false;
  }
  return EncodeMap(info, "XPC message", out);
}

Napi::Value XpcClient::Send(const Napi::CallbackInfo& info) {
  xpc_object_t message;
  if (!Encoded(info, &message)) return info.Env().Undefined();
  xpc_connection_send_message(connection_, message);
  xpc_release(message);
  return info.Env().Undefined();
}

// sendWithReply(message): the reply arrives as a { kind: "reply" } event.
Napi::Value XpcClient::SendWithReply(const Napi::CallbackInfo& info) {
  xpc_object_t message;
  if (!Encoded(info, &message)) return info.Env().Undefined();
  std::shared_ptr<CallSink> sink = sink_;
  std::shared_ptr<int> trust = trust_;
  xpc_connection_send_message_with_reply(connection_, message, queue_, ^(xpc_object_t reply) {
    if (xpc_get_type(reply) != XPC_TYPE_DICTIONARY) return;  // errors reach the event handler too
    if (*trust != 1) return;  // from a broker not (yet) found to satisfy brokerRequirement
    std::string error;
    std::shared_ptr<Event> e = MessageEvent("reply", 0, reply, &error);
    if (e) EmitEvent(*sink, e);
  });
  xpc_release(message);
  return info.Env().Undefined();
}

// Idempotent: from cancel(), the finalizer, or the environment's teardown.
void XpcClient::Shutdown() {
  if (hooked_) {
    napi_remove_env_cleanup_hook(env_, &XpcClient::EnvCleanup, this);
    hooked_ = false;
  }
  if (connection_ == nullptr) return;
  sink_->End();
  sink_.reset();
  xpc_connection_cancel(connection_);
  xpc_release(connection_);
  connection_ = nullptr;
  dispatch_release(queue_);
  queue_ = nullptr;
}

Napi::Value XpcClient::Cancel(const Napi::CallbackInfo& info) {
  Shutdown();
  return info.Env().Undefined();
}

}  // namespace xpcbus
