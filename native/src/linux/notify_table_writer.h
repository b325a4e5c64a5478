// NotifyTableWriter: the broker's read-write mapping of the notify table.
#pragma once

#include <napi.h>

#include <cstdint>
#include <memory>

#include "linux/table_mapping.h"

namespace xpcbus {

class Waker;  // notify_table_writer.cc

class NotifyTableWriter : public Napi::ObjectWrap<NotifyTableWriter> {
 public:
  static Napi::Function Init(Napi::Env env);

  // new NotifyTableWriter(path, slotCount, readerUid?): creates the file (it
  // must not exist), mode 0600, and maps it read-write. With readerUid (a uid
  // other than the broker's), an ACL lets that uid, and no one else, read it.
  explicit NotifyTableWriter(const Napi::CallbackInfo& info);
  ~NotifyTableWriter() override;

 private:
  Napi::Value Assign(const Napi::CallbackInfo& info);
  Napi::Value Post(const Napi::CallbackInfo& info);
  void Bump(uint32_t index, uint64_t state);
  Napi::Value State(const Napi::CallbackInfo& info);
  Napi::Value Generation(const Napi::CallbackInfo& info);
  Napi::Value SlotCount(const Napi::CallbackInfo& info);
  Napi::Value Instance(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);

  std::shared_ptr<TableMapping> mapping_;
  std::unique_ptr<Waker> waker_;
  bool waker_failed_ = false;
};

}  // namespace xpcbus
