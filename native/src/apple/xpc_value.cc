// Value tree <-> XPC objects (xpc_value.h).
#include "apple/xpc_value.h"

#include <cstring>

namespace xpcbus {

xpc_object_t TreeToXpc(const ValueNode& node) {
  switch (node.kind) {
    case ValueNode::Kind::Null:
      return xpc_null_create();
    case ValueNode::Kind::Bool:
      return xpc_bool_create(node.boolean);
    case ValueNode::Kind::Int64:
      return xpc_int64_create(node.int64);
    case ValueNode::Kind::Uint64:
      return xpc_uint64_create(node.uint64);
    case ValueNode::Kind::Double:
      return xpc_double_create(node.number);
    case ValueNode::Kind::String:
      // XPC strings end at the first NUL: text with one is sent as data.
      if (std::memchr(node.text.data(), 0, node.text.size()) != nullptr) {
        return xpc_data_create(node.text.data(), node.text.size());
      }
      return xpc_string_create(node.text.c_str());
    case ValueNode::Kind::Bytes:
      return xpc_data_create(node.text.data(), node.text.size());
    case ValueNode::Kind::Date:
      return xpc_date_create(node.int64);
    case ValueNode::Kind::Uuid:
      return xpc_uuid_create(reinterpret_cast<const unsigned char*>(node.text.data()));
    case ValueNode::Kind::Array: {
      xpc_object_t array = xpc_array_create(nullptr, 0);
      for (const ValueNode& item : node.items) {
        xpc_object_t value = TreeToXpc(item);
        xpc_array_append_value(array, value);
        xpc_release(value);
      }
      return array;
    }
    case ValueNode::Kind::Map: {
      xpc_object_t dict = xpc_dictionary_create(nullptr, nullptr, 0);
      for (const auto& field : node.fields) {
        xpc_object_t value = TreeToXpc(field.second);
        xpc_dictionary_set_value(dict, field.first.c_str(), value);
        xpc_release(value);
      }
      return dict;
    }
  }
  return xpc_null_create();
}

namespace {

class Reader {
 public:
  Reader(const ValueLimits& limits, std::string* error) : limits_(limits), error_(error) {}

  bool Read(xpc_object_t object, ValueNode* out, uint32_t depth) {
    if (++nodes_ > limits_.max_nodes) return Fail("more than " + std::to_string(limits_.max_nodes) + " values");
    if (depth > limits_.max_depth) return Fail("nested deeper than " + std::to_string(limits_.max_depth));
    xpc_type_t type = xpc_get_type(object);
    if (type == XPC_TYPE_NULL) {
      out->kind = ValueNode::Kind::Null;
    } else if (type == XPC_TYPE_BOOL) {
      out->kind = ValueNode::Kind::Bool;
      out->boolean = xpc_bool_get_value(object);
    } else if (type == XPC_TYPE_INT64) {
      out->kind = ValueNode::Kind::Int64;
      out->int64 = xpc_int64_get_value(object);
    } else if (type == XPC_TYPE_UINT64) {
      out->kind = ValueNode::Kind::Uint64;
      out->uint64 = xpc_uint64_get_value(object);
    } else if (type == XPC_TYPE_DOUBLE) {
      out->kind = ValueNode::Kind::Double;
      out->number = xpc_double_get_value(object);
    } else if (type == XPC_TYPE_STRING) {
      // Copied now: the pointer lives only as long as the object.
      out->kind = ValueNode::Kind::String;
      out->text.assign(xpc_string_get_string_ptr(object), xpc_string_get_length(object));
      return Count(out->text.size());
    } else if (type == XPC_TYPE_DATA) {
      out->kind = ValueNode::Kind::Bytes;
      size_t length = xpc_data_get_length(object);
      const void* bytes = xpc_data_get_bytes_ptr(object);
      out->text.assign(bytes == nullptr ? "" : static_cast<const char*>(bytes), bytes == nullptr ? 0 : length);
      return Count(out->text.size());
    } else if (type == XPC_TYPE_DATE) {
      out->kind = ValueNode::Kind::Date;
      out->int64 = xpc_date_get_value(object);
    } else if (type == XPC_TYPE_UUID) {
      out->kind = ValueNode::Kind::Uuid;
      out->text.assign(reinterpret_cast<const char*>(xpc_uuid_get_bytes(object)), 16);
    } else if (type == XPC_TYPE_ARRAY) {
      out->kind = ValueNode::Kind::Array;
      size_t count = xpc_array_get_count(object);
      if (nodes_ + count > limits_.max_nodes) return Fail("more than " + std::to_string(limits_.max_nodes) + " values");
      out->items.resize(count);
      for (size_t i = 0; i < count; i++) {
        if (!Read(xpc_array_get_value(object, i), &out->items[i], depth + 1)) return false;
      }
    } else if (type == XPC_TYPE_DICTIONARY) {
      out->kind = ValueNode::Kind::Map;
      __block bool ok = true;
      Reader* self = this;
      ValueNode* target = out;
      xpc_dictionary_apply(object, ^bool(const char* key, xpc_object_t value) {
        target->fields.emplace_back(std::string(key), ValueNode());
        ok = self->Count(std::strlen(key)) && self->Read(value, &target->fields.back().second, depth + 1);
        return ok;
      });
      return ok;
    } else {
      return Fail("an XPC value of a type the protocol does not carry (fd, shmem, endpoint, ...)");
    }
    return true;
  }

 private:
  bool Fail(const std::string& why) {
    *error_ = why;
    return false;
  }

  bool Count(uint64_t bytes) {
    bytes_ += bytes;
    if (bytes_ > limits_.max_bytes) return Fail("more than " + std::to_string(limits_.max_bytes) + " bytes of data");
    return true;
  }

  const ValueLimits& limits_;
  std::string* error_;
  uint32_t nodes_ = 0;
  uint64_t bytes_ = 0;
};

}  // namespace

bool TreeFromXpc(xpc_object_t object, const ValueLimits& limits, ValueNode* out, std::string* error) {
  Reader reader(limits, error);
  return reader.Read(object, out, 0);
}

}  // namespace xpcbus
