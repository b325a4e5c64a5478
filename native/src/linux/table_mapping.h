// The Linux notify table's mapping and the helpers its writer, reader and
// waiter share (notify_table_writer.cc, notify_table_reader.cc,
// notify_waiter.cc; the layout is notify_layout.h).
//
// Writer (broker): post = store state, then bump the generation with release
// order (a checking client sees it at once), then one FUTEX_WAKE on the
// generation word. Reader (clients): the file opened O_RDONLY and mapped
// PROT_READ, so a client cannot write it. Waiter: threads asleep on the
// generation words of a reader's mapping.
#pragma once

#include <napi.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "notify_layout.h"

namespace xpcbus {

// A mapping of the table, shared by a reader and the waiters using it, so
// that closing the reader never unmaps memory a waiter thread is reading.
struct TableMapping {
  void* base = nullptr;
  size_t bytes = 0;
  uint32_t slot_count = 0;
  ~TableMapping();
};

inline NotifySlot* SlotAt(void* base, uint32_t index) {
  return reinterpret_cast<NotifySlot*>(static_cast<char*>(base) + kNotifyHeaderBytes +
                                       static_cast<size_t>(index) * kNotifySlotBytes);
}

inline uint32_t LoadGeneration(const NotifySlot* slot) {
  return __atomic_load_n(&slot->generation, __ATOMIC_ACQUIRE);
}

inline uint64_t LoadState(const NotifySlot* slot) { return __atomic_load_n(&slot->state, __ATOMIC_RELAXED); }

// FUTEX_WAKE of every thread asleep on the word at `addr` (not private: the
// sleepers are in other processes).
long FutexWake(const void* addr);

// An Error whose message ends with strerror(err), with `errno` set to err.
Napi::Error ErrnoError(Napi::Env env, const std::string& what, int err);

// Argument `arg` as a slot index below `slot_count`, or false after throwing.
bool ReadSlotIndex(const Napi::CallbackInfo& info, size_t arg, uint32_t slot_count, uint32_t* out);

// Throws `closed` when the mapping is gone (after close()).
bool IsOpen(Napi::Env env, const std::shared_ptr<TableMapping>& mapping, const char* closed);

// The slot named by argument 0 of an open mapping (its index in `index`), or
// nullptr after throwing: closed, or out of range. Writer and reader alike.
NotifySlot* SlotArg(const Napi::CallbackInfo& info, const std::shared_ptr<TableMapping>& mapping, const char* closed,
                    uint32_t* index);

// state(slot) and generation(slot), the same on the writer and the reader.
Napi::Value SlotState(const Napi::CallbackInfo& info, const std::shared_ptr<TableMapping>& mapping, const char* closed);
Napi::Value SlotGeneration(const Napi::CallbackInfo& info, const std::shared_ptr<TableMapping>& mapping, const char* closed);

// Maps `bytes` of the table open on `fd` (closed here either way) with `prot`;
// nullptr with `*err` set when mmap fails.
std::shared_ptr<TableMapping> MapTable(int fd, size_t bytes, int prot, uint32_t slots, int* err);

// The slotCount and instance accessors, the same on the writer and the reader.
Napi::Value SlotCountOf(const Napi::CallbackInfo& info, const std::shared_ptr<TableMapping>& mapping);
Napi::Value InstanceOf(const Napi::CallbackInfo& info, const std::shared_ptr<TableMapping>& mapping);

}  // namespace xpcbus
