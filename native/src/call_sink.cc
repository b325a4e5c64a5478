// See call_sink.h.
#include "call_sink.h"

#include "platform.h"

namespace xpcbus {

std::shared_ptr<CallSink> CallSink::New(Napi::Env env, Napi::Function fn, const char* name, bool keep_alive) {
  auto sink = std::make_shared<CallSink>();
  // The finalizer's context keeps the sink alive until Node is done with the
  // function, whatever order teardown runs in.
  auto* held = new std::shared_ptr<CallSink>(sink);
  sink->tsfn_ = Function::New(env, fn, name, 0, 1, held, &CallSink::Finalize, held);
  if (!keep_alive) sink->tsfn_.Unref(env);
  return sink;
}

void CallSink::CallJs(Napi::Env env, Napi::Function fn, std::shared_ptr<CallSink>* /*context*/, Call* call) {
  if (call == nullptr) return;
  if (static_cast<napi_env>(env) != nullptr) (*call)(env, fn);
  delete call;
}

void CallSink::Finalize(Napi::Env, std::shared_ptr<CallSink>* held, std::shared_ptr<CallSink>* /*context: the same*/) {
  CallSink* self = held->get();
  {
    std::lock_guard<std::mutex> lock(self->mutex_);
    self->ended_ = true;
    self->gone_ = true;
  }
  delete held;
}

bool CallSink::Queue(Call call) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (ended_) return false;
  auto* boxed = new Call(std::move(call));
  napi_status status = tsfn_.NonBlockingCall(boxed);
  if (status == napi_ok) return true;
  delete boxed;
  if (status == napi_closing) {
    // Torn down under us: never touch the function again.
    ended_ = true;
    gone_ = true;
  }
  return false;
}

void CallSink::End() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (ended_) return;
  ended_ = true;
  if (!gone_) {
    gone_ = true;
    tsfn_.Release();
  }
}

bool CallSink::ended() {
  std::lock_guard<std::mutex> lock(mutex_);
  return ended_;
}

std::shared_ptr<WakeSignal> WakeSignal::New(Napi::Env env, Napi::Function on_wake, const char* name) {
  auto wake = std::make_shared<WakeSignal>();
  wake->sink_ = CallSink::New(env, on_wake, name, false);
  return wake;
}

void WakeSignal::Signal() {
  if (pending_.exchange(true)) return;  // a call is already queued: it will see this change too
  std::weak_ptr<WakeSignal> self = weak_from_this();
  // False once the sink has ended (closed, or the environment is going): nobody is left to tell.
  bool queued = sink_->Queue([self](Napi::Env env, Napi::Function on_wake) {
    std::shared_ptr<WakeSignal> wake = self.lock();
    if (wake == nullptr) return;
    wake->pending_.store(false);
    if (!on_wake.IsEmpty()) CallOnWake(env, on_wake);
  });
  if (!queued) pending_.store(false);
}

}  // namespace xpcbus
