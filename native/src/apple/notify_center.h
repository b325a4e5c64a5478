// The macOS notify center's exports (notify_center.cc): NotifyPoster,
// NotifyDispatchWatcher and DarwinNotify.
#pragma once

#include <napi.h>

namespace xpcbus {

void InitNotifyCenter(Napi::Env env, Napi::Object exports);

}  // namespace xpcbus
