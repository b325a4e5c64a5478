// The apple half's exports (platform.h): the XPC transport (xpc_listener.cc,
// xpc_client.cc, xpc_shared.cc), the code-signing check the policy's
// codeSigning rules use (code_signing.cc), notify(3) (notify_center.cc), and
// who a process is for `policy explain --pid` (process_identity.cc).
#include "platform.h"

#include "apple/code_signing.h"
#include "apple/notify_center.h"
#include "apple/process_identity.h"
#include "apple/xpc_client.h"
#include "apple/xpc_listener.h"
#include "apple/xpc_shared.h"

namespace xpcbus {

void InitPlatform(Napi::Env env, Napi::Object exports) {
  exports.Set("xpcEncode", Napi::Function::New(env, Encode, "xpcEncode"));
  exports.Set("codeSatisfies", Napi::Function::New(env, CodeSatisfies, "codeSatisfies"));
  exports.Set("processIdentity", Napi::Function::New(env, ProcessIdentity, "processIdentity"));
  exports.Set("XpcListener", XpcListener::Init(env));
  exports.Set("XpcClient", XpcClient::Init(env));
  InitNotifyCenter(env, exports);
}

}  // namespace xpcbus
