// Code-signing facts through an audit token (code_signing.h): the token names
// the running code (SecCodeCopyGuestWithAttributes with
// kSecGuestAttributeAudit), which is then checked against a requirement or
// asked for its team identifier.
#include "apple/code_signing.h"

#include <CoreFoundation/CoreFoundation.h>
#include <Security/Security.h>

#include <cstring>

#include "napi_args.h"

namespace xpcbus {

namespace {

// The running code `token` names (the caller releases it), or nullptr with
// `*status` saying why.
SecCodeRef GuestCode(const audit_token_t& token, OSStatus* status) {
  CFDataRef audit = CFDataCreate(kCFAllocatorDefault, reinterpret_cast<const UInt8*>(&token), sizeof(token));
  const void* keys[] = {kSecGuestAttributeAudit};
  const void* values[] = {audit};
  CFDictionaryRef attributes = CFDictionaryCreate(kCFAllocatorDefault, keys, values, 1, &kCFTypeDictionaryKeyCallBacks,
                                                  &kCFTypeDictionaryValueCallBacks);
  SecCodeRef code = nullptr;
  *status = SecCodeCopyGuestWithAttributes(nullptr, attributes, kSecCSDefaultFlags, &code);
  CFRelease(attributes);
  CFRelease(audit);
  if (*status != errSecSuccess && code != nullptr) {
    CFRelease(code);
    code = nullptr;
  }
  return code;
}

}  // namespace

CodeSigningResult CheckCodeSigning(const audit_token_t& token, const std::string& requirement) {
  CodeSigningResult result;
  SecRequirementRef req = nullptr;
  CFStringRef text = CFStringCreateWithCString(kCFAllocatorDefault, requirement.c_str(), kCFStringEncodingUTF8);
  OSStatus status = SecRequirementCreateWithString(text, kSecCSDefaultFlags, &req);
  CFRelease(text);
  if (status != errSecSuccess) {
    result.status = status;
    return result;
  }
  result.requirement_parsed = true;
  SecCodeRef code = GuestCode(token, &status);
  if (status == errSecSuccess) status = SecCodeCheckValidity(code, kSecCSDefaultFlags, req);
  if (code != nullptr) CFRelease(code);
  CFRelease(req);
  result.status = status;
  result.satisfied = status == errSecSuccess;
  return result;
}

std::string TeamIdentifier(const audit_token_t& token) {
  OSStatus status;
  SecCodeRef code = GuestCode(token, &status);
  std::string team;
  if (code != nullptr) {
    SecStaticCodeRef on_disk = nullptr;
    CFDictionaryRef info = nullptr;
    if (SecCodeCopyStaticCode(code, kSecCSDefaultFlags, &on_disk) == errSecSuccess &&
        SecCodeCopySigningInformation(on_disk, kSecCSSigningInformation, &info) == errSecSuccess && info != nullptr) {
      CFTypeRef value = CFDictionaryGetValue(info, kSecCodeInfoTeamIdentifier);
      char buffer[64];
      if (value != nullptr && CFGetTypeID(value) == CFStringGetTypeID() &&
          CFStringGetCString(static_cast<CFStringRef>(value), buffer, sizeof(buffer), kCFStringEncodingUTF8)) {
        team = buffer;
      }
    }
    if (info != nullptr) CFRelease(info);
    if (on_disk != nullptr) CFRelease(on_disk);
    CFRelease(code);
  }
  return team;
}

Napi::Value CodeSatisfies(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string requirement;
  if (info.Length() < 1 || !info[0].IsBuffer() || info[0].As<Napi::Buffer<char>>().Length() != sizeof(audit_token_t) ||
      !ReadString(info, 1, "requirement", &requirement)) {
    if (!env.IsExceptionPending()) Napi::TypeError::New(env, "codeSatisfies(auditToken: Buffer(32), requirement)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  audit_token_t token;
  std::memcpy(&token, info[0].As<Napi::Buffer<char>>().Data(), sizeof(token));
  return Napi::Boolean::New(env, CheckCodeSigning(token, requirement).satisfied);
}

}  // namespace xpcbus
