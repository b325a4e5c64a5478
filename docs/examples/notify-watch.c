/*
 * notify-watch: wait for posts of one xpcbus notification name on Linux,
 * with nothing but the table layout of docs/PROTOCOL.md ("Notify table").
 *
 *   cc -O2 -o notify-watch notify-watch.c
 *   ./notify-watch "$XDG_RUNTIME_DIR/xpcbus/broker.sock.notify" io.xpcbus.broker.battery.level
 *   ./notify-watch "/run/xpcbus/broker.sock.notify.$(id -u)" io.xpcbus.broker.battery.level
 *
 * The first is a per-user broker's table, the second a system broker's table
 * for your uid (each uid has its own, readable by it alone: the path is the
 * one `welcome.notify.table` gives). The name must hold a slot in that table:
 * some client of your uid has sent {"op":"watch","name":...} and is still
 * connected (a C client would send it itself; see PROTOCOL.md).
 * Prints "state N" after every post (coalesced when posts come faster).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <inttypes.h>
#include <linux/futex.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

struct header {
  char magic[8]; /* "XPCBNTF1" */
  uint32_t version, slot_count, slot_bytes, header_bytes;
  uint64_t instance;
  uint8_t reserved[32];
};

struct slot {
  uint64_t state;
  uint32_t generation; /* futex word */
  uint32_t name_hash;  /* FNV-1a 32 of the name; never 0 for a used slot */
};

static uint32_t fnv1a(const char *name) {
  uint32_t hash = 0x811c9dc5u;
  for (const unsigned char *p = (const unsigned char *)name; *p; p++) hash = (hash ^ *p) * 0x01000193u;
  return hash == 0 ? 1 : hash;
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s TABLE NAME\n", argv[0]);
    return 2;
  }
  /* O_NONBLOCK: opening a FIFO for reading would otherwise wait for a
     writer forever. It changes nothing for the regular file we accept. */
  int fd = open(argv[1], O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0) {
    perror(argv[1]);
    return 1;
  }
  if (!S_ISREG(st.st_mode)) {
    fprintf(stderr, "%s is not a regular file, so not an xpcbus notify table\n", argv[1]);
    return 1;
  }
  /* The header is read into our own copy and checked against the file's
     size before anything is mapped: a short or corrupt file must give an
     error, not a read past the mapping (SIGBUS/SIGSEGV). The checked copy
     is the one used afterwards. */
  struct header h;
  if (st.st_size < (off_t)sizeof h || pread(fd, &h, sizeof h, 0) != (ssize_t)sizeof h ||
      memcmp(h.magic, "XPCBNTF1", 8) != 0 || h.version != 1 || h.slot_bytes != sizeof(struct slot) ||
      h.header_bytes < sizeof h || h.header_bytes % 8 != 0) {
    fprintf(stderr, "%s is not an xpcbus notify table v1\n", argv[1]);
    return 1;
  }
  /* At most 2^32 + 2^32 * 16 bytes: computed in 64 bits, it cannot wrap. */
  uint64_t table_bytes = h.header_bytes + (uint64_t)h.slot_count * h.slot_bytes;
  if ((uint64_t)st.st_size < table_bytes || table_bytes > (uint64_t)SIZE_MAX) {
    fprintf(stderr, "%s is truncated: its header says %" PRIu32 " slots (%" PRIu64 " bytes), the file has %" PRIu64 " bytes\n",
            argv[1], h.slot_count, table_bytes, (uint64_t)st.st_size);
    return 1;
  }
  const void *base = mmap(NULL, (size_t)table_bytes, PROT_READ, MAP_SHARED, fd, 0);
  if (base == MAP_FAILED) {
    perror("mmap");
    return 1;
  }
  struct slot *slots = (struct slot *)((const char *)base + h.header_bytes);
  uint32_t hash = fnv1a(argv[2]);
  struct slot *mine = NULL;
  for (uint32_t i = 0; i < h.slot_count && mine == NULL; i++)
    if (__atomic_load_n(&slots[i].name_hash, __ATOMIC_RELAXED) == hash) mine = &slots[i];
  if (mine == NULL) {
    fprintf(stderr, "no slot holds %s: no client watches it\n", argv[2]);
    return 1;
  }
  /* The baseline first, then the announcement: a post made by whoever reads
   * "watching" is after `seen`, so it wakes us instead of being absorbed. */
  uint32_t seen = __atomic_load_n(&mine->generation, __ATOMIC_ACQUIRE);
  printf("watching %s in slot %ld\n", argv[2], (long)(mine - slots));
  fflush(stdout);
  for (;;) {
    /* Sleeps only while the word still equals `seen`; a post bumps it and wakes us. */
    syscall(SYS_futex, &mine->generation, FUTEX_WAIT, seen, NULL, NULL, 0);
    uint32_t now = __atomic_load_n(&mine->generation, __ATOMIC_ACQUIRE);
    if (now == seen) continue; /* spurious wake-up */
    seen = now;
    printf("state %" PRIu64 "\n", __atomic_load_n(&mine->state, __ATOMIC_RELAXED));
    fflush(stdout);
  }
}
