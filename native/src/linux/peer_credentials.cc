// Linux peer credentials: SO_PEERCRED for pid/uid/gid, and a pidfd to read
// /proc/<pid>/exe without being fooled by a recycled pid. SO_PEERPIDFD
// (Linux 6.5) gives a pidfd for the very process that connected;
// pidfd_open (5.3) is the fallback, which can race with pid reuse between
// connect() and the call, so `method` records which one was used. Without
// any pidfd (no fd left, an old kernel, seccomp) the exe is still read, by
// pid alone, and reported with exe_verified = false: the policy gives it no
// weight (docs/SECURITY.md).
#include "peer_credentials.h"

#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77
#endif

namespace xpcbus {

const char* const kPlatformName = "linux";

namespace {

// A pidfd for the peer, or -1 with `why` saying what each way answered.
int OpenPidfd(int sock, long pid, std::string* method, std::string* why) {
  int pidfd = -1;
  socklen_t len = sizeof(pidfd);
  if (getsockopt(sock, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &len) == 0 && pidfd >= 0) {
    *method = "so_peerpidfd";
    return pidfd;
  }
  *why = std::string("SO_PEERPIDFD: ") + std::strerror(errno);
#ifdef SYS_pidfd_open
  pidfd = static_cast<int>(syscall(SYS_pidfd_open, static_cast<pid_t>(pid), 0));
  if (pidfd >= 0) {
    *method = "pidfd_open";
    return pidfd;
  }
  *why += std::string("; pidfd_open: ") + std::strerror(errno);
#else
  *why += "; pidfd_open: not in this build";
#endif
  *method = "so_peercred";
  return -1;
}

// The pid a pidfd refers to, from /proc/self/fdinfo ("Pid:" is -1 once the
// process has exited), or 0 when it cannot be read.
long PidOfPidfd(int pidfd) {
  char path[64];
  std::snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", pidfd);
  FILE* f = std::fopen(path, "re");
  if (f == nullptr) return 0;
  long pid = 0;
  char line[256];
  while (std::fgets(line, sizeof(line), f) != nullptr) {
    if (std::strncmp(line, "Pid:", 4) == 0) {
      pid = std::strtol(line + 4, nullptr, 10);
      break;
    }
  }
  std::fclose(f);
  return pid;
}

bool ReadExe(long pid, std::string* exe, std::string* error) {
  char link[64];
  std::snprintf(link, sizeof(link), "/proc/%ld/exe", pid);
  char buf[PATH_MAX];
  ssize_t n = readlink(link, buf, sizeof(buf) - 1);
  if (n < 0) {
    *error = std::string("readlink ") + link + ": " + std::strerror(errno);
    return false;
  }
  exe->assign(buf, static_cast<size_t>(n));
  return true;
}

}  // namespace

int ReadPeerCredentials(int fd, PeerCredentials* out) {
  struct ucred cred;
  socklen_t len = sizeof(cred);
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return errno;
  out->pid = cred.pid;
  out->uid = cred.uid;
  out->gid = cred.gid;
  if (cred.pid <= 0) {
    out->method = "so_peercred";
    out->exe_error = "the peer has no pid in this pid namespace";
    return 0;
  }

  std::string no_pidfd;
  int pidfd = OpenPidfd(fd, cred.pid, &out->method, &no_pidfd);
  std::string exe;
  bool read = ReadExe(cred.pid, &exe, &out->exe_error);
  bool verified = pidfd >= 0;
  if (pidfd >= 0) {
    // Read the link first, then confirm the pidfd still names a live process
    // with that pid: if so, the link we read was that process's, not a
    // successor's that reused the pid.
    long now = PidOfPidfd(pidfd);
    close(pidfd);
    if (read && now != cred.pid) {
      read = false;
      out->exe_error = now == -1 ? "the peer exited before its executable could be confirmed"
                                 : "the peer's pidfd does not match its pid";
    }
  }
  if (read) {
    out->has_exe = true;
    out->exe = exe;
    out->exe_verified = verified;
    if (!verified) out->exe_error = "read by pid only, without a pidfd (" + no_pidfd + ")";
  }
  return 0;
}

}  // namespace xpcbus
