# Built by `npm install` (node-gyp rebuild --directory=native). One addon;
# the platform half is chosen here, never with #ifdef inside shared files.
# On macOS gyp ignores cflags_cc: the same flags go through xcode_settings.
# The deployment target is the oldest macOS supported (docs/PROTOCOL.md §14):
# newer APIs are weak references, each behind __builtin_available, and an
# unguarded one is a compile error.
# NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS: a call into the addon while a
# Worker is being terminated cannot throw (napi_throw fails); without it
# node-addon-api turns that into a fatal error (seen under the notify stress).
{
  "targets": [
    {
      "target_name": "xpcbus_native",
      "sources": ["src/addon.cc", "src/value_tree.cc", "src/call_sink.cc"],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "src"
      ],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED", "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "-fno-exceptions"],
      "conditions": [
        ["OS=='linux'", {
          "sources": [
            "src/linux/peer_credentials.cc",
            "src/linux/platform.cc",
            "src/linux/table_mapping.cc",
            "src/linux/native_thread.cc",
            "src/linux/notify_table_writer.cc",
            "src/linux/notify_table_reader.cc",
            "src/linux/notify_waiter.cc"
          ]
        }],
        ["OS=='mac'", {
          "sources": [
            "src/apple/peer_credentials.cc",
            "src/apple/audit_token.cc",
            "src/apple/platform.cc",
            "src/apple/notify_center.cc",
            "src/apple/xpc_value.cc",
            "src/apple/xpc_shared.cc",
            "src/apple/xpc_listener.cc",
            "src/apple/xpc_client.cc",
            "src/apple/code_signing.cc",
            "src/apple/process_identity.cc"
          ],
          "libraries": ["-lbsm", "-framework CoreFoundation", "-framework Security"],
          "xcode_settings": {
            "CLANG_CXX_LANGUAGE_STANDARD": "c++17",
            "GCC_ENABLE_CPP_EXCEPTIONS": "NO",
            "WARNING_CFLAGS": ["-Wall", "-Wextra", "-Werror=unguarded-availability-new"],
            "MACOSX_DEPLOYMENT_TARGET": "11.0"
          }
        }]
      ]
    }
  ]
}
