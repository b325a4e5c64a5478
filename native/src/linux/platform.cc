// The Linux half's notify center (platform.h): a shared table of slots
// (notify_layout.h) that the broker writes (notify_table_writer.cc), clients
// map read-only (notify_table_reader.cc) and sleep on (notify_waiter.cc).
#include "platform.h"

#include "linux/notify_table_reader.h"
#include "linux/notify_table_writer.h"
#include "linux/notify_waiter.h"

namespace xpcbus {

void InitPlatform(Napi::Env env, Napi::Object exports) {
  exports.Set("NotifyTableWriter", NotifyTableWriter::Init(env));
  exports.Set("NotifyTableReader", NotifyTableReader::Init(env));
  exports.Set("NotifyWaiter", NotifyWaiter::Init(env));
}

}  // namespace xpcbus
