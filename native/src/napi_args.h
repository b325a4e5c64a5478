// Argument readers shared by both platform halves. Each returns false after
// throwing a TypeError/RangeError that names what was expected.
#pragma once

#include <napi.h>

#include <cstdint>
#include <string>

namespace xpcbus {

// A notify state: a bigint in 0 .. 2^64-1.
inline bool ReadState(const Napi::CallbackInfo& info, size_t arg, uint64_t* out) {
  if (info.Length() <= arg || !info[arg].IsBigInt()) {
    Napi::TypeError::New(info.Env(), "state must be a bigint").ThrowAsJavaScriptException();
    return false;
  }
  bool lossless = false;
  *out = info[arg].As<Napi::BigInt>().Uint64Value(&lossless);
  if (!lossless) {
    Napi::RangeError::New(info.Env(), "state must fit in an unsigned 64-bit integer").ThrowAsJavaScriptException();
    return false;
  }
  return true;
}

inline bool ReadNumber(const Napi::CallbackInfo& info, size_t arg, const char* what, double* out) {
  if (info.Length() <= arg || !info[arg].IsNumber()) {
    Napi::TypeError::New(info.Env(), std::string(what) + " must be a number").ThrowAsJavaScriptException();
    return false;
  }
  *out = info[arg].As<Napi::Number>().DoubleValue();
  return true;
}

inline bool ReadString(const Napi::CallbackInfo& info, size_t arg, const char* what, std::string* out) {
  if (info.Length() <= arg || !info[arg].IsString()) {
    Napi::TypeError::New(info.Env(), std::string(what) + " must be a string").ThrowAsJavaScriptException();
    return false;
  }
  *out = info[arg].As<Napi::String>().Utf8Value();
  return true;
}

}  // namespace xpcbus
