// A joinable thread started with a checked call (native_thread.h).
#include "linux/native_thread.h"

#include <time.h>

#include <memory>
#include <utility>

namespace xpcbus {

int NativeThread::Start(std::function<void()> body) {
  auto* heap = new std::function<void()>(std::move(body));
  int err = pthread_create(&thread_, nullptr, &Trampoline, heap);
  if (err != 0) {
    delete heap;
    return err;
  }
  started_ = true;
  return 0;
}

void NativeThread::Join() {
  if (!started_) return;
  pthread_join(thread_, nullptr);
  started_ = false;
}

bool NativeThread::JoinWithin(long ms) {
  if (!started_) return true;
  timespec deadline;
  clock_gettime(CLOCK_REALTIME, &deadline);
  deadline.tv_nsec += ms * 1000000L;
  deadline.tv_sec += deadline.tv_nsec / 1000000000L;
  deadline.tv_nsec %= 1000000000L;
  if (pthread_timedjoin_np(thread_, nullptr, &deadline) != 0) return false;
  started_ = false;
  return true;
}

void* NativeThread::Trampoline(void* arg) {
  std::unique_ptr<std::function<void()>> body(static_cast<std::function<void()>*>(arg));
  (*body)();
  return nullptr;
}

}  // namespace xpcbus
