// Value tree <-> XPC objects: the only platform-specific half of message
// conversion (the JS half is value_tree.cc, tested on Linux).
#pragma once

#include <xpc/xpc.h>

#include <string>

#include "value_tree.h"

namespace xpcbus {

// A new (retained) XPC object for `node`; the caller releases it.
xpc_object_t TreeToXpc(const ValueNode& node);

// Copies `object` into `out` (strings and data are copied out, so the tree
// outlives the object). False with `error` for a type that has no tree form
// (fd, shmem, endpoint, ...) or past `limits`.
bool TreeFromXpc(xpc_object_t object, const ValueLimits& limits, ValueNode* out, std::string* error);

}  // namespace xpcbus
