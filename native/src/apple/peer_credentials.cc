// macOS peer credentials for the Unix socket transport (used on a Mac for the
// conformance suite; XPC peers carry their own audit token). LOCAL_PEERTOKEN
// gives the audit token of the process that connected, which names it
// uniquely (pid + pid version), and proc_pidpath_audittoken reads its
// executable without the pid-reuse race of proc_pidpath.
#include "peer_credentials.h"

#include <bsm/libbsm.h>
#include <errno.h>
#include <libproc.h>
#include <sys/socket.h>
#include <sys/ucred.h>
#include <sys/un.h>
#include <unistd.h>

namespace xpcbus {

const char* const kPlatformName = "apple";

int ReadPeerCredentials(int fd, PeerCredentials* out) {
  audit_token_t token;
  socklen_t len = sizeof(token);
  if (getsockopt(fd, SOL_LOCAL, LOCAL_PEERTOKEN, &token, &len) != 0) return errno;
  out->pid = audit_token_to_pid(token);
  out->uid = audit_token_to_euid(token);
  out->gid = audit_token_to_egid(token);
  out->method = "local_peertoken";

  char path[PROC_PIDPATHINFO_MAXSIZE];
  int n = 0;
  if (__builtin_available(macOS 11.0, *)) {
    n = proc_pidpath_audittoken(&token, path, sizeof(path));
  } else {
    // Older systems: by pid only, which a recycled pid could fool.
    n = proc_pidpath(static_cast<int>(out->pid), path, sizeof(path));
    out->method = "local_peerpid";
  }
  if (n <= 0) {
    out->exe_error = "proc_pidpath failed";
    return 0;
  }
  out->has_exe = true;
  out->exe.assign(path, static_cast<size_t>(n));
  // Through the audit token the path is the connecting process's; by pid only, not.
  out->exe_verified = out->method == "local_peertoken";
  if (!out->exe_verified) out->exe_error = "read by pid only, without the audit token";
  return 0;
}

}  // namespace xpcbus
