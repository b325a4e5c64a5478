// macOS peer credentials for the Unix socket transport (used on a Mac for the
// conformance suite; XPC peers carry their own audit token). LOCAL_PEERTOKEN
// gives the audit token of the process that connected, which names it
// uniquely (pid + pid version), and the executable is read through it
// (audit_token.cc) without the pid-reuse race of proc_pidpath.
#include "peer_credentials.h"

#include <bsm/libbsm.h>
#include <errno.h>
#include <sys/socket.h>
#include <sys/ucred.h>
#include <sys/un.h>
#include <unistd.h>

#include "apple/audit_token.h"

namespace xpcbus {

const char* const kPlatformName = "apple";

int ReadPeerCredentials(int fd, PeerCredentials* out) {
  audit_token_t token;
  socklen_t len = sizeof(token);
  if (getsockopt(fd, SOL_LOCAL, LOCAL_PEERTOKEN, &token, &len) != 0) return errno;
  out->method = ReadAuditTokenIdentity(token, out) ? "local_peertoken" : "local_peerpid";
  return 0;
}

}  // namespace xpcbus
