// What the XPC listener and client share (xpc_shared.h).
#include "apple/xpc_shared.h"

#include "apple/xpc_value.h"

#include <utility>

namespace xpcbus {

namespace {

Napi::Object EventToJs(Napi::Env env, const Event& event) {
  Napi::Object out = Napi::Object::New(env);
  out.Set("kind", event.kind);
  if (event.peer != 0) out.Set("peer", event.peer);
  if (event.reply_token != 0) out.Set("replyToken", event.reply_token);
  if (event.has_message) out.Set("message", TreeToJs(env, event.message));
  if (!event.reason.empty()) out.Set("reason", event.reason);
  if (event.kind == "peer") {
    const PeerCredentials& who = event.identity;
    bool verified = who.has_exe && who.exe_verified;
    Napi::Object identity = Napi::Object::New(env);
    identity.Set("pid", who.pid < 0 ? env.Null() : Napi::Number::New(env, who.pid));
    identity.Set("uid", who.uid < 0 ? env.Null() : Napi::Number::New(env, who.uid));
    identity.Set("gid", who.gid < 0 ? env.Null() : Napi::Number::New(env, who.gid));
    identity.Set("exe", who.has_exe ? Napi::String::New(env, who.exe) : env.Null());
    identity.Set("exeVerified", Napi::Boolean::New(env, verified));
    identity.Set("exeError", verified ? env.Null() : Napi::String::New(env, who.exe_error));
    identity.Set("method", "xpc_audit_token");
    identity.Set("teamId", event.team_id.empty() ? env.Null() : Napi::String::New(env, event.team_id));
    identity.Set("auditToken", Napi::Buffer<char>::Copy(env, event.audit_token.data(), event.audit_token.size()));
    out.Set("identity", identity);
    if (event.has_code_signing) {
      Napi::Object check = Napi::Object::New(env);
      check.Set("requirement", event.requirement);
      check.Set("requirementParsed", event.code_signing.requirement_parsed);
      check.Set("satisfied", event.code_signing.satisfied);
      check.Set("osStatus", Napi::Number::New(env, event.code_signing.status));
      check.Set("enforcedByXpc", event.enforced_by_xpc);
      out.Set("codeSigning", check);
    }
  }
  return out;
}

}  // namespace

bool EmitEvent(CallSink& sink, std::shared_ptr<Event> event, std::function<void()> delivered) {
  return sink.Queue([event = std::move(event), delivered = std::move(delivered)](Napi::Env env, Napi::Function on_event) {
    if (!on_event.IsEmpty()) {
      napi_value argument = EventToJs(env, *event);
      napi_value recv = nullptr;
      napi_value result = nullptr;
      napi_get_undefined(env, &recv);
      // A JS exception stays pending: Node reports it as uncaught, as for any callback.
      napi_call_function(env, recv, on_event, 1, &argument, &result);
    }
    if (delivered) delivered();
  });
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

size_t TreeCost(const ValueNode& node) {
  size_t cost = sizeof(ValueNode) + node.text.size();
  for (const ValueNode& item : node.items) cost += TreeCost(item);
  for (const auto& field : node.fields) cost += field.first.size() + TreeCost(field.second);
  return cost;
}

namespace {

// Distinct, random 128-bit tags (napi_type_tag_object, N-API 8; Externals
// can be tagged from Node 20, the oldest this package supports).
constexpr napi_type_tag kMessageTag = {0x8d3f6a5be1c24f07ULL, 0xa61e93c0d4b7f215ULL};
constexpr napi_type_tag kEndpointTag = {0x2c7be4910f5d4a86ULL, 0xb3f80d6e19a5c742ULL};

const napi_type_tag* TagOf(XpcKind kind) { return kind == XpcKind::Message ? &kMessageTag : &kEndpointTag; }

}  // namespace

Napi::Value WrapXpc(Napi::Env env, xpc_object_t object, XpcKind kind) {
  Napi::External<void> external =
      Napi::External<void>::New(env, object, [](Napi::Env, void* data) { xpc_release(static_cast<xpc_object_t>(data)); });
  if (env.IsExceptionPending()) {
    xpc_release(object);
    return Napi::Value();
  }
  external.TypeTag(TagOf(kind));
  if (env.IsExceptionPending()) return Napi::Value();  // the finalizer still releases `object`
  return external;
}

bool UnwrapXpc(Napi::Env env, Napi::Value value, XpcKind kind, const char* what, xpc_object_t* out) {
  // Checked before the pointer is read: XPC aborts the process on an object
  // of the wrong type, and an untagged External could hold anything.
  if (value.IsEmpty() || !value.IsExternal() || !value.As<Napi::External<void>>().CheckTypeTag(TagOf(kind))) {
    if (!env.IsExceptionPending()) Napi::TypeError::New(env, what).ThrowAsJavaScriptException();
    return false;
  }
  *out = static_cast<xpc_object_t>(value.As<Napi::External<void>>().Data());
  return true;
}

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

Napi::Value Encode(const Napi::CallbackInfo& info) {
  xpc_object_t message;
  if (!EncodeMap(info, "xpcEncode(message)", &message)) return info.Env().Undefined();
  return WrapXpc(info.Env(), message, XpcKind::Message);
}

}  // namespace xpcbus
