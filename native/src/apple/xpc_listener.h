// XpcListener: the broker's end of the XPC transport (xpc_listener.cc).
#pragma once

#include <napi.h>

#include <cstdint>
#include <memory>

namespace xpcbus {

class XpcListener : public Napi::ObjectWrap<XpcListener> {
 public:
  static Napi::Function Init(Napi::Env env);

  // new XpcListener(service: string | null, onEvent, { codeSigningRequirement? })
  // service null: an anonymous listener, reached through endpoint().
  explicit XpcListener(const Napi::CallbackInfo& info);
  ~XpcListener() override;

 private:
  // Shared with every block XPC holds (the listener's and each peer's event
  // handler, barriers): it outlives Shutdown() until the last of them is gone.
  struct State;

  static void EnvCleanup(void* arg);
  bool Open(Napi::Env env);
  bool ReadPeer(const Napi::CallbackInfo& info, size_t arg, uint32_t* out);
  Napi::Value Start(const Napi::CallbackInfo& info);
  Napi::Value Endpoint(const Napi::CallbackInfo& info);
  Napi::Value Send(const Napi::CallbackInfo& info);
  Napi::Value Reply(const Napi::CallbackInfo& info);
  Napi::Value Cancel(const Napi::CallbackInfo& info);
  void Shutdown();
  Napi::Value Close(const Napi::CallbackInfo& info);

  std::shared_ptr<State> state_;
  napi_env env_ = nullptr;
  bool hooked_ = false;  // the environment cleanup hook is registered
};

}  // namespace xpcbus
