// JS <-> value tree (value_tree.h). Platform-neutral: compiled and tested on
// Linux, used by the XPC transport on macOS.
#include "value_tree.h"

#include <cmath>

namespace xpcbus {

namespace {

constexpr double kMaxSafe = 9007199254740991.0;  // 2^53 - 1

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
        out->text = value.As<Napi::String>().Utf8Value();
        return Count(out->text.size(), path);
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

  bool Count(uint64_t bytes, const std::string& path) {
    bytes_ += bytes;
    if (bytes_ > limits_.max_bytes) return Fail(path, "more than " + std::to_string(limits_.max_bytes) + " bytes of data");
    return true;
  }

  static bool Number(double d, ValueNode* out) {
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

  bool Object(Napi::Object object, ValueNode* out, uint32_t depth, const std::string& path) {
    if (object.IsTypedArray()) {
      Napi::TypedArray typed = object.As<Napi::TypedArray>();
      if (typed.TypedArrayType() != napi_uint8_array) return Fail(path, "only Uint8Array (or Buffer) binary data can be sent");
      Napi::Uint8Array bytes = object.As<Napi::Uint8Array>();
      out->kind = ValueNode::Kind::Bytes;
      out->text.assign(reinterpret_cast<const char*>(bytes.Data()), bytes.ByteLength());
      return Count(out->text.size(), path);
    }
    if (object.IsArrayBuffer() || object.IsDataView()) return Fail(path, "send binary data as a Uint8Array");
    if (object.IsDate()) {
      double ms = object.As<Napi::Date>().ValueOf();
      if (!std::isfinite(ms)) return Fail(path, "an invalid Date");
      out->kind = ValueNode::Kind::Date;
      out->int64 = static_cast<int64_t>(ms * 1e6);
      return true;
    }
    if (object.IsArray()) {
      Napi::Array array = object.As<Napi::Array>();
      out->kind = ValueNode::Kind::Array;
      uint32_t length = array.Length();
      // Checked before allocating: an array claims its length up front.
      if (nodes_ + length > limits_.max_nodes) return Fail(path, "more than " + std::to_string(limits_.max_nodes) + " values");
      out->items.resize(length);
      for (uint32_t i = 0; i < length; i++) {
        if (!Build(array.Get(i), &out->items[i], depth + 1, path + "[" + std::to_string(i) + "]")) return false;
      }
      return true;
    }
    Napi::Value uuid = object.Get("$uuid");
    if (!uuid.IsUndefined()) {
      if (!uuid.IsTypedArray() || uuid.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array ||
          uuid.As<Napi::Uint8Array>().ByteLength() != 16) {
        return Fail(path, "$uuid must be a Uint8Array of 16 bytes");
      }
      Napi::Uint8Array bytes = uuid.As<Napi::Uint8Array>();
      out->kind = ValueNode::Kind::Uuid;
      out->text.assign(reinterpret_cast<const char*>(bytes.Data()), 16);
      return true;
    }
    // Anything else with a prototype other than Object's (Map, class
    // instances, …) would lose its meaning: refuse it.
    Napi::Value proto = object.Get("constructor");
    if (proto.IsFunction()) {
      Napi::Value name = proto.As<Napi::Object>().Get("name");
      if (!name.IsString() || name.As<Napi::String>().Utf8Value() != "Object") {
        return Fail(path, "only plain objects, arrays, Uint8Array and Date can be sent");
      }
    }
    out->kind = ValueNode::Kind::Map;
    Napi::Array keys = object.GetPropertyNames();
    uint32_t count = keys.Length();
    out->fields.resize(count);
    for (uint32_t i = 0; i < count; i++) {
      Napi::Value key = keys.Get(i);
      std::string name = key.ToString().Utf8Value();
      if (!Count(name.size(), path)) return false;
      out->fields[i].first = name;
      if (!Build(object.Get(key), &out->fields[i].second, depth + 1, path + "." + name)) return false;
    }
    return true;
  }

  Napi::Env env_;
  const ValueLimits& limits_;
  std::string* error_;
  uint32_t nodes_ = 0;
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

bool ReadLimits(Napi::Object options, ValueLimits* limits) {
  auto read = [&](const char* name, uint64_t* target) {
    Napi::Value v = options.Get(name);
    if (v.IsNumber() && v.As<Napi::Number>().DoubleValue() >= 1) *target = static_cast<uint64_t>(v.As<Napi::Number>().DoubleValue());
  };
  uint64_t depth = limits->max_depth, nodes = limits->max_nodes;
  read("maxDepth", &depth);
  read("maxNodes", &nodes);
  read("maxBytes", &limits->max_bytes);
  limits->max_depth = static_cast<uint32_t>(depth);
  limits->max_nodes = static_cast<uint32_t>(nodes);
  return true;
}

// valueTreeRoundTrip(value, limits?) -> the value after JS -> tree -> JS.
Napi::Value RoundTrip(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ValueLimits limits;
  if (info.Length() > 1 && info[1].IsObject()) ReadLimits(info[1].As<Napi::Object>(), &limits);
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
      Napi::Object object = Napi::Object::New(env);
      for (const auto& field : node.fields) object.Set(field.first, TreeToJs(env, field.second));
      return object;
    }
  }
  return env.Undefined();
}

void InitValueTree(Napi::Env env, Napi::Object exports) {
  exports.Set("valueTreeRoundTrip", Napi::Function::New(env, RoundTrip, "valueTreeRoundTrip"));
}

}  // namespace xpcbus
