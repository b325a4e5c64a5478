// What each platform half adds to the addon's exports besides peer
// credentials: the notify center (linux/notify_table.cc, apple/notify_center.cc).
#pragma once

#include <napi.h>

namespace xpcbus {

void InitPlatform(Napi::Env env, Napi::Object exports);

}  // namespace xpcbus
