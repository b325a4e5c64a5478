// NotifyWaiter: threads asleep on the generations of slots of a reader's
// mapping, which call onWake on the JS thread (coalesced).
#pragma once

#include <napi.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "call_sink.h"
#include "linux/native_thread.h"
#include "linux/table_mapping.h"

namespace xpcbus {

class NotifyWaiter : public Napi::ObjectWrap<NotifyWaiter> {
 public:
  static Napi::Function Init(Napi::Env env);

  // new NotifyWaiter(reader, onWake, { perSlot?: boolean }): onWake() is called
  // on the JS thread after any watched slot's generation moved (coalesced).
  explicit NotifyWaiter(const Napi::CallbackInfo& info);

  ~NotifyWaiter() override { Shutdown(); }

 private:
  // State shared with the threads.
  struct Shared {
    std::shared_ptr<WakeSignal> wake;
    bool per_slot = false;
  };

  struct Group {
    std::vector<uint32_t> slots;
    // Generations when the set was given: a post after setSlots() returns wakes us,
    // even if the thread has not started yet.
    std::vector<uint32_t> baseline;
    std::atomic<uint32_t> control{0};
    std::atomic<bool> stop{false};
    NativeThread thread;
  };

  static void EnvCleanup(void* arg);
  Napi::Value Method(const Napi::CallbackInfo& info);
  Napi::Value SetSlots(const Napi::CallbackInfo& info);
  static void Run(Group* g, Shared* shared, TableMapping* mapping);
  void StopThreads();
  void Shutdown();
  Napi::Value Close(const Napi::CallbackInfo& info);

  std::shared_ptr<TableMapping> mapping_;
  std::shared_ptr<Shared> shared_;
  std::vector<std::unique_ptr<Group>> groups_;
  napi_env env_ = nullptr;
  bool hooked_ = false;
};

}  // namespace xpcbus
