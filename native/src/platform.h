// What each platform half adds to the addon's exports besides peer
// credentials (linux/platform.cc: the notify table; apple/platform.cc: XPC
// and notify(3)), and what both halves share.
#pragma once

#include <napi.h>

namespace xpcbus {

void InitPlatform(Napi::Env env, Napi::Object exports);

// Calls onWake() from a ThreadSafeFunction callback. Raw N-API on purpose:
// while a worker or the process is shutting down the call can fail, and
// node-addon-api's Call would then try to throw, which is fatal at that point.
// An exception thrown by onWake itself stays pending and is reported by Node
// as uncaught, like any callback's.
inline void CallOnWake(napi_env env, napi_value onWake) {
  if (env == nullptr || onWake == nullptr) return;
  napi_value recv = nullptr;
  napi_value result = nullptr;
  if (napi_get_undefined(env, &recv) != napi_ok) return;
  napi_call_function(env, recv, onWake, 0, nullptr, &result);
}

}  // namespace xpcbus
