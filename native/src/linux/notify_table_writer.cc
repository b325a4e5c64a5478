// The notify table's writer (broker): post = store state, then bump the
// generation with release order (a checking client sees it at once), then one
// FUTEX_WAKE on the generation word. The kernel's work in that wake grows with
// the number of threads asleep on the word (about 6 us each here), so the wake
// is made by a waker thread of the writer, not by the JS thread: the broker's
// event loop pays the same small cost per post however many processes watch.
#include "linux/notify_table_writer.h"

#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "linux/native_thread.h"
#include "napi_args.h"
#include "notify_layout.h"

namespace xpcbus {

namespace {

constexpr const char* kWriterClosed = "the notify table is closed";

// The POSIX ACL as the kernel takes it in the "system.posix_acl_access"
// extended attribute (linux/posix_acl_xattr.h; little-endian, like the hosts
// we build for): a version word, then entries sorted by tag, then by id.
struct AclXattrEntry {
  uint16_t tag;
  uint16_t perm;
  uint32_t id;
};
constexpr uint32_t kAclXattrVersion = 2;
constexpr uint16_t kAclUserObj = 0x01, kAclUser = 0x02, kAclGroupObj = 0x04, kAclMask = 0x10, kAclOther = 0x20;
constexpr uint16_t kAclRead = 4, kAclWrite = 2;
constexpr uint32_t kAclUndefinedId = 0xffffffffu;

// Lets `uid` read the table and nobody else but its owner (the broker) touch
// it: owner rw-, user:<uid> r--, group ---, mask r--, other ---. The reader is
// not the owner, so it can neither chmod the file nor truncate it (a
// truncated table would SIGBUS the broker's next post). 0, or the errno
// (EOPNOTSUPP: the file system keeps no ACLs).
int GrantRead(int fd, uint32_t uid) {
  struct {
    uint32_t version;
    AclXattrEntry entries[5];
  } acl = {kAclXattrVersion,
           {{kAclUserObj, kAclRead | kAclWrite, kAclUndefinedId},
            {kAclUser, kAclRead, uid},
            {kAclGroupObj, 0, kAclUndefinedId},
            {kAclMask, kAclRead, kAclUndefinedId},
            {kAclOther, 0, kAclUndefinedId}}};
  static_assert(sizeof(acl) == 4 + 5 * 8, "the kernel's ACL xattr layout has no padding");
  return fsetxattr(fd, "system.posix_acl_access", &acl, sizeof(acl), 0) == 0 ? 0 : errno;
}

}  // namespace

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

Napi::Function NotifyTableWriter::Init(Napi::Env env) {
  return DefineClass(env, "NotifyTableWriter",
                     {InstanceMethod<&NotifyTableWriter::Assign>("assign"),
                      InstanceMethod<&NotifyTableWriter::Post>("post"),
                      InstanceMethod<&NotifyTableWriter::State>("state"),
                      InstanceMethod<&NotifyTableWriter::Generation>("generation"),
                      InstanceMethod<&NotifyTableWriter::Close>("close"),
                      InstanceAccessor<&NotifyTableWriter::SlotCount>("slotCount"),
                      InstanceAccessor<&NotifyTableWriter::Instance>("instance")});
}

NotifyTableWriter::NotifyTableWriter(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NotifyTableWriter>(info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsString() || !info[1].IsNumber() ||
      (info.Length() > 2 && !info[2].IsUndefined() && !info[2].IsNumber())) {
    Napi::TypeError::New(env, "new NotifyTableWriter(path, slotCount, readerUid?)").ThrowAsJavaScriptException();
    return;
  }
  std::string path = info[0].As<Napi::String>().Utf8Value();
  double count = info[1].As<Napi::Number>().DoubleValue();
  if (!(count >= 1) || count > (1u << 24) || count != static_cast<double>(static_cast<uint32_t>(count))) {
    Napi::RangeError::New(env, "slotCount must be an integer from 1 to 16777216").ThrowAsJavaScriptException();
    return;
  }
  bool for_other = info.Length() > 2 && info[2].IsNumber();
  uint32_t reader_uid = 0;
  if (for_other) {
    double uid = info[2].As<Napi::Number>().DoubleValue();
    if (!(uid >= 0) || uid >= 4294967295.0 || uid != static_cast<double>(static_cast<uint32_t>(uid))) {
      Napi::RangeError::New(env, "readerUid must be a uid (an integer from 0 to 4294967294)").ThrowAsJavaScriptException();
      return;
    }
    reader_uid = static_cast<uint32_t>(uid);
    for_other = reader_uid != geteuid();
  }
  uint32_t slots = static_cast<uint32_t>(count);
  size_t bytes = kNotifyHeaderBytes + static_cast<size_t>(slots) * kNotifySlotBytes;
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    ErrnoError(env, "cannot create notify table " + path, errno).ThrowAsJavaScriptException();
    return;
  }
  // Owner only (whatever the umask): the table shows when each watched name
  // changes, which only those who may watch those names may learn. Another
  // uid's table is opened to that uid alone, by an ACL (docs/SECURITY.md,
  // "The notify table").
  if (fchmod(fd, 0600) != 0 || ftruncate(fd, static_cast<off_t>(bytes)) != 0) {
    int err = errno;
    close(fd);
    unlink(path.c_str());
    ErrnoError(env, "cannot size notify table " + path, err).ThrowAsJavaScriptException();
    return;
  }
  if (for_other) {
    int acl_err = GrantRead(fd, reader_uid);
    if (acl_err != 0) {
      close(fd);
      unlink(path.c_str());
      ErrnoError(env, "cannot let uid " + std::to_string(reader_uid) + " read notify table " + path + " (POSIX ACL)", acl_err)
          .ThrowAsJavaScriptException();
      return;
    }
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

// Out of line: Waker is complete only here.
NotifyTableWriter::~NotifyTableWriter() = default;

// assign(slot, nameHash, state): gives the slot to a name (hash 0 frees it)
// and publishes its state, waking anyone still sleeping on it.
Napi::Value NotifyTableWriter::Assign(const Napi::CallbackInfo& info) {
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
Napi::Value NotifyTableWriter::Post(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t index;
  uint64_t state;
  if (SlotArg(info, mapping_, kWriterClosed, &index) == nullptr || !ReadState(info, 1, &state)) return env.Undefined();
  Bump(index, state);
  return env.Undefined();
}

void NotifyTableWriter::Bump(uint32_t index, uint64_t state) {
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

Napi::Value NotifyTableWriter::State(const Napi::CallbackInfo& info) { return SlotState(info, mapping_, kWriterClosed); }
Napi::Value NotifyTableWriter::Generation(const Napi::CallbackInfo& info) { return SlotGeneration(info, mapping_, kWriterClosed); }
Napi::Value NotifyTableWriter::SlotCount(const Napi::CallbackInfo& info) { return SlotCountOf(info, mapping_); }
Napi::Value NotifyTableWriter::Instance(const Napi::CallbackInfo& info) { return InstanceOf(info, mapping_); }

Napi::Value NotifyTableWriter::Close(const Napi::CallbackInfo& info) {
  waker_.reset();  // joins after making the wakes still queued
  mapping_.reset();
  return info.Env().Undefined();
}

}  // namespace xpcbus
