// Preloaded by native/test-sanitize.sh after the ASan runtime, for what ASan
// changes about a Node process and that the tests must not trip over.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stddef.h>

// dlclose() does nothing. Node dlcloses an addon when the last environment
// that loaded it ends (a worker thread, a vitest test file in --pool=threads);
// LeakSanitizer reports at process exit, and by then the code of an unloaded
// module is gone and its frames print as "<unknown module>": no function, no
// file, and no way for lsan.supp to tell a third-party leak from one of ours.
int dlclose(void *handle) {
  (void)handle;
  return 0;
}

// Threads that ask for a stack get at least 16 MiB. ASan's redzones make
// frames several times larger: the value tree's recursion to its depth limit
// (1000) overflows 8 MiB under ASan and fits in 4 MiB without, and Node gives
// a worker thread 4 MiB. Only the reservation grows (pages are touched on use).
#define MIN_STACK_BYTES ((size_t)16 << 20)

int pthread_attr_setstacksize(pthread_attr_t *attr, size_t size) {
  static int (*real)(pthread_attr_t *, size_t);
  if (real == NULL) real = (int (*)(pthread_attr_t *, size_t))dlsym(RTLD_NEXT, "pthread_attr_setstacksize");
  return real(attr, size < MIN_STACK_BYTES ? MIN_STACK_BYTES : size);
}
