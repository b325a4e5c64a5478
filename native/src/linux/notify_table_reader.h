// NotifyTableReader: a client's read-only mapping of the notify table.
#pragma once

#include <napi.h>

#include <memory>

#include "linux/table_mapping.h"

namespace xpcbus {

// Marks reader objects, so a waiter can tell a reader from any other object
// without per-environment state (the addon loads in worker threads too).
extern const napi_type_tag kReaderTag;

class NotifyTableReader : public Napi::ObjectWrap<NotifyTableReader> {
 public:
  static Napi::Function Init(Napi::Env env);

  // new NotifyTableReader(path): opens O_RDONLY, checks the header, maps PROT_READ.
  explicit NotifyTableReader(const Napi::CallbackInfo& info);

  std::shared_ptr<TableMapping> mapping() const { return mapping_; }

 private:
  Napi::Value State(const Napi::CallbackInfo& info);
  Napi::Value Generation(const Napi::CallbackInfo& info);
  Napi::Value NameHash(const Napi::CallbackInfo& info);
  Napi::Value WritableErrno(const Napi::CallbackInfo& info);
  Napi::Value SlotCount(const Napi::CallbackInfo& info);
  Napi::Value Instance(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);

  std::shared_ptr<TableMapping> mapping_;
};

}  // namespace xpcbus
