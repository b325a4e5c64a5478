// macOS notify center: Apple's notify(3), mechanically. Names, reserved
// prefixes, the uid rule, and which names hold a registration are decided in
// TypeScript (daemon/notify/darwin-notifier.ts).
//
// NotifyPoster (broker): post(name, state?) = notify_set_state on the
// poster's registration for the name, then notify_post; without a state,
// notify_post alone, which needs no registration. The registrations are
// notify_register_dispatch ones with an empty handler, suspended at once:
// unlike notify_register_check's they take no slot of notifyd's shared
// memory (pagesize/4 slots for the whole Mac, reused once all are taken,
// which shows other processes' notify_check false changes). DarwinNotify:
// register_check / check / get_state / cancel for light clients (notify_check
// is served from that shared memory: no IPC when nothing changed).
// NotifyDispatchWatcher: notify_register_dispatch on a private serial queue;
// the handler records the token and signals the JS thread through a WakeSignal
// (call_sink.h), at most one call pending, so bursts coalesce. The dispatch
// queue never waits on JS.
#include "apple/notify_center.h"

#include "call_sink.h"
#include "napi_args.h"

#include <dispatch/dispatch.h>
#include <notify.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

namespace xpcbus {

namespace {

Napi::Error StatusError(Napi::Env env, const std::string& what, uint32_t status) {
  const char* text = "failed";
  switch (status) {
    case NOTIFY_STATUS_INVALID_NAME: text = "invalid name"; break;
    case NOTIFY_STATUS_INVALID_TOKEN: text = "invalid token"; break;
    case NOTIFY_STATUS_NOT_AUTHORIZED: text = "not authorized"; break;
    case NOTIFY_STATUS_SERVER_NOT_FOUND: text = "notifyd not found"; break;
    default: break;
  }
  Napi::Error e = Napi::Error::New(env, what + ": " + text + " (notify status " + std::to_string(status) + ")");
  e.Set("status", Napi::Number::New(env, status));
  return e;
}

bool ReadName(const Napi::CallbackInfo& info, size_t arg, std::string* out) {
  return ReadString(info, arg, "name", out);
}

bool ReadToken(const Napi::CallbackInfo& info, size_t arg, int* out) {
  double value;
  if (!ReadNumber(info, arg, "token", &value)) return false;
  *out = static_cast<int>(value);
  return true;
}

// DarwinNotify.registerCheck(name) -> token
Napi::Value RegisterCheck(const Napi::CallbackInfo& info) {
  std::string name;
  if (!ReadName(info, 0, &name)) return info.Env().Undefined();
  int token = -1;
  uint32_t status = notify_register_check(name.c_str(), &token);
  if (status != NOTIFY_STATUS_OK) {
    StatusError(info.Env(), "notify_register_check(" + name + ")", status).ThrowAsJavaScriptException();
    return info.Env().Undefined();
  }
  return Napi::Number::New(info.Env(), token);
}

// DarwinNotify.check(token) -> boolean (true the first time, then when posted since)
Napi::Value Check(const Napi::CallbackInfo& info) {
  int token;
  if (!ReadToken(info, 0, &token)) return info.Env().Undefined();
  int changed = 0;
  uint32_t status = notify_check(token, &changed);
  if (status != NOTIFY_STATUS_OK) {
    StatusError(info.Env(), "notify_check", status).ThrowAsJavaScriptException();
    return info.Env().Undefined();
  }
  return Napi::Boolean::New(info.Env(), changed != 0);
}

// DarwinNotify.getState(token) -> bigint
Napi::Value GetState(const Napi::CallbackInfo& info) {
  int token;
  if (!ReadToken(info, 0, &token)) return info.Env().Undefined();
  uint64_t state = 0;
  uint32_t status = notify_get_state(token, &state);
  if (status != NOTIFY_STATUS_OK) {
    StatusError(info.Env(), "notify_get_state", status).ThrowAsJavaScriptException();
    return info.Env().Undefined();
  }
  return Napi::BigInt::New(info.Env(), state);
}

// DarwinNotify.cancel(token)
Napi::Value Cancel(const Napi::CallbackInfo& info) {
  int token;
  if (!ReadToken(info, 0, &token)) return info.Env().Undefined();
  uint32_t status = notify_cancel(token);
  if (status != NOTIFY_STATUS_OK && status != NOTIFY_STATUS_INVALID_TOKEN) {
    StatusError(info.Env(), "notify_cancel", status).ThrowAsJavaScriptException();
  }
  return info.Env().Undefined();
}

}  // namespace

// ---------------------------------------------------------------------------

class NotifyPoster : public Napi::ObjectWrap<NotifyPoster> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "NotifyPoster",
                       {InstanceMethod<&NotifyPoster::Post>("post"),
                        InstanceMethod<&NotifyPoster::SetState>("setState"),
                        InstanceMethod<&NotifyPoster::State>("state"),
                        InstanceMethod<&NotifyPoster::Forget>("forget"),
                        InstanceMethod<&NotifyPoster::Close>("close")});
  }

  explicit NotifyPoster(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NotifyPoster>(info) {
    // The registrations' handlers run here; they are empty and suspended, so
    // this queue sees at most a post that lands before notify_suspend.
    queue_ = dispatch_queue_create("io.xpcbus.notify.poster", DISPATCH_QUEUE_SERIAL);
  }
  ~NotifyPoster() override { Shutdown(); }

 private:
  bool Open(Napi::Env env) {
    if (queue_ != nullptr) return true;
    Napi::Error::New(env, "the notify poster is closed").ThrowAsJavaScriptException();
    return false;
  }

  // The registration through which this poster sets and reads `name`'s state.
  bool TokenFor(Napi::Env env, const std::string& name, int* token) {
    auto found = tokens_.find(name);
    if (found != tokens_.end()) {
      *token = found->second;
      return true;
    }
    uint32_t status = notify_register_dispatch(name.c_str(), token, queue_, ^(int) {
    });
    if (status != NOTIFY_STATUS_OK) {
      StatusError(env, "notify_register_dispatch(" + name + ")", status).ThrowAsJavaScriptException();
      return false;
    }
    // Not checked: a registration left running only wakes the empty handler.
    notify_suspend(*token);
    tokens_.emplace(name, *token);
    return true;
  }

  // post(name, state?): sets the name's 64-bit state if given, then posts it.
  Napi::Value Post(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::string name;
    if (!Open(env) || !ReadName(info, 0, &name)) return env.Undefined();
    if (info.Length() > 1 && !info[1].IsUndefined()) {
      uint64_t state;
      int token;
      if (!ReadState(info, 1, &state) || !TokenFor(env, name, &token)) return env.Undefined();
      uint32_t status = notify_set_state(token, state);
      if (status != NOTIFY_STATUS_OK) {
        StatusError(env, "notify_set_state(" + name + ")", status).ThrowAsJavaScriptException();
        return env.Undefined();
      }
    }
    uint32_t status = notify_post(name.c_str());
    if (status != NOTIFY_STATUS_OK) StatusError(env, "notify_post(" + name + ")", status).ThrowAsJavaScriptException();
    return env.Undefined();
  }

  // setState(name, state): sets the state without posting.
  Napi::Value SetState(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::string name;
    uint64_t state;
    int token;
    if (!Open(env) || !ReadName(info, 0, &name) || !ReadState(info, 1, &state) || !TokenFor(env, name, &token)) return env.Undefined();
    uint32_t status = notify_set_state(token, state);
    if (status != NOTIFY_STATUS_OK) StatusError(env, "notify_set_state(" + name + ")", status).ThrowAsJavaScriptException();
    return env.Undefined();
  }

  Napi::Value State(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::string name;
    int token;
    if (!Open(env) || !ReadName(info, 0, &name) || !TokenFor(env, name, &token)) return env.Undefined();
    uint64_t state = 0;
    uint32_t status = notify_get_state(token, &state);
    if (status != NOTIFY_STATUS_OK) {
      StatusError(env, "notify_get_state(" + name + ")", status).ThrowAsJavaScriptException();
      return env.Undefined();
    }
    return Napi::BigInt::New(env, state);
  }

  // forget(name): cancels the poster's registration (the TS side bounds how many it keeps).
  Napi::Value Forget(const Napi::CallbackInfo& info) {
    std::string name;
    if (!ReadName(info, 0, &name)) return info.Env().Undefined();
    auto found = tokens_.find(name);
    if (found != tokens_.end()) {
      notify_cancel(found->second);
      tokens_.erase(found);
    }
    return info.Env().Undefined();
  }

  // Idempotent: from close() or the finalizer.
  void Shutdown() {
    for (auto& entry : tokens_) notify_cancel(entry.second);
    tokens_.clear();
    if (queue_ != nullptr) {
      // notify(3) keeps the queue retained while a handler may still be queued.
      dispatch_release(queue_);
      queue_ = nullptr;
    }
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    Shutdown();
    return info.Env().Undefined();
  }

  std::unordered_map<std::string, int> tokens_;
  dispatch_queue_t queue_ = nullptr;
};

// ---------------------------------------------------------------------------

class NotifyDispatchWatcher : public Napi::ObjectWrap<NotifyDispatchWatcher> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "NotifyDispatchWatcher",
                       {InstanceMethod<&NotifyDispatchWatcher::Add>("add"),
                        InstanceMethod<&NotifyDispatchWatcher::Remove>("remove"),
                        InstanceMethod<&NotifyDispatchWatcher::DrainChanged>("drainChanged"),
                        InstanceMethod<&NotifyDispatchWatcher::Close>("close")});
  }

  // new NotifyDispatchWatcher(onWake): onWake() runs on the JS thread after one
  // or more watched names were posted; drainChanged() says which tokens.
  explicit NotifyDispatchWatcher(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NotifyDispatchWatcher>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsFunction()) {
      Napi::TypeError::New(env, "new NotifyDispatchWatcher(onWake)").ThrowAsJavaScriptException();
      return;
    }
    shared_ = std::make_shared<Shared>();
    shared_->queue = dispatch_queue_create("io.xpcbus.notify", DISPATCH_QUEUE_SERIAL);
    // An idle watcher must not keep the process alive on its own.
    shared_->wake = WakeSignal::New(env, info[0].As<Napi::Function>(), "xpcbus.notify.wake");
    // Registered after the function, so it runs before Node's own teardown of
    // it (cleanup hooks run last-in first-out): a Worker that ends, or the
    // process exiting, cancels the registrations and drains the queue while
    // the function is still valid, and only then ends the sink.
    env_ = env;
    if (napi_add_env_cleanup_hook(env, &NotifyDispatchWatcher::EnvCleanup, this) == napi_ok) hooked_ = true;
  }

  ~NotifyDispatchWatcher() override { Shutdown(); }

 private:
  struct Shared {
    std::shared_ptr<WakeSignal> wake;
    dispatch_queue_t queue = nullptr;
    std::mutex mutex;
    std::set<int> changed;
    std::atomic<bool> closed{false};

    // Runs on the dispatch queue.
    void Posted(int token) {
      if (closed.load()) return;
      {
        std::lock_guard<std::mutex> lock(mutex);
        changed.insert(token);
      }
      // One call for a burst: it drains every token recorded before it runs.
      wake->Signal();
    }
  };

  static void EnvCleanup(void* arg) {
    auto* self = static_cast<NotifyDispatchWatcher*>(arg);
    self->hooked_ = false;  // Node drops a hook once it has run
    self->Shutdown();
  }

  bool Open(Napi::Env env) {
    if (shared_) return true;
    Napi::Error::New(env, "the notify watcher is closed").ThrowAsJavaScriptException();
    return false;
  }

  // add(name) -> token
  Napi::Value Add(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::string name;
    if (!Open(env) || !ReadName(info, 0, &name)) return env.Undefined();
    std::shared_ptr<Shared> shared = shared_;
    int token = -1;
    uint32_t status = notify_register_dispatch(name.c_str(), &token, shared_->queue, ^(int posted) {
      shared->Posted(posted);
    });
    if (status != NOTIFY_STATUS_OK) {
      StatusError(env, "notify_register_dispatch(" + name + ")", status).ThrowAsJavaScriptException();
      return env.Undefined();
    }
    tokens_.insert(token);
    return Napi::Number::New(env, token);
  }

  Napi::Value Remove(const Napi::CallbackInfo& info) {
    int token;
    if (!ReadToken(info, 0, &token)) return info.Env().Undefined();
    if (tokens_.erase(token) > 0) notify_cancel(token);
    return info.Env().Undefined();
  }

  // drainChanged() -> number[]: tokens posted since the last call.
  Napi::Value DrainChanged(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::vector<int> tokens;
    if (shared_) {
      std::lock_guard<std::mutex> lock(shared_->mutex);
      tokens.assign(shared_->changed.begin(), shared_->changed.end());
      shared_->changed.clear();
    }
    Napi::Array out = Napi::Array::New(env, tokens.size());
    for (size_t i = 0; i < tokens.size(); i++) out.Set(static_cast<uint32_t>(i), Napi::Number::New(env, tokens[i]));
    return out;
  }

  // Idempotent: from close(), the finalizer, or the environment's teardown.
  void Shutdown() {
    if (shared_) {
      shared_->closed.store(true);
      for (int token : tokens_) notify_cancel(token);
      tokens_.clear();
      // Handlers already queued finish before this returns; none runs
      // afterwards. They only queue on the sink, which never blocks.
      dispatch_sync(shared_->queue, ^{
      });
      dispatch_release(shared_->queue);
      shared_->queue = nullptr;
      shared_->wake->End();
      shared_.reset();
    }
    if (hooked_) {
      napi_remove_env_cleanup_hook(env_, &NotifyDispatchWatcher::EnvCleanup, this);
      hooked_ = false;
    }
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    Shutdown();
    return info.Env().Undefined();
  }

  std::shared_ptr<Shared> shared_;
  std::set<int> tokens_;
  napi_env env_ = nullptr;
  bool hooked_ = false;
};

void InitNotifyCenter(Napi::Env env, Napi::Object exports) {
  Napi::Object darwin = Napi::Object::New(env);
  darwin.Set("registerCheck", Napi::Function::New(env, RegisterCheck, "registerCheck"));
  darwin.Set("check", Napi::Function::New(env, Check, "check"));
  darwin.Set("getState", Napi::Function::New(env, GetState, "getState"));
  darwin.Set("cancel", Napi::Function::New(env, Cancel, "cancel"));
  exports.Set("DarwinNotify", darwin);
  exports.Set("NotifyPoster", NotifyPoster::Init(env));
  exports.Set("NotifyDispatchWatcher", NotifyDispatchWatcher::Init(env));
}

}  // namespace xpcbus
