// JS <-> value tree (value_tree.h). Platform-neutral: compiled and tested on
// Linux, used by the XPC transport on macOS.
#include "value_tree.h"

#include <cmath>
#include <cstdint>

namespace xpcbus {

namespace {

constexpr double kMaxSafe = 9007199254740991.0;  // 2^53 - 1

// The Dates an XPC date (int64 nanoseconds since 1970) can hold, in whole
// milliseconds: INT64_MIN / 10^6 and INT64_MAX / 10^6, rounded toward zero,
// i.e. 1677-09-21T00:12:43.146Z .. 2262-04-11T23:47:16.854Z. JS Dates reach
// +-8.64e15 ms, so the range is checked before the conversion: a double
// outside int64's range converted to int64 is undefined behaviour.
constexpr double kMinDateMs = -9223372036854.0;
constexpr double kMaxDateMs = 9223372036854.0;

// Upper bound for the maxDepth option of valueTreeRoundTrip. The depth bound
// is what protects the native stack (Build recurses once per level, two
// frames and a path string each, a few hundred bytes, more under ASan), so it
// cannot be "unlimited": 1000 levels stay far below the 4 MiB stack of a
// worker thread. Messages use ValueLimits' default of 32.
constexpr uint32_t kMaxDepthCeiling = 1000;

// Calls that can run JS (getters, Proxy traps) use napi_* directly and check
// the status: with C++ exceptions off, node-addon-api's failure path aborts
// the process when a JS exception is pending. A throw is turned into the
// error string TreeFromJs returns (and cleared), because its callers throw
// their own TypeError with it.
class Builder {
 public:
  Builder(Napi::Env env, const ValueLimits& limits, std::string* error) : env_(env), limits_(limits), error_(error) {}

  bool Build(Napi::Value value, ValueNode* out, uint32_t depth, const std::string& path) {
    if (++nodes_ > limits_.max_nodes) return Fail(path, "more than " + std::to_string(limits_.max_nodes) + " values");
    if (depth > limits_.max_depth) return Fail(path, "nested deeper than " + std::to_string(limits_.max_depth));
    switch (value.Type()) {
      case napi_undefined:
      case napi_null:
        out->kind = ValueNode::Kind::Null;
        return true;
      case napi_boolean:
        out->kind = ValueNode::Kind::Bool;
        out->boolean = value.As<Napi::Boolean>().Value();
        return true;
      case napi_number:
        return Number(value.As<Napi::Number>().DoubleValue(), out);
      case napi_bigint:
        return BigInt(value.As<Napi::BigInt>(), out, path);
      case napi_string:
        out->kind = ValueNode::Kind::String;
        return Text(value, path, &out->text);
      case napi_object:
        return Object(value.As<Napi::Object>(), out, depth, path);
      default:
        return Fail(path, "a function or symbol cannot be sent");
    }
  }

 private:
  bool Fail(const std::string& path, const std::string& why) {
    *error_ = path + ": " + why;
    return false;
  }

  // Adds `bytes` to the data counted so far, or fails. Compared before
  // adding (bytes_ <= max_bytes always holds), so the sum cannot wrap.
  bool Count(uint64_t bytes, const std::string& path) {
    if (bytes > limits_.max_bytes - bytes_) return Fail(path, "more than " + std::to_string(limits_.max_bytes) + " bytes of data");
    bytes_ += bytes;
    return true;
  }

  // A napi_* call that can run JS failed: reports what JS threw, at `path`.
  bool Threw(const std::string& path, const std::string& what) {
    bool pending = false;
    if (napi_is_exception_pending(env_, &pending) != napi_ok || !pending) return Fail(path, what + " failed");
    napi_value thrown = nullptr;
    napi_get_and_clear_last_exception(env_, &thrown);
    return Fail(path, what + " threw: " + Describe(thrown));
  }

  // The message of a thrown value, read without letting a second throw
  // (a "message" getter, a Proxy) escape; at most 200 bytes.
  std::string Describe(napi_value thrown) {
    napi_valuetype type = napi_undefined;
    if (thrown == nullptr || napi_typeof(env_, thrown, &type) != napi_ok) return "an exception";
    napi_value text = thrown;
    if (type == napi_object || type == napi_function) {
      if (napi_get_named_property(env_, thrown, "message", &text) != napi_ok || napi_typeof(env_, text, &type) != napi_ok) {
        napi_value ignored;
        napi_get_and_clear_last_exception(env_, &ignored);
        return "an exception";
      }
    }
    if (type != napi_string) return "a value that is not an Error";
    char buffer[201];
    size_t length = 0;
    if (napi_get_value_string_utf8(env_, text, buffer, sizeof buffer, &length) != napi_ok) return "an exception";
    return std::string(buffer, length);
  }

  // A JS string as UTF-8, counted against max_bytes before it is copied.
  bool Text(napi_value string, const std::string& path, std::string* out) {
    size_t length = 0;
    if (napi_get_value_string_utf8(env_, string, nullptr, 0, &length) != napi_ok) return Fail(path, "a string that cannot be read");
    if (!Count(length, path)) return false;
    out->resize(length);
    size_t copied = 0;
    // length + 1: the terminating NUL goes to out[length], which std::string reserves.
    if (napi_get_value_string_utf8(env_, string, &(*out)[0], length + 1, &copied) != napi_ok) {
      return Fail(path, "a string that cannot be read");
    }
    out->resize(copied);
    return true;
  }

  static bool Number(double d, ValueNode* out) {
    // The range is checked before the casts (both exact within +-2^53).
    if (std::isfinite(d) && std::floor(d) == d && std::fabs(d) <= kMaxSafe) {
      if (d >= 0) {
        out->kind = ValueNode::Kind::Uint64;
        out->uint64 = static_cast<uint64_t>(d);
      } else {
        out->kind = ValueNode::Kind::Int64;
        out->int64 = static_cast<int64_t>(d);
      }
      return true;
    }
    out->kind = ValueNode::Kind::Double;
    out->number = d;
    return true;
  }

  bool BigInt(Napi::BigInt big, ValueNode* out, const std::string& path) {
    bool lossless = false;
    uint64_t u = big.Uint64Value(&lossless);
    if (lossless) {
      out->kind = ValueNode::Kind::Uint64;
      out->uint64 = u;
      return true;
    }
    int64_t i = big.Int64Value(&lossless);
    if (lossless) {
      out->kind = ValueNode::Kind::Int64;
      out->int64 = i;
      return true;
    }
    return Fail(path, "a bigint outside the 64-bit range");
  }

  // An array or a map claims its size up front: `count` more values are
  // refused before any memory is reserved for them. 64-bit sum: nodes_ and
  // count are each below 2^32.
  bool Room(uint64_t count, const std::string& path) {
    if (nodes_ + count > limits_.max_nodes) return Fail(path, "more than " + std::to_string(limits_.max_nodes) + " values");
    return true;
  }

  bool Object(Napi::Object object, ValueNode* out, uint32_t depth, const std::string& path) {
    if (object.IsTypedArray()) {
      Napi::TypedArray typed = object.As<Napi::TypedArray>();
      if (typed.TypedArrayType() != napi_uint8_array) return Fail(path, "only Uint8Array (or Buffer) binary data can be sent");
      Napi::Uint8Array bytes = object.As<Napi::Uint8Array>();
      size_t length = bytes.ByteLength();
      if (!Count(length, path)) return false;  // before copying
      out->kind = ValueNode::Kind::Bytes;
      if (length > 0) out->text.assign(reinterpret_cast<const char*>(bytes.Data()), length);
      return true;
    }
    if (object.IsArrayBuffer() || object.IsDataView()) return Fail(path, "send binary data as a Uint8Array");
    if (object.IsDate()) {
      double ms = object.As<Napi::Date>().ValueOf();
      if (!std::isfinite(ms)) return Fail(path, "an invalid Date");
      if (!(ms >= kMinDateMs && ms <= kMaxDateMs)) {
        return Fail(path, "a Date outside 1677-09-21T00:12:43.146Z .. 2262-04-11T23:47:16.854Z (an XPC date is int64 nanoseconds since 1970)");
      }
      out->kind = ValueNode::Kind::Date;
      // A Date's time value is a whole number of ms; in range, so exact in int64.
      out->int64 = static_cast<int64_t>(ms) * 1000000;
      return true;
    }
    if (object.IsArray()) {
      out->kind = ValueNode::Kind::Array;
      uint32_t length = object.As<Napi::Array>().Length();
      if (!Room(length, path)) return false;
      out->items.resize(length);
      for (uint32_t i = 0; i < length; i++) {
        std::string at = path + "[" + std::to_string(i) + "]";
        napi_value item;
        if (napi_get_element(env_, object, i, &item) != napi_ok) return Threw(at, "reading it");
        if (!Build(Napi::Value(env_, item), &out->items[i], depth + 1, at)) return false;
      }
      return true;
    }
    napi_value uuid;
    if (napi_get_named_property(env_, object, "$uuid", &uuid) != napi_ok) return Threw(path, "reading $uuid");
    Napi::Value uuid_value(env_, uuid);
    if (!uuid_value.IsUndefined()) {
      if (!uuid_value.IsTypedArray() || uuid_value.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array ||
          uuid_value.As<Napi::Uint8Array>().ByteLength() != 16) {
        return Fail(path, "$uuid must be a Uint8Array of 16 bytes");
      }
      Napi::Uint8Array bytes = uuid_value.As<Napi::Uint8Array>();
      out->kind = ValueNode::Kind::Uuid;
      out->text.assign(reinterpret_cast<const char*>(bytes.Data()), 16);
      return true;
    }
    // Anything else with a prototype other than Object's (Map, class
    // instances, …) would lose its meaning: refuse it.
    napi_value constructor;
    if (napi_get_named_property(env_, object, "constructor", &constructor) != napi_ok) return Threw(path, "reading its constructor");
    if (Napi::Value(env_, constructor).IsFunction()) {
      napi_value name;
      if (napi_get_named_property(env_, constructor, "name", &name) != napi_ok) return Threw(path, "reading its constructor's name");
      if (!IsObjectName(name)) return Fail(path, "only plain objects, arrays, Uint8Array and Date can be sent");
    }
    out->kind = ValueNode::Kind::Map;
    napi_value keys;
    if (napi_get_property_names(env_, object, &keys) != napi_ok) return Threw(path, "listing its properties");
    uint32_t count = 0;
    if (napi_get_array_length(env_, keys, &count) != napi_ok) return Fail(path, "listing its properties failed");
    if (!Room(count, path)) return false;
    out->fields.resize(count);
    for (uint32_t i = 0; i < count; i++) {
      napi_value key;
      napi_valuetype key_type = napi_undefined;
      if (napi_get_element(env_, keys, i, &key) != napi_ok) return Threw(path, "listing its properties");
      if (napi_typeof(env_, key, &key_type) != napi_ok || key_type != napi_string) return Fail(path, "a property name that is not a string");
      std::string& name = out->fields[i].first;
      if (!Text(key, path, &name)) return false;
      std::string at = path + "." + name;
      napi_value field;
      if (napi_get_property(env_, object, key, &field) != napi_ok) return Threw(at, "reading it");
      if (!Build(Napi::Value(env_, field), &out->fields[i].second, depth + 1, at)) return false;
    }
    return true;
  }

  // Whether a constructor's name is exactly "Object" (a longer name is cut
  // at 7 bytes, which is enough to tell it apart).
  bool IsObjectName(napi_value name) {
    napi_valuetype type = napi_undefined;
    if (napi_typeof(env_, name, &type) != napi_ok || type != napi_string) return false;
    char buffer[8];
    size_t length = 0;
    if (napi_get_value_string_utf8(env_, name, buffer, sizeof buffer, &length) != napi_ok) return false;
    return std::string(buffer, length) == "Object";
  }

  Napi::Env env_;
  const ValueLimits& limits_;
  std::string* error_;
  uint64_t nodes_ = 0;  // 64-bit: ++ cannot wrap past a max_nodes of 2^32 - 1
  uint64_t bytes_ = 0;
};

Napi::Value Integer(Napi::Env env, const ValueNode& node) {
  if (node.kind == ValueNode::Kind::Uint64) {
    if (node.uint64 <= static_cast<uint64_t>(kMaxSafe)) return Napi::Number::New(env, static_cast<double>(node.uint64));
    return Napi::BigInt::New(env, node.uint64);
  }
  if (std::fabs(static_cast<double>(node.int64)) <= kMaxSafe) return Napi::Number::New(env, static_cast<double>(node.int64));
  return Napi::BigInt::New(env, node.int64);
}

// Reads limits[name] into `target`: absent (undefined) keeps the default,
// anything else must be an integer in 1 .. most. Checked before the cast:
// Infinity or 1e300 converted to an integer is undefined behaviour. Returns
// false with a JS exception pending (a TypeError/RangeError, or whatever a
// getter threw, left to propagate).
bool ReadLimit(Napi::Env env, napi_value limits, const char* name, uint64_t most, uint64_t* target) {
  napi_value v;
  if (napi_get_named_property(env, limits, name, &v) != napi_ok) {
    if (!env.IsExceptionPending()) Napi::Error::New(env, std::string("cannot read limits.") + name).ThrowAsJavaScriptException();
    return false;
  }
  Napi::Value value(env, v);
  if (value.IsUndefined()) return true;
  if (!value.IsNumber()) {
    Napi::TypeError::New(env, std::string("limits.") + name + " must be a number").ThrowAsJavaScriptException();
    return false;
  }
  double d = value.As<Napi::Number>().DoubleValue();
  // `most` is at most 2^53 - 1, so it converts to double exactly.
  if (!(d >= 1 && d <= static_cast<double>(most)) || std::floor(d) != d) {
    Napi::RangeError::New(env, std::string("limits.") + name + " must be an integer from 1 to " + std::to_string(most))
        .ThrowAsJavaScriptException();
    return false;
  }
  *target = static_cast<uint64_t>(d);
  return true;
}

bool ReadLimits(Napi::Env env, Napi::Value options, ValueLimits* limits) {
  if (options.IsUndefined()) return true;
  if (!options.IsObject()) {
    Napi::TypeError::New(env, "limits must be an object").ThrowAsJavaScriptException();
    return false;
  }
  uint64_t depth = limits->max_depth, nodes = limits->max_nodes, bytes = limits->max_bytes;
  if (!ReadLimit(env, options, "maxDepth", kMaxDepthCeiling, &depth) ||
      !ReadLimit(env, options, "maxNodes", UINT32_MAX, &nodes) ||
      !ReadLimit(env, options, "maxBytes", static_cast<uint64_t>(kMaxSafe), &bytes)) {
    return false;
  }
  limits->max_depth = static_cast<uint32_t>(depth);  // <= kMaxDepthCeiling
  limits->max_nodes = static_cast<uint32_t>(nodes);  // <= UINT32_MAX
  limits->max_bytes = bytes;
  return true;
}

// valueTreeRoundTrip(value, limits?) -> the value after JS -> tree -> JS.
Napi::Value RoundTrip(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ValueLimits limits;
  if (info.Length() > 1 && !ReadLimits(env, info[1], &limits)) return env.Undefined();
  ValueNode tree;
  std::string error;
  if (!TreeFromJs(env, info.Length() > 0 ? info[0] : env.Undefined(), limits, &tree, &error)) {
    Napi::TypeError::New(env, "cannot convert to an XPC value: " + error).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return TreeToJs(env, tree);
}

}  // namespace

bool TreeFromJs(Napi::Env env, Napi::Value value, const ValueLimits& limits, ValueNode* out, std::string* error) {
  Builder builder(env, limits, error);
  return builder.Build(value, out, 0, "$");
}

Napi::Value TreeToJs(Napi::Env env, const ValueNode& node) {
  switch (node.kind) {
    case ValueNode::Kind::Null:
      return env.Null();
    case ValueNode::Kind::Bool:
      return Napi::Boolean::New(env, node.boolean);
    case ValueNode::Kind::Int64:
    case ValueNode::Kind::Uint64:
      return Integer(env, node);
    case ValueNode::Kind::Double:
      return Napi::Number::New(env, node.number);
    case ValueNode::Kind::String:
      return Napi::String::New(env, node.text);
    case ValueNode::Kind::Bytes:
      return Napi::Buffer<char>::Copy(env, node.text.data(), node.text.size());
    case ValueNode::Kind::Date:
      return Napi::Date::New(env, static_cast<double>(node.int64) / 1e6);
    case ValueNode::Kind::Uuid: {
      Napi::Object uuid = Napi::Object::New(env);
      uuid.Set("$uuid", Napi::Buffer<char>::Copy(env, node.text.data(), node.text.size()));
      return uuid;
    }
    case ValueNode::Kind::Array: {
      Napi::Array array = Napi::Array::New(env, node.items.size());
      for (size_t i = 0; i < node.items.size(); i++) array.Set(static_cast<uint32_t>(i), TreeToJs(env, node.items[i]));
      return array;
    }
    case ValueNode::Kind::Map: {
      // Own data properties, defined rather than assigned: a peer's "__proto__"
      // key stays a key, and no setter on Object.prototype runs.
      Napi::Object object = Napi::Object::New(env);
      for (const auto& field : node.fields) {
        object.DefineProperty(Napi::PropertyDescriptor::Value(Napi::String::New(env, field.first), TreeToJs(env, field.second),
                                                              napi_default_jsproperty));
      }
      return object;
    }
  }
  return env.Undefined();
}

void InitValueTree(Napi::Env env, Napi::Object exports) {
  exports.Set("valueTreeRoundTrip", Napi::Function::New(env, RoundTrip, "valueTreeRoundTrip"));
}

}  // namespace xpcbus
