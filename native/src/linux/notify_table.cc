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
    thread_ = std::thread([this] { Run(); });
  }

  ~Waker() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    ready_.notify_one();
    thread_.join();
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
  std::thread thread_;
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
    if (!waker_) waker_ = std::make_unique<Waker>(mapping_);
    waker_->Wake(index);
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
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      ErrnoError(env, "cannot open notify table " + path, errno).ThrowAsJavaScriptException();
      return;
    }
    struct stat st;
    NotifyHeader header;
    if (fstat(fd, &st) != 0 || static_cast<size_t>(st.st_size) < kNotifyHeaderBytes ||
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
    mapping_ = NotifyTableReader::Unwrap(reader_object)->mapping();
    if (!mapping_) {
      Napi::Error::New(env, "the notify table reader is closed").ThrowAsJavaScriptException();
      return;
    }
    bool per_slot = false;
    if (info.Length() > 2 && info[2].IsObject()) {
      Napi::Value v = info[2].As<Napi::Object>().Get("perSlot");
      per_slot = v.IsBoolean() && v.As<Napi::Boolean>().Value();
    }
    // Probe futex_waitv once: with zero waiters it fails with EINVAL where it
    // exists and ENOSYS where it does not.
    if (!per_slot && syscall(SYS_futex_waitv, nullptr, 0, 0, nullptr, CLOCK_MONOTONIC) < 0 && errno == ENOSYS) {
      per_slot = true;
    }
    shared_ = std::make_shared<Shared>();
    shared_->per_slot = per_slot;
    shared_->tsfn = Napi::ThreadSafeFunction::New(env, info[1].As<Napi::Function>(), "xpcbus.notify.wake", 0, 1);
    // An idle watcher must not keep the process alive on its own.
    shared_->tsfn.Unref(env);
  }

  ~NotifyWaiter() override { Shutdown(); }

 private:
  // State shared with the threads.
  struct Shared : std::enable_shared_from_this<Shared> {
    Napi::ThreadSafeFunction tsfn;
    std::atomic<bool> pending{false};
    bool per_slot = false;

    void Signal() {
      if (pending.exchange(true)) return;  // a call is already queued: it will see this change too
      // The queued call keeps Shared alive: it may run after close() released the waiter.
      std::shared_ptr<Shared> self = shared_from_this();
      tsfn.NonBlockingCall([self](Napi::Env env, Napi::Function onWake) {
        self->pending.store(false);
        CallOnWake(env, onWake);
      });
    }
  };

  struct Group {
    std::vector<uint32_t> slots;
    // Generations when the set was given: a post after setSlots() returns wakes us,
    // even if the thread has not started yet.
    std::vector<uint32_t> baseline;
    std::atomic<uint32_t> control{0};
    std::atomic<bool> stop{false};
    std::thread thread;
  };

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
    Napi::Array array = info[0].As<Napi::Array>();
    std::vector<uint32_t> slots;
    for (uint32_t i = 0; i < array.Length(); i++) {
      Napi::Value v = array.Get(i);
      double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1;
      if (!(d >= 0) || d >= mapping_->slot_count || d != static_cast<double>(static_cast<uint32_t>(d))) {
        Napi::RangeError::New(env, "slot outside the table").ThrowAsJavaScriptException();
        return env.Undefined();
      }
      slots.push_back(static_cast<uint32_t>(d));
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
      g->thread = std::thread([g, shared, mapping] { Run(g, shared.get(), mapping.get()); });
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
      if (shared->per_slot) {
        // Wakes on a post, or on the wake StopThreads() sends to the same word.
        syscall(SYS_futex, &SlotAt(mapping->base, g->slots[0])->generation, FUTEX_WAIT, seen[0], nullptr, nullptr, 0);
        continue;
      }
      for (size_t i = 0; i < n; i++) {
        waiters[i] = {seen[i], reinterpret_cast<uint64_t>(&SlotAt(mapping->base, g->slots[i])->generation), kFutex32, 0};
      }
      waiters[n] = {control, reinterpret_cast<uint64_t>(&g->control), kFutex32, 0};
      // Returns on a wake, at once if any word no longer holds its expected
      // value (EAGAIN), or on a signal (EINTR): the loop re-checks in all cases.
      syscall(SYS_futex_waitv, waiters.data(), static_cast<unsigned>(n + 1), 0, nullptr, CLOCK_MONOTONIC);
    }
  }

  void StopThreads() {
    for (auto& g : groups_) {
      g->stop.store(true);
      g->control.fetch_add(1);
      FutexWake(&g->control);
      if (shared_ && shared_->per_slot) FutexWake(&SlotAt(mapping_->base, g->slots[0])->generation);
    }
    for (auto& g : groups_) {
      if (g->thread.joinable()) g->thread.join();
    }
    groups_.clear();
  }

  void Shutdown() {
    StopThreads();
    if (shared_) {
      shared_->tsfn.Release();
      shared_.reset();
    }
    mapping_.reset();
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    Shutdown();
    return info.Env().Undefined();
  }

  std::shared_ptr<TableMapping> mapping_;
  std::shared_ptr<Shared> shared_;
  std::vector<std::unique_ptr<Group>> groups_;
};

void InitPlatform(Napi::Env env, Napi::Object exports) {
  exports.Set("NotifyTableWriter", NotifyTableWriter::Init(env));
  exports.Set("NotifyTableReader", NotifyTableReader::Init(env));
  exports.Set("NotifyWaiter", NotifyWaiter::Init(env));
}

}  // namespace xpcbus
