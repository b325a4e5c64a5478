// The notify table's mapping and the helpers its writer, reader and waiter
// share (table_mapping.h).
#include "linux/table_mapping.h"

#include <errno.h>
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <climits>
#include <cstring>

namespace xpcbus {

TableMapping::~TableMapping() {
  if (base != nullptr) munmap(base, bytes);
}

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

bool IsOpen(Napi::Env env, const std::shared_ptr<TableMapping>& mapping, const char* closed) {
  if (mapping) return true;
  Napi::Error::New(env, closed).ThrowAsJavaScriptException();
  return false;
}

NotifySlot* SlotArg(const Napi::CallbackInfo& info, const std::shared_ptr<TableMapping>& mapping, const char* closed,
                    uint32_t* index) {
  if (!IsOpen(info.Env(), mapping, closed) || !ReadSlotIndex(info, 0, mapping->slot_count, index)) return nullptr;
  return SlotAt(mapping->base, *index);
}

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

}  // namespace xpcbus
