// XpcClient: a client's end of the XPC transport (xpc_client.cc).
#pragma once

#include <dispatch/dispatch.h>
#include <napi.h>
#include <xpc/xpc.h>

#include <memory>

namespace xpcbus {

struct EventSink;  // apple/xpc_shared.h

class XpcClient : public Napi::ObjectWrap<XpcClient> {
 public:
  static Napi::Function Init(Napi::Env env);

  // new XpcClient(service | endpoint, onEvent, { privileged? }): connects and resumes.
  explicit XpcClient(const Napi::CallbackInfo& info);
  ~XpcClient() override;

 private:
  bool Encoded(const Napi::CallbackInfo& info, xpc_object_t* out);
  Napi::Value Send(const Napi::CallbackInfo& info);
  Napi::Value SendWithReply(const Napi::CallbackInfo& info);
  void Shutdown();
  Napi::Value Cancel(const Napi::CallbackInfo& info);

  std::shared_ptr<EventSink> sink_;
  dispatch_queue_t queue_ = nullptr;
  xpc_connection_t connection_ = nullptr;
};

}  // namespace xpcbus
