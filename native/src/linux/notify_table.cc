// Linux notify center: a shared table of slots (notify_layout.h).
//
// Writer (broker): post = store state, then bump the generation with release
// order (a checking client sees it at once), then one FUTEX_WAKE on the
// generation word. The kernel's work in that wake grows with the number of
// threads asleep on the word (about 6 us each here), so the wake is made by a
// waker thread of the writer, not by the JS thread: the broker's event loop
// pays the same small cost per post however many processes watch.
// Reader (clients): the file opened O_RDONLY and mapped PROT_READ, so a
// client cannot write it (mmap or mprotect with PROT_WRITE fails with EACCES).
// check = compare a generation with the last one seen: a memory read, no
// syscall. Waiter: one thread per group of up to 127 slots sleeping in
// futex_waitv (Linux 5.16+) with one private control word to stop it, or,
// where futex_waitv is missing, one thread per slot in FUTEX_WAIT. A thread
// that sees a generation move signals the JS thread through a
// ThreadSafeFunction, at most one call pending at a time, so bursts coalesce.
#include "platform.h"

#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <climits>
#include <condition_variable>
#include <mutex>
#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "napi_args.h"
#include "notify_layout.h"

#ifndef SYS_futex_waitv
#define SYS_futex_waitv 449
#endif

namespace xpcbus {

// A mapping of the table, shared by a reader and the waiters using it, so
// that closing the reader never unmaps memory a waiter thread is reading.
struct TableMapping {
  void* base = nullptr;
  size_t bytes = 0;
  uint32_t slot_count = 0;
  ~TableMapping();
};

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

NotifySlot* SlotAt(void* base, uint32_t index) {
  return reinterpret_cast<NotifySlot*>(static_cast<char*>(base) + kNotifyHeaderBytes +
                                       static_cast<size_t>(index) * kNotifySlotBytes);
}

uint32_t LoadGeneration(const NotifySlot* slot) {
  return __atomic_load_n(&slot->generation, __ATOMIC_ACQUIRE);
}

uint64_t LoadState(const NotifySlot* slot) { return __atomic_load_n(&slot->state, __ATOMIC_RELAXED); }

long FutexWake(const void* addr) {
  return syscall(SYS_futex, addr, FUTEX_WAKE, INT_MAX, nullptr, nullptr, 0);
}

// A joinable thread started with a checked call. Exceptions are off, so a
// std::thread that cannot start would end the process in std::terminate; this
// reports the errno instead (EAGAIN under RLIMIT_NPROC, for one).
class NativeThread {
 public:
  NativeThread() = default;
  NativeThread(const NativeThread&) = delete;
  NativeThread& operator=(const NativeThread&) = delete;
  ~NativeThread() { Join(); }

  // 0, or the errno of the failure (nothing runs then).
  int Start(std::function<void()> body) {
    auto* heap = new std::function<void()>(std::move(body));
    int err = pthread_create(&thread_, nullptr, &Trampoline, heap);
    if (err != 0) {
      delete heap;
      return err;
    }
    started_ = true;
    return 0;
  }

  void Join() {
    if (!started_) return;
    pthread_join(thread_, nullptr);
    started_ = false;
  }

  // Joins if the thread has ended within `ms`; false if it still runs.
  bool JoinWithin(long ms) {
    if (!started_) return true;
    timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_nsec += ms * 1000000L;
    deadline.tv_sec += deadline.tv_nsec / 1000000000L;
    deadline.tv_nsec %= 1000000000L;
    if (pthread_timedjoin_np(thread_, nullptr, &deadline) != 0) return false;
    started_ = false;
    return true;
  }

 private:
  static void* Trampoline(void* arg) {
    std::unique_ptr<std::function<void()>> body(static_cast<std::function<void()>*>(arg));
    (*body)();
    return nullptr;
  }

  pthread_t thread_{};
  bool started_ = false;
};

Napi::Error ErrnoError(Napi::Env env, const std::string& what, int err) {
  Napi::Error e = Napi::Error::New(env, what + ": " + std::strerror(err));
  e.Set("errno", Napi::Number::New(env, err));
  return e;
}

bool ReadSlotIndex(const Napi::CallbackInfo& info, size_t arg, uint32_t slot_count, uint32_t* out) {
  if (info.Length() <= arg || !info[arg].IsNumber()) {
    Napi::TypeError::New(info.Env(), "slot must be a number").ThrowAsJavaScriptException();
    return false;
  }
  double v = info[arg].As<Napi::Number>().DoubleValue();
  if (!(v >= 0) || v >= slot_count || v != static_cast<double>(static_cast<uint32_t>(v))) {
    Napi::RangeError::New(info.Env(), "slot " + std::to_string(v) + " is outside the table (0.." +
                                          std::to_string(slot_count) + ")")
        .ThrowAsJavaScriptException();
    return false;
  }
  *out = static_cast<uint32_t>(v);
  return true;
}

constexpr const char* kWriterClosed = "the notify table is closed";
constexpr const char* kReaderClosed = "the notify table reader is closed";

// Throws `closed` when the mapping is gone (after close()).
bool IsOpen(Napi::Env env, const std::shared_ptr<TableMapping>& mapping, const char* closed) {
  if (mapping) return true;
  Napi::Error::New(env, closed).ThrowAsJavaScriptException();
  return false;
}

// The slot named by argument 0 of an open mapping (its index in `index`), or
// nullptr after throwing: closed, or out of range. Writer and reader alike.
NotifySlot* SlotArg(const Napi::CallbackInfo& info, const std::shared_ptr<TableMapping>& mapping, const char* closed,
                    uint32_t* index) {
  if (!IsOpen(info.Env(), mapping, closed) || !ReadSlotIndex(info, 0, mapping->slot_count, index)) return nullptr;
  return SlotAt(mapping->base, *index);
}

// state(slot) and generation(slot), the same on the writer and the reader.
Napi::Value SlotState(const Napi::CallbackInfo& info, const std::shared_ptr<TableMapping>& mapping, const char* closed) {
  uint32_t index;
  NotifySlot* slot = SlotArg(info, mapping, closed, &index);
  return slot == nullptr ? info.Env().Undefined() : Napi::BigInt::New(info.Env(), LoadState(slot));
}

Napi::Value SlotGeneration(const Napi::CallbackInfo& info, const std::shared_ptr<TableMapping>& mapping, const char* closed) {
  uint32_t index;
  NotifySlot* slot = SlotArg(info, mapping, closed, &index);
  return slot == nullptr ? info.Env().Undefined() : Napi::Number::New(info.Env(), LoadGeneration(slot));
}

// Maps `bytes` of the table open on `fd` (closed here either way) with `prot`;
// nullptr with `*err` set when mmap fails.
std::shared_ptr<TableMapping> MapTable(int fd, size_t bytes, int prot, uint32_t slots, int* err) {
  void* base = mmap(nullptr, bytes, prot, MAP_SHARED, fd, 0);
  *err = errno;
  close(fd);
  if (base == MAP_FAILED) return nullptr;
  auto mapping = std::make_shared<TableMapping>();
  mapping->base = base;
  mapping->bytes = bytes;
  mapping->slot_count = slots;
  return mapping;
}

Napi::Value SlotCountOf(const Napi::CallbackInfo& info, const std::shared_ptr<TableMapping>& mapping) {
  return Napi::Number::New(info.Env(), mapping ? mapping->slot_count : 0);
}

Napi::Value InstanceOf(const Napi::CallbackInfo& info, const std::shared_ptr<TableMapping>& mapping) {
  if (!mapping) return info.Env().Null();
  return Napi::BigInt::New(info.Env(), static_cast<NotifyHeader*>(mapping->base)->instance);
}


}  // namespace

TableMapping::~TableMapping() {
  if (base != nullptr) munmap(base, bytes);
}

// ---------------------------------------------------------------------------
// Writer

// Wakes the waiters of posted slots off the JS thread. Each slot is queued at
// most once until its wake is made; posts meanwhile are covered by that wake.
class Waker {
 public:
  explicit Waker(std::shared_ptr<TableMapping> mapping)
      : mapping_(std::move(mapping)), queued_(mapping_->slot_count) {
    for (auto& flag : queued_) flag.store(false, std::memory_order_relaxed);
  }

  // 0, or the errno when the thread cannot start (the caller wakes inline).
  int Start() { return thread_.Start([this] { Run(); }); }

  ~Waker() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    ready_.notify_one();
    thread_.Join();
  }

  void Wake(uint32_t slot) {
    if (queued_[slot].exchange(true)) return;
    bool idle;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      pending_.push_back(slot);
      idle = idle_;
    }
    if (idle) ready_.notify_one();
  }

 private:
  void Run() {
    std::vector<uint32_t> batch;
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      idle_ = true;
      ready_.wait(lock, [this] { return stop_ || !pending_.empty(); });
      idle_ = false;
      // Wake what is queued even when stopping: those posts happened.
      batch.swap(pending_);
      bool stopping = stop_;
      lock.unlock();
      for (uint32_t slot : batch) {
        // Clear first: a post after this line queues the slot again.
        queued_[slot].store(false);
        FutexWake(&SlotAt(mapping_->base, slot)->generation);
      }
      batch.clear();
      lock.lock();
      if (stopping && pending_.empty()) return;
    }
  }

  std::shared_ptr<TableMapping> mapping_;
  std::vector<std::atomic<bool>> queued_;
  std::mutex mutex_;
  std::condition_variable ready_;
  std::vector<uint32_t> pending_;
  bool idle_ = false;
  bool stop_ = false;
  NativeThread thread_;  // last: joined before the rest is destroyed
};

class NotifyTableWriter : public Napi::ObjectWrap<NotifyTableWriter> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "NotifyTableWriter",
                       {InstanceMethod<&NotifyTableWriter::Assign>("assign"),
                        InstanceMethod<&NotifyTableWriter::Post>("post"),
                        InstanceMethod<&NotifyTableWriter::State>("state"),
                        InstanceMethod<&NotifyTableWriter::Generation>("generation"),
                        InstanceMethod<&NotifyTableWriter::Close>("close"),
                        InstanceAccessor<&NotifyTableWriter::SlotCount>("slotCount"),
                        InstanceAccessor<&NotifyTableWriter::Instance>("instance")});
  }

  // new NotifyTableWriter(path, slotCount): creates the file (it must not
  // exist), mode 0644, and maps it read-write.
  explicit NotifyTableWriter(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NotifyTableWriter>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[0].IsString() || !info[1].IsNumber()) {
      Napi::TypeError::New(env, "new NotifyTableWriter(path, slotCount)").ThrowAsJavaScriptException();
      return;
    }
    std::string path = info[0].As<Napi::String>().Utf8Value();
    double count = info[1].As<Napi::Number>().DoubleValue();
    if (!(count >= 1) || count > (1u << 24) || count != static_cast<double>(static_cast<uint32_t>(count))) {
      Napi::RangeError::New(env, "slotCount must be an integer from 1 to 16777216").ThrowAsJavaScriptException();
      return;
    }
    uint32_t slots = static_cast<uint32_t>(count);
    size_t bytes = kNotifyHeaderBytes + static_cast<size_t>(slots) * kNotifySlotBytes;
    int fd = open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0) {
      ErrnoError(env, "cannot create notify table " + path, errno).ThrowAsJavaScriptException();
      return;
    }
    // Readable by whoever can reach the directory; writable by the broker only.
    if (fchmod(fd, 0644) != 0 || ftruncate(fd, static_cast<off_t>(bytes)) != 0) {
      int err = errno;
      close(fd);
      unlink(path.c_str());
      ErrnoError(env, "cannot size notify table " + path, err).ThrowAsJavaScriptException();
      return;
    }
    int err = 0;
    mapping_ = MapTable(fd, bytes, PROT_READ | PROT_WRITE, slots, &err);
    if (!mapping_) {
      unlink(path.c_str());
      ErrnoError(env, "cannot map notify table " + path, err).ThrowAsJavaScriptException();
      return;
    }
    auto* header = static_cast<NotifyHeader*>(mapping_->base);
    std::memcpy(header->magic, kNotifyMagic, sizeof(header->magic));
    header->version = kNotifyVersion;
    header->slot_count = slots;
    header->slot_bytes = kNotifySlotBytes;
    header->header_bytes = kNotifyHeaderBytes;
    std::random_device random;
    header->instance = (static_cast<uint64_t>(random()) << 32) ^ random() ^ static_cast<uint64_t>(time(nullptr));
  }

 private:
  // assign(slot, nameHash, state): gives the slot to a name (hash 0 frees it)
  // and publishes its state, waking anyone still sleeping on it.
  Napi::Value Assign(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint32_t index;
    uint64_t state;
    double hash;
    NotifySlot* slot = SlotArg(info, mapping_, kWriterClosed, &index);
    if (slot == nullptr || !ReadNumber(info, 1, "nameHash", &hash) || !ReadState(info, 2, &state)) return env.Undefined();
    __atomic_store_n(&slot->name_hash, info[1].As<Napi::Number>().Uint32Value(), __ATOMIC_RELAXED);
    Bump(index, state);
    return env.Undefined();
  }

  // post(slot, state): sets the state, bumps the generation, wakes waiters.
  Napi::Value Post(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint32_t index;
    uint64_t state;
    if (SlotArg(info, mapping_, kWriterClosed, &index) == nullptr || !ReadState(info, 1, &state)) return env.Undefined();
    Bump(index, state);
    return env.Undefined();
  }

  void Bump(uint32_t index, uint64_t state) {
    NotifySlot* slot = SlotAt(mapping_->base, index);
    __atomic_store_n(&slot->state, state, __ATOMIC_RELAXED);
    __atomic_fetch_add(&slot->generation, 1u, __ATOMIC_RELEASE);
    if (!waker_ && !waker_failed_) {
      auto waker = std::make_unique<Waker>(mapping_);
      if (waker->Start() == 0) waker_ = std::move(waker);
      else waker_failed_ = true;  // no thread to be had: every wake is made here, on the JS thread
    }
    if (waker_) waker_->Wake(index);
    else FutexWake(&slot->generation);
  }

  Napi::Value State(const Napi::CallbackInfo& info) { return SlotState(info, mapping_, kWriterClosed); }
  Napi::Value Generation(const Napi::CallbackInfo& info) { return SlotGeneration(info, mapping_, kWriterClosed); }
  Napi::Value SlotCount(const Napi::CallbackInfo& info) { return SlotCountOf(info, mapping_); }
  Napi::Value Instance(const Napi::CallbackInfo& info) { return InstanceOf(info, mapping_); }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    waker_.reset();  // joins after making the wakes still queued
    mapping_.reset();
    return info.Env().Undefined();
  }

  std::shared_ptr<TableMapping> mapping_;
  std::unique_ptr<Waker> waker_;
  bool waker_failed_ = false;
};

// ---------------------------------------------------------------------------
// Reader

// Marks reader objects, so a waiter can tell a reader from any other object
// without per-environment state (the addon loads in worker threads too).
const napi_type_tag kReaderTag = {0x7870636275735244ULL, 0x4e6f746966795461ULL};

class NotifyTableReader : public Napi::ObjectWrap<NotifyTableReader> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "NotifyTableReader",
                       {InstanceMethod<&NotifyTableReader::State>("state"),
                        InstanceMethod<&NotifyTableReader::Generation>("generation"),
                        InstanceMethod<&NotifyTableReader::NameHash>("nameHash"),
                        InstanceMethod<&NotifyTableReader::WritableErrno>("writableErrno"),
                        InstanceMethod<&NotifyTableReader::Close>("close"),
                        InstanceAccessor<&NotifyTableReader::SlotCount>("slotCount"),
                        InstanceAccessor<&NotifyTableReader::Instance>("instance")});
  }

  // new NotifyTableReader(path): opens O_RDONLY, checks the header, maps PROT_READ.
  explicit NotifyTableReader(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NotifyTableReader>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsString()) {
      Napi::TypeError::New(env, "new NotifyTableReader(path)").ThrowAsJavaScriptException();
      return;
    }
    std::string path = info[0].As<Napi::String>().Utf8Value();
    // O_NONBLOCK: opening a FIFO (or a device) put in the table's place must
    // not block the JS thread; only a regular file is accepted below.
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) {
      ErrnoError(env, "cannot open notify table " + path, errno).ThrowAsJavaScriptException();
      return;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      close(fd);
      Napi::Error::New(env, path + " is not a regular file, so not an xpcbus notify table").ThrowAsJavaScriptException();
      return;
    }
    NotifyHeader header;
    if (static_cast<size_t>(st.st_size) < kNotifyHeaderBytes ||
        pread(fd, &header, sizeof(header), 0) != static_cast<ssize_t>(sizeof(header)) ||
        std::memcmp(header.magic, kNotifyMagic, sizeof(header.magic)) != 0 || header.version != kNotifyVersion ||
        header.slot_bytes != kNotifySlotBytes || header.header_bytes != kNotifyHeaderBytes ||
        static_cast<size_t>(st.st_size) < kNotifyHeaderBytes + static_cast<size_t>(header.slot_count) * kNotifySlotBytes) {
      close(fd);
      Napi::Error::New(env, path + " is not an xpcbus notify table of version 1").ThrowAsJavaScriptException();
      return;
    }
    size_t bytes = kNotifyHeaderBytes + static_cast<size_t>(header.slot_count) * kNotifySlotBytes;
    int err = 0;
    mapping_ = MapTable(fd, bytes, PROT_READ, header.slot_count, &err);
    if (!mapping_) {
      ErrnoError(env, "cannot map notify table " + path, err).ThrowAsJavaScriptException();
      return;
    }
    info.This().As<Napi::Object>().TypeTag(&kReaderTag);
  }

  std::shared_ptr<TableMapping> mapping() const { return mapping_; }

 private:
  Napi::Value State(const Napi::CallbackInfo& info) { return SlotState(info, mapping_, kReaderClosed); }
  Napi::Value Generation(const Napi::CallbackInfo& info) { return SlotGeneration(info, mapping_, kReaderClosed); }

  Napi::Value NameHash(const Napi::CallbackInfo& info) {
    uint32_t index;
    NotifySlot* slot = SlotArg(info, mapping_, kReaderClosed, &index);
    if (slot == nullptr) return info.Env().Undefined();
    return Napi::Number::New(info.Env(), __atomic_load_n(&slot->name_hash, __ATOMIC_RELAXED));
  }

  // Tries to make the mapping writable and returns the errno (EACCES): the
  // proof that a client cannot write the table through its mapping.
  Napi::Value WritableErrno(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!IsOpen(env, mapping_, kReaderClosed)) return env.Undefined();
    if (mprotect(mapping_->base, mapping_->bytes, PROT_READ | PROT_WRITE) == 0) {
      mprotect(mapping_->base, mapping_->bytes, PROT_READ);
      return Napi::Number::New(env, 0);
    }
    return Napi::Number::New(env, errno);
  }

  Napi::Value SlotCount(const Napi::CallbackInfo& info) { return SlotCountOf(info, mapping_); }
  Napi::Value Instance(const Napi::CallbackInfo& info) { return InstanceOf(info, mapping_); }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    mapping_.reset();
    return info.Env().Undefined();
  }

  std::shared_ptr<TableMapping> mapping_;
};

// ---------------------------------------------------------------------------
// Waiter

// How long a waiter thread sleeps between checks when the kernel refuses to
// let it sleep on the slots (an unexpected futex error): it polls rather than
// spins, and its posts are seen this much later.
constexpr long kPollFallbackNs = 50L * 1000 * 1000;

class NotifyWaiter : public Napi::ObjectWrap<NotifyWaiter> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "NotifyWaiter",
                       {InstanceMethod<&NotifyWaiter::SetSlots>("setSlots"),
                        InstanceMethod<&NotifyWaiter::Close>("close"),
                        InstanceAccessor<&NotifyWaiter::Method>("method")});
  }

  // new NotifyWaiter(reader, onWake, { perSlot?: boolean }): onWake() is called
  // on the JS thread after any watched slot's generation moved (coalesced).
  explicit NotifyWaiter(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NotifyWaiter>(info) {
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
    // The context stays valid until the function is finalized: the finalizer
    // drops this reference, whatever order Node tears things down in. No call
    // carries data, so a call still queued at teardown leaks nothing.
    auto* keep = new std::shared_ptr<Shared>(shared_);
    shared_->tsfn = WakeFunction::New(env, info[1].As<Napi::Function>(), "xpcbus.notify.wake", 0, 1, shared_.get(),
                                      [](Napi::Env, std::shared_ptr<Shared>* held, Shared*) { delete held; }, keep);
    // An idle watcher must not keep the process alive on its own.
    shared_->tsfn.Unref(env);
    // Registered after the function, so it runs before Node's own teardown of
    // it (cleanup hooks run last-in first-out): a Worker that ends, or the
    // process exiting, stops and joins the threads while the function is
    // still valid, and only then releases it.
    env_ = env;
    if (napi_add_env_cleanup_hook(env, &NotifyWaiter::EnvCleanup, this) == napi_ok) hooked_ = true;
  }

  ~NotifyWaiter() override { Shutdown(); }

 private:
  struct Shared;
  static void CallJs(Napi::Env env, Napi::Function on_wake, Shared* shared, void* data);
  using WakeFunction = Napi::TypedThreadSafeFunction<Shared, void, &NotifyWaiter::CallJs>;

  // State shared with the threads.
  struct Shared {
    WakeFunction tsfn;
    std::atomic<bool> pending{false};
    bool per_slot = false;

    void Signal() {
      if (pending.exchange(true)) return;  // a call is already queued: it will see this change too
      // Fails only once the function is closing: nobody is left to tell.
      if (tsfn.NonBlockingCall() != napi_ok) pending.store(false);
    }
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

  static void EnvCleanup(void* arg) {
    auto* self = static_cast<NotifyWaiter*>(arg);
    self->hooked_ = false;  // Node drops a hook once it has run
    self->Shutdown();
  }

  Napi::Value Method(const Napi::CallbackInfo& info) {
    if (!shared_) return info.Env().Null();
    return Napi::String::New(info.Env(), shared_->per_slot ? "futex_wait" : "futex_waitv");
  }

  // setSlots(slots: number[]): the set of slots to watch, replacing the previous one.
  Napi::Value SetSlots(const Napi::CallbackInfo& info) {
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

  static void Run(Group* g, Shared* shared, TableMapping* mapping) {
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
        shared->Signal();
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

  void StopThreads() {
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
  void Shutdown() {
    StopThreads();
    if (shared_) {
      shared_->tsfn.Release();
      shared_.reset();
    }
    mapping_.reset();
    if (hooked_) {
      napi_remove_env_cleanup_hook(env_, &NotifyWaiter::EnvCleanup, this);
      hooked_ = false;
    }
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    Shutdown();
    return info.Env().Undefined();
  }

  std::shared_ptr<TableMapping> mapping_;
  std::shared_ptr<Shared> shared_;
  std::vector<std::unique_ptr<Group>> groups_;
  napi_env env_ = nullptr;
  bool hooked_ = false;
};

void NotifyWaiter::CallJs(Napi::Env env, Napi::Function on_wake, Shared* shared, void* /*data*/) {
  // env is null when the function is torn down with this call still queued.
  if (static_cast<napi_env>(env) == nullptr || shared == nullptr) return;
  shared->pending.store(false);
  if (!on_wake.IsEmpty()) CallOnWake(env, on_wake);
}

void InitPlatform(Napi::Env env, Napi::Object exports) {
  exports.Set("NotifyTableWriter", NotifyTableWriter::Init(env));
  exports.Set("NotifyTableReader", NotifyTableReader::Init(env));
  exports.Set("NotifyWaiter", NotifyWaiter::Init(env));
}

}  // namespace xpcbus
