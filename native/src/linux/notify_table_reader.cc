// The notify table's reader (clients): the file opened O_RDONLY and mapped
// PROT_READ, so a client cannot write it (mmap or mprotect with PROT_WRITE
// fails with EACCES). check = compare a generation with the last one seen: a
// memory read, no syscall.
#include "linux/notify_table_reader.h"

#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "notify_layout.h"

namespace xpcbus {

namespace {

constexpr const char* kReaderClosed = "the notify table reader is closed";

}  // namespace

const napi_type_tag kReaderTag = {0x7870636275735244ULL, 0x4e6f746966795461ULL};

Napi::Function NotifyTableReader::Init(Napi::Env env) {
  return DefineClass(env, "NotifyTableReader",
                     {InstanceMethod<&NotifyTableReader::State>("state"),
                      InstanceMethod<&NotifyTableReader::Generation>("generation"),
                      InstanceMethod<&NotifyTableReader::NameHash>("nameHash"),
                      InstanceMethod<&NotifyTableReader::WritableErrno>("writableErrno"),
                      InstanceMethod<&NotifyTableReader::Close>("close"),
                      InstanceAccessor<&NotifyTableReader::SlotCount>("slotCount"),
                      InstanceAccessor<&NotifyTableReader::Instance>("instance")});
}

NotifyTableReader::NotifyTableReader(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NotifyTableReader>(info) {
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

Napi::Value NotifyTableReader::State(const Napi::CallbackInfo& info) { return SlotState(info, mapping_, kReaderClosed); }
Napi::Value NotifyTableReader::Generation(const Napi::CallbackInfo& info) { return SlotGeneration(info, mapping_, kReaderClosed); }

Napi::Value NotifyTableReader::NameHash(const Napi::CallbackInfo& info) {
  uint32_t index;
  NotifySlot* slot = SlotArg(info, mapping_, kReaderClosed, &index);
  if (slot == nullptr) return info.Env().Undefined();
  return Napi::Number::New(info.Env(), __atomic_load_n(&slot->name_hash, __ATOMIC_RELAXED));
}

// Tries to make the mapping writable and returns the errno (EACCES): the
// proof that a client cannot write the table through its mapping.
Napi::Value NotifyTableReader::WritableErrno(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!IsOpen(env, mapping_, kReaderClosed)) return env.Undefined();
  if (mprotect(mapping_->base, mapping_->bytes, PROT_READ | PROT_WRITE) == 0) {
    mprotect(mapping_->base, mapping_->bytes, PROT_READ);
    return Napi::Number::New(env, 0);
  }
  return Napi::Number::New(env, errno);
}

Napi::Value NotifyTableReader::SlotCount(const Napi::CallbackInfo& info) { return SlotCountOf(info, mapping_); }
Napi::Value NotifyTableReader::Instance(const Napi::CallbackInfo& info) { return InstanceOf(info, mapping_); }

Napi::Value NotifyTableReader::Close(const Napi::CallbackInfo& info) {
  mapping_.reset();
  return info.Env().Undefined();
}

}  // namespace xpcbus
