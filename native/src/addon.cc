// The addon's entry point: platform-neutral conversion between the platform
// halves and JS. No global state, so it loads in any number of worker threads.
#include <napi.h>

#include <cstring>

#include "peer_credentials.h"
#include "platform.h"
#include "value_tree.h"

namespace {

// peerCredentials(fd: number) -> { pid, uid, gid, exe, exeVerified, exeError, method }
// Throws a TypeError for a bad argument and an Error with `errno` when the
// socket has no readable credentials.
Napi::Value PeerCredentialsJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) {
    Napi::TypeError::New(env, "peerCredentials(fd): fd must be a number").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int fd = info[0].As<Napi::Number>().Int32Value();
  if (fd < 0) {
    Napi::TypeError::New(env, "peerCredentials(fd): fd must be >= 0").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  xpcbus::PeerCredentials creds;
  int err = xpcbus::ReadPeerCredentials(fd, &creds);
  if (err != 0) {
    Napi::Error e = Napi::Error::New(env, std::string("cannot read peer credentials: ") + std::strerror(err));
    e.Set("errno", Napi::Number::New(env, err));
    e.ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Object out = Napi::Object::New(env);
  auto id = [&](long v) -> Napi::Value { return v < 0 ? env.Null() : Napi::Number::New(env, static_cast<double>(v)); };
  out.Set("pid", id(creds.pid));
  out.Set("uid", id(creds.uid));
  out.Set("gid", id(creds.gid));
  bool verified = creds.has_exe && creds.exe_verified;
  out.Set("exe", creds.has_exe ? Napi::String::New(env, creds.exe) : env.Null());
  out.Set("exeVerified", Napi::Boolean::New(env, verified));
  out.Set("exeError", verified ? env.Null() : Napi::String::New(env, creds.exe_error));
  out.Set("method", Napi::String::New(env, creds.method));
  return out;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("peerCredentials", Napi::Function::New(env, PeerCredentialsJs, "peerCredentials"));
  exports.Set("platform", Napi::String::New(env, xpcbus::kPlatformName));
  xpcbus::InitValueTree(env, exports);
  xpcbus::InitPlatform(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(xpcbus_native, Init)
