// The Linux notify table's layout (docs/PROTOCOL.md, "Notify table"): one
// file the broker maps read-write and clients map read-only. Fixed-size
// slots, each a 64-bit state and a 32-bit generation that is also the futex
// word waiters sleep on. Native byte order (little-endian on x86_64/arm64).
#pragma once

#include <cstdint>

namespace xpcbus {

constexpr char kNotifyMagic[8] = {'X', 'P', 'C', 'B', 'N', 'T', 'F', '1'};
constexpr uint32_t kNotifyVersion = 1;
constexpr uint32_t kNotifyHeaderBytes = 64;
constexpr uint32_t kNotifySlotBytes = 16;

struct NotifyHeader {
  char magic[8];          // "XPCBNTF1"
  uint32_t version;       // 1
  uint32_t slot_count;
  uint32_t slot_bytes;    // 16
  uint32_t header_bytes;  // 64
  uint64_t instance;      // changes every time a broker creates the table
  uint8_t reserved[32];
};
static_assert(sizeof(NotifyHeader) == kNotifyHeaderBytes, "header is 64 bytes");

struct NotifySlot {
  uint64_t state;       // written before generation is bumped
  uint32_t generation;  // +1 per post (release order); futex word
  uint32_t name_hash;   // FNV-1a 32 of the name assigned to the slot, 0 = free
};
static_assert(sizeof(NotifySlot) == kNotifySlotBytes, "slot is 16 bytes");

}  // namespace xpcbus
