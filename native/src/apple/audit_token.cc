// Who an audit token names (audit_token.h).
#include "apple/audit_token.h"

#include <libproc.h>

namespace xpcbus {

bool ReadAuditTokenIdentity(const audit_token_t& token, PeerCredentials* out) {
  out->pid = audit_token_to_pid(token);
  out->uid = audit_token_to_euid(token);
  out->gid = audit_token_to_egid(token);

  audit_token_t copy = token;  // proc_pidpath_audittoken takes a non-const pointer
  char path[PROC_PIDPATHINFO_MAXSIZE];
  int n = 0;
  bool through_token = false;
  if (__builtin_available(macOS 11.0, *)) {
    n = proc_pidpath_audittoken(&copy, path, sizeof(path));
    through_token = true;
  } else {
    // Older systems: by pid only, which a recycled pid could fool.
    n = proc_pidpath(static_cast<int>(out->pid), path, sizeof(path));
  }
  if (n <= 0) {
    out->exe_error = "proc_pidpath failed";
    return through_token;
  }
  out->has_exe = true;
  out->exe.assign(path, static_cast<size_t>(n));
  // Through the audit token the path is the process's; by pid only, not.
  out->exe_verified = through_token;
  if (!out->exe_verified) out->exe_error = "read by pid only, without the audit token";
  return through_token;
}

}  // namespace xpcbus
