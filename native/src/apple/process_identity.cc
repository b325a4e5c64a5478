// processIdentity(pid): who a running process is, for `xpcbus policy explain
// --pid` on macOS (Linux reads /proc from TypeScript). The effective uid and
// gid, as the broker sees a peer's (audit_token_to_euid), and the executable.
// By pid only: fine for explaining a rule, never used to admit anyone.
#include "apple/process_identity.h"

#include <errno.h>
#include <libproc.h>
#include <sys/proc_info.h>

namespace xpcbus {

Napi::Value ProcessIdentity(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) {
    Napi::TypeError::New(env, "processIdentity(pid): pid must be a number").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int pid = info[0].As<Napi::Number>().Int32Value();
  struct proc_bsdinfo bsd;
  int n = proc_pidinfo(pid, PROC_PIDTBSDINFO, 0, &bsd, sizeof(bsd));
  if (n != static_cast<int>(sizeof(bsd))) return env.Null();
  Napi::Object out = Napi::Object::New(env);
  out.Set("uid", Napi::Number::New(env, bsd.pbi_uid));
  out.Set("gid", Napi::Number::New(env, bsd.pbi_gid));
  char path[PROC_PIDPATHINFO_MAXSIZE];
  int length = proc_pidpath(pid, path, sizeof(path));
  if (length > 0) {
    out.Set("exe", Napi::String::New(env, path, static_cast<size_t>(length)));
  } else {
    out.Set("exe", env.Null());  // another user's process, without the rights to read it
  }
  return out;
}

}  // namespace xpcbus
