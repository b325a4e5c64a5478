// Who is on the other end of an accepted Unix socket. Each platform half
// (linux/, apple/) fills this in; addon.cc turns it into a JS object. No
// policy here: the TypeScript side decides what to trust.
#pragma once

#include <string>

namespace xpcbus {

struct PeerCredentials {
  long pid = -1;         // -1: unknown
  long uid = -1;
  long gid = -1;
  bool has_exe = false;  // false: exe could not be read safely (see exe_error)
  std::string exe;
  // true: `exe` is known to be the connecting process's (pidfd, audit
  // token). false: it was read by pid alone, so a process that got the pid
  // after the peer exited could pass for it; policy must not trust it. False
  // unless a platform half proves otherwise.
  bool exe_verified = false;
  // How pid/exe were tied to the process: "so_peerpidfd", "pidfd_open",
  // "local_peertoken", "local_peerpid", "so_peercred".
  std::string method;
  std::string exe_error;  // why has_exe or exe_verified is false
};

// "linux" or "apple": which half was compiled in.
extern const char* const kPlatformName;

// Returns 0 and fills `out`, or returns an errno value when the credentials
// themselves (pid/uid/gid) cannot be read from `fd`.
int ReadPeerCredentials(int fd, PeerCredentials* out);

}  // namespace xpcbus
