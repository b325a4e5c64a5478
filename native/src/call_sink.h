// CallSink: the one way native threads (futex waiters, XPC and dispatch
// queues) call into JS. A ThreadSafeFunction that any thread may call at any
// time and that ends exactly once, whichever comes first:
//  - End(): the owner's close(), finalizer or environment cleanup hook;
//  - the function's own finalizer: Node finalizes it at environment teardown
//    even while other threads still hold it (nodejs/node#55706, Node <= 24.13);
//  - a call answered napi_closing: the function is being torn down.
// After any of these no call is queued, and Release() is called at most once,
// and never on a function Node has finalized or reported closing. Checked on
// Linux by the notify waiter's tests (Worker exit while waking, the process
// exiting with watchers asleep), which use it as the XPC listener, client and
// notify center on macOS do.
#pragma once

#include <napi.h>

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>

namespace xpcbus {

class CallSink {
 public:
  using Call = std::function<void(Napi::Env env, Napi::Function fn)>;

  // A sink calling `fn`; with keep_alive false it does not keep the event
  // loop alive on its own (an idle watcher must not).
  static std::shared_ptr<CallSink> New(Napi::Env env, Napi::Function fn, const char* name, bool keep_alive);

  // From any thread: queues `call` for the JS thread; false when the sink has
  // ended (then `call` never runs). `call` runs with env == nullptr if Node
  // drops it at teardown: it must then do nothing.
  bool Queue(Call call);

  // From any thread, idempotent: no call is queued from now on.
  void End();

  bool ended();

 private:
  // Runs each queued call; with env == nullptr (torn down with calls still
  // queued) it only frees them. The typed form is used for that: the untyped
  // one's wrapper leaks a call Node drops at teardown.
  static void CallJs(Napi::Env env, Napi::Function fn, std::shared_ptr<CallSink>* context, Call* call);
  using Function = Napi::TypedThreadSafeFunction<std::shared_ptr<CallSink>, Call, &CallSink::CallJs>;
  static void Finalize(Napi::Env env, std::shared_ptr<CallSink>* held, std::shared_ptr<CallSink>* context);

  std::mutex mutex_;
  bool ended_ = false;
  // Node has finalized the function, or said it is closing: it is not ours to release.
  bool gone_ = false;
  Function tsfn_;
};

// A wake-up for JS that coalesces: Signal() from any thread queues one call
// of `onWake()` (no arguments) unless one is already queued, so a burst of
// signals costs the JS thread one call, which sees all that changed before
// it ran. What changed is the caller's to keep (a set of tokens, the
// generations of a mapping). Used by the Linux notify waiter and the macOS
// notify center alike.
class WakeSignal : public std::enable_shared_from_this<WakeSignal> {
 public:
  // Does not keep the event loop alive: an idle watcher must not.
  static std::shared_ptr<WakeSignal> New(Napi::Env env, Napi::Function on_wake, const char* name);

  void Signal();

  // Idempotent: no call is queued from now on (CallSink::End).
  void End() { sink_->End(); }

 private:
  std::shared_ptr<CallSink> sink_;
  std::atomic<bool> pending_{false};
};

}  // namespace xpcbus
