// XpcClient: a client's end of the XPC transport (xpc_client.cc).
#pragma once

#include <dispatch/dispatch.h>
#include <napi.h>
#include <xpc/xpc.h>

#include <memory>

namespace xpcbus {

class CallSink;  // call_sink.h

class XpcClient : public Napi::ObjectWrap<XpcClient> {
 public:
  static Napi::Function Init(Napi::Env env);

  // new XpcClient(service | endpoint, onEvent, { privileged?, brokerRequirement? }):
  // connects and activates; cancel() (or the finalizer, or the
  // environment's teardown) ends it for good. With brokerRequirement, a
  // message from a broker whose code does not satisfy it is not delivered:
  // an { kind: "untrusted" } event is, once.
  explicit XpcClient(const Napi::CallbackInfo& info);
  ~XpcClient() override;

 private:
  static void EnvCleanup(void* arg);
  bool Encoded(const Napi::CallbackInfo& info, xpc_object_t* out);
  Napi::Value Send(const Napi::CallbackInfo& info);
  Napi::Value SendWithReply(const Napi::CallbackInfo& info);
  void Shutdown();
  Napi::Value Cancel(const Napi::CallbackInfo& info);

  // Set while the connection is open (created and activated in the
  // constructor); all null once cancelled.
  std::shared_ptr<CallSink> sink_;
  // brokerRequirement: 0 not checked yet, 1 trusted (or nothing to check), 2 refused; touched on queue_ only.
  std::shared_ptr<int> trust_;
  dispatch_queue_t queue_ = nullptr;
  xpc_connection_t connection_ = nullptr;
  napi_env env_ = nullptr;
  bool hooked_ = false;  // the environment cleanup hook is registered
};

}  // namespace xpcbus
