// The code-signing facts about a peer, read through its audit token with the
// Security framework. Data only: whether a failed check refuses the peer is
// decided in TypeScript (daemon/core/policy.ts, codeSigningRefusal).
#pragma once

#include <MacTypes.h>
#include <bsm/libbsm.h>
#include <napi.h>

#include <string>

namespace xpcbus {

// What checking a peer's code against a requirement found.
struct CodeSigningResult {
  // False: the requirement text itself did not parse (`status` is why).
  bool requirement_parsed = false;
  // The code behind the token satisfies the requirement (SecCodeCheckValidity).
  bool satisfied = false;
  // errSecSuccess when satisfied; otherwise the first failing call's OSStatus.
  OSStatus status = 0;
};

// Checks the code `token` names against `requirement` (all macOS versions).
CodeSigningResult CheckCodeSigning(const audit_token_t& token, const std::string& requirement);

// The team identifier the code `token` names is signed with, or "" (unsigned,
// ad hoc, or unknown).
std::string TeamIdentifier(const audit_token_t& token);

// codeSatisfies(auditToken: Buffer, requirement: string) -> boolean, for the
// policy's codeSigning rules.
Napi::Value CodeSatisfies(const Napi::CallbackInfo& info);

}  // namespace xpcbus
