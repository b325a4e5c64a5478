/*
 * The C floor: two processes ping-pong `size`-byte messages over a Unix
 * stream socket pair, one every `interval_us`; prints each one-way latency
 * (round trip / 2) in nanoseconds, one per line. Built by the benchmark
 * harness at run time when a C compiler is present.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int full(int fd, char *buf, size_t n, int writing) {
  size_t done = 0;
  while (done < n) {
    ssize_t r = writing ? write(fd, buf + done, n - done) : read(fd, buf + done, n - done);
    if (r <= 0) return -1;
    done += (size_t)r;
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: %s COUNT SIZE INTERVAL_US\n", argv[0]);
    return 2;
  }
  int count = atoi(argv[1]);
  size_t size = (size_t)atoi(argv[2]);
  long interval_us = atol(argv[3]);
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds) != 0) return 1;
  char *buf = calloc(1, size < 8 ? 8 : size);
  pid_t child = fork();
  if (child == 0) {
    close(fds[0]);
    while (full(fds[1], buf, size, 0) == 0 && full(fds[1], buf, size, 1) == 0) {
    }
    _exit(0);
  }
  close(fds[1]);
  struct timespec pause = {interval_us / 1000000, (interval_us % 1000000) * 1000};
  for (int i = 0; i < count; i++) {
    if (interval_us > 0) nanosleep(&pause, NULL);
    uint64_t start = now_ns();
    if (full(fds[0], buf, size, 1) != 0 || full(fds[0], buf, size, 0) != 0) return 1;
    printf("%llu\n", (unsigned long long)((now_ns() - start) / 2));
  }
  close(fds[0]);
  waitpid(child, NULL, 0);
  return 0;
}
