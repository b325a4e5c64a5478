// The notify table's waiter (clients): one thread per group of up to 127
// slots sleeping in futex_waitv (Linux 5.16+) with one private control word to
// stop it, or, where futex_waitv is missing, one thread per slot in
// FUTEX_WAIT. A thread that sees a generation move signals the JS thread
// through a WakeSignal (call_sink.h), at most one call pending at a time, so bursts
// coalesce. Every thread is stopped and joined from close(), the finalizer and
// an environment cleanup hook, while the function is still valid.
#include "linux/notify_waiter.h"

#include <errno.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <string>

#include "linux/notify_table_reader.h"
#include "platform.h"

#ifndef SYS_futex_waitv
#define SYS_futex_waitv 449
#endif

namespace xpcbus {

namespace {

// Declared here rather than taken from <linux/futex.h>, whose copy depends on
// the kernel headers installed.
struct FutexWaitv {
  uint64_t val;
  uint64_t uaddr;
  uint32_t flags;
  uint32_t reserved;
};
constexpr uint32_t kFutex32 = 2;
constexpr size_t kWaitvMax = 128;  // FUTEX_WAITV_MAX
constexpr size_t kSlotsPerThread = kWaitvMax - 1;  // one entry is the control word

// How long a waiter thread sleeps between checks when the kernel refuses to
// let it sleep on the slots (an unexpected futex error): it polls rather than
// spins, and its posts are seen this much later.
constexpr long kPollFallbackNs = 50L * 1000 * 1000;

}  // namespace

Napi::Function NotifyWaiter::Init(Napi::Env env) {
  return DefineClass(env, "NotifyWaiter",
                     {InstanceMethod<&NotifyWaiter::SetSlots>("setSlots"),
                      InstanceMethod<&NotifyWaiter::Close>("close"),
                      InstanceAccessor<&NotifyWaiter::Method>("method")});
}

NotifyWaiter::NotifyWaiter(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NotifyWaiter>(info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsObject() || !info[1].IsFunction()) {
    Napi::TypeError::New(env, "new NotifyWaiter(reader, onWake, options?)").ThrowAsJavaScriptException();
    return;
  }
  Napi::Object reader_object = info[0].As<Napi::Object>();
  if (!reader_object.CheckTypeTag(&kReaderTag)) {
    Napi::TypeError::New(env, "reader must be a NotifyTableReader").ThrowAsJavaScriptException();
    return;
  }
  bool per_slot = false;
  if (info.Length() > 2 && info[2].IsObject()) {
    Napi::Value v = info[2].As<Napi::Object>().Get("perSlot");
    if (env.IsExceptionPending()) return;  // a getter threw: let it propagate
    per_slot = v.IsBoolean() && v.As<Napi::Boolean>().Value();
  }
  // Read after the options: a getter there may have closed the reader.
  mapping_ = NotifyTableReader::Unwrap(reader_object)->mapping();
  if (!mapping_) {
    Napi::Error::New(env, "the notify table reader is closed").ThrowAsJavaScriptException();
    return;
  }
  // Probe futex_waitv once: with zero waiters it fails with EINVAL where it
  // works. ENOSYS (an old kernel), EPERM (a seccomp filter) or anything else:
  // one thread per slot in FUTEX_WAIT instead.
  if (!per_slot && !(syscall(SYS_futex_waitv, nullptr, 0, 0, nullptr, CLOCK_MONOTONIC) < 0 && errno == EINVAL)) {
    per_slot = true;
  }
  shared_ = std::make_shared<Shared>();
  shared_->per_slot = per_slot;
  // An idle watcher must not keep the process alive on its own.
  shared_->wake = WakeSignal::New(env, info[1].As<Napi::Function>(), "xpcbus.notify.wake");
  // Registered after the function, so it runs before Node's own teardown of
  // it (cleanup hooks run last-in first-out): a Worker that ends, or the
  // process exiting, stops and joins the threads while the function is
  // still valid, and only then releases it.
  env_ = env;
  if (napi_add_env_cleanup_hook(env, &NotifyWaiter::EnvCleanup, this) == napi_ok) hooked_ = true;
}

void NotifyWaiter::EnvCleanup(void* arg) {
  auto* self = static_cast<NotifyWaiter*>(arg);
  self->hooked_ = false;  // Node drops a hook once it has run
  self->Shutdown();
}

Napi::Value NotifyWaiter::Method(const Napi::CallbackInfo& info) {
  if (!shared_) return info.Env().Null();
  return Napi::String::New(info.Env(), shared_->per_slot ? "futex_wait" : "futex_waitv");
}

// setSlots(slots: number[]): the set of slots to watch, replacing the previous one.
Napi::Value NotifyWaiter::SetSlots(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!shared_) {
    Napi::Error::New(env, "the notify waiter is closed").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  if (info.Length() < 1 || !info[0].IsArray()) {
    Napi::TypeError::New(env, "setSlots(slots: number[])").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  // Read the whole argument before touching any state: an element's getter
  // runs JS, which may close this waiter or call setSlots again.
  const uint32_t slot_count = mapping_->slot_count;
  Napi::Array array = info[0].As<Napi::Array>();
  const uint32_t length = array.Length();
  if (length > slot_count) {
    Napi::RangeError::New(env, "more slots than the table has").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  std::vector<uint32_t> slots;
  slots.reserve(length);
  for (uint32_t i = 0; i < length; i++) {
    Napi::Value v = array.Get(i);
    if (env.IsExceptionPending()) return env.Undefined();  // a getter threw
    double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1;
    if (!(d >= 0) || d >= slot_count || d != static_cast<double>(static_cast<uint32_t>(d))) {
      Napi::RangeError::New(env, "slot outside the table").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    slots.push_back(static_cast<uint32_t>(d));
  }
  if (!shared_) {
    Napi::Error::New(env, "the notify waiter was closed while its slots were read").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  StopThreads();
  size_t per_thread = shared_->per_slot ? 1 : kSlotsPerThread;
  for (size_t start = 0; start < slots.size(); start += per_thread) {
    auto group = std::make_unique<Group>();
    group->slots.assign(slots.begin() + start, slots.begin() + std::min(slots.size(), start + per_thread));
    for (uint32_t slot : group->slots) group->baseline.push_back(LoadGeneration(SlotAt(mapping_->base, slot)));
    Group* g = group.get();
    std::shared_ptr<Shared> shared = shared_;
    std::shared_ptr<TableMapping> mapping = mapping_;
    int err = g->thread.Start([g, shared, mapping] { Run(g, shared.get(), mapping.get()); });
    if (err != 0) {
      // All or nothing: the waiter is left watching no slot, and says why.
      StopThreads();
      ErrnoError(env, "cannot start a notify waiter thread (" + std::to_string(slots.size()) + " slots)", err)
          .ThrowAsJavaScriptException();
      return env.Undefined();
    }
    groups_.push_back(std::move(group));
  }
  return env.Undefined();
}

void NotifyWaiter::Run(Group* g, Shared* shared, TableMapping* mapping) {
  size_t n = g->slots.size();
  std::vector<uint32_t> seen = g->baseline;
  std::vector<FutexWaitv> waiters(n + 1);
  while (!g->stop.load()) {
    bool changed = false;
    for (size_t i = 0; i < n; i++) {
      uint32_t now = LoadGeneration(SlotAt(mapping->base, g->slots[i]));
      if (now != seen[i]) {
        seen[i] = now;
        changed = true;
      }
    }
    if (changed) {
      shared->wake->Signal();
      continue;
    }
    uint32_t control = g->control.load();
    if (g->stop.load()) break;
    long rc;
    if (shared->per_slot) {
      // Wakes on a post, or on a wake StopThreads() sends to the same word;
      // StopThreads() repeats that wake until this thread has ended, so a
      // stop that lands between the check above and the wait is not lost.
      rc = syscall(SYS_futex, &SlotAt(mapping->base, g->slots[0])->generation, FUTEX_WAIT, seen[0], nullptr, nullptr, 0);
    } else {
      for (size_t i = 0; i < n; i++) {
        waiters[i] = {seen[i], reinterpret_cast<uint64_t>(&SlotAt(mapping->base, g->slots[i])->generation), kFutex32, 0};
      }
      waiters[n] = {control, reinterpret_cast<uint64_t>(&g->control), kFutex32, 0};
      // Returns on a wake, at once if any word no longer holds its expected
      // value (EAGAIN), or on a signal (EINTR): the loop re-checks in all cases.
      rc = syscall(SYS_futex_waitv, waiters.data(), static_cast<unsigned>(n + 1), 0, nullptr, CLOCK_MONOTONIC);
    }
    if (rc < 0 && errno != EAGAIN && errno != EINTR && errno != ETIMEDOUT) {
      // The kernel will not let this thread sleep on the words: poll, never spin.
      timespec pause = {0, kPollFallbackNs};
      nanosleep(&pause, nullptr);
    }
  }
}

void NotifyWaiter::StopThreads() {
  for (auto& g : groups_) {
    g->stop.store(true);
    g->control.fetch_add(1);
    FutexWake(&g->control);
  }
  for (auto& g : groups_) {
    if (shared_ && shared_->per_slot) {
      // The slot's word cannot be changed from here (the mapping is
      // read-only), so a wake that comes before the thread's FUTEX_WAIT
      // would be lost: wake again until the thread has ended.
      const uint32_t* word = &SlotAt(mapping_->base, g->slots[0])->generation;
      do {
        FutexWake(word);
      } while (!g->thread.JoinWithin(2));
    } else {
      g->thread.Join();
    }
  }
  groups_.clear();
}

// Idempotent: from close(), the finalizer, or the environment's teardown.
void NotifyWaiter::Shutdown() {
  StopThreads();
  if (shared_) {
    shared_->wake->End();
    shared_.reset();
  }
  mapping_.reset();
  if (hooked_) {
    napi_remove_env_cleanup_hook(env_, &NotifyWaiter::EnvCleanup, this);
    hooked_ = false;
  }
}

Napi::Value NotifyWaiter::Close(const Napi::CallbackInfo& info) {
  Shutdown();
  return info.Env().Undefined();
}

}  // namespace xpcbus
