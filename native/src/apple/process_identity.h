// processIdentity(pid) for the apple half (process_identity.cc).
#pragma once

#include <napi.h>

namespace xpcbus {

Napi::Value ProcessIdentity(const Napi::CallbackInfo& info);

}  // namespace xpcbus
