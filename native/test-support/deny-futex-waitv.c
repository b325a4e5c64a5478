/* Runs a command under a seccomp filter that makes futex_waitv(2) fail with
 * EPERM, as a container runtime's default profile may: the notify waiter must
 * then fall back to one FUTEX_WAIT thread per slot instead of spinning.
 * Used by native/notify-native-faults.test.ts. */
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <unistd.h>

#define SYS_FUTEX_WAITV 449 /* the same number on every architecture */

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: deny-futex-waitv command [args...]\n");
    return 2;
  }
  struct sock_filter filter[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_FUTEX_WAITV, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  struct sock_fprog program = {sizeof(filter) / sizeof(filter[0]), filter};
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program) != 0) {
    perror("deny-futex-waitv: seccomp");
    return 1;
  }
  execvp(argv[1], argv + 1);
  perror("deny-futex-waitv: exec");
  return 127;
}
