// A joinable thread started with a checked call, for the notify table's
// writer (its waker) and waiter.
#pragma once

#include <pthread.h>

#include <functional>

namespace xpcbus {

// A joinable thread started with a checked call. Exceptions are off, so a
// std::thread that cannot start would end the process in std::terminate; this
// reports the errno instead (EAGAIN under RLIMIT_NPROC, for one).
class NativeThread {
 public:
  NativeThread() = default;
  NativeThread(const NativeThread&) = delete;
  NativeThread& operator=(const NativeThread&) = delete;
  ~NativeThread() { Join(); }

  // 0, or the errno of the failure (nothing runs then).
  int Start(std::function<void()> body);

  void Join();

  // Joins if the thread has ended within `ms`; false if it still runs.
  bool JoinWithin(long ms);

 private:
  static void* Trampoline(void* arg);

  pthread_t thread_{};
  bool started_ = false;
};

}  // namespace xpcbus
