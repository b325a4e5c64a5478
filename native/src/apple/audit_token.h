// Who an audit token names: the one way both the Unix socket's
// LOCAL_PEERTOKEN (peer_credentials.cc) and an XPC peer
// (xpc_listener.cc) turn a token into a PeerCredentials.
#pragma once

#include <bsm/libbsm.h>

#include "peer_credentials.h"

namespace xpcbus {

// Fills pid, uid and gid (the effective ids) and the executable of the
// process `token` names; leaves `method` to the caller. The executable is
// read through the token (proc_pidpath_audittoken, macOS 11+), so it is that
// very process's: exe_verified. Before macOS 11 it is read by pid alone,
// which a recycled pid could fool: exe_verified false and exe_error says so.
// Returns whether the executable was read through the token.
bool ReadAuditTokenIdentity(const audit_token_t& token, PeerCredentials* out);

}  // namespace xpcbus
