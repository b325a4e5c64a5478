/*
 * xpc-client: talk to an xpcbus broker over XPC with nothing but the C API
 * and docs/PROTOCOL.md, section 14. Says hello, subscribes to a subject,
 * publishes one message to it, sends a ping with a reply handler, and prints
 * what arrives: the welcome, the ok to sub and pub, the message itself (in
 * the event handler), the pong (in the reply handler).
 *
 *   clang -fblocks -o xpc-client xpc-client.c
 *   ./xpc-client io.xpcbus.broker demo.hello
 *
 * Type-checked on Linux by `npm run check:apple` (apple-check).
 */
#include <dispatch/dispatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xpc/xpc.h>

static xpc_object_t op_new(const char *op, uint64_t id) {
  xpc_object_t message = xpc_dictionary_create(NULL, NULL, 0);
  xpc_dictionary_set_string(message, "op", op);
  xpc_dictionary_set_uint64(message, "id", id);
  return message;
}

static void print_message(xpc_object_t message) {
  const char *op = xpc_dictionary_get_string(message, "op");
  if (op == NULL) return;
  if (strcmp(op, "msg") == 0) {
    size_t length = 0;
    const void *payload = xpc_dictionary_get_data(message, "p", &length);
    printf("msg %s seq=%llu %.*s\n", xpc_dictionary_get_string(message, "subject"),
           (unsigned long long)xpc_dictionary_get_uint64(message, "seq"), (int)length, (const char *)payload);
  } else if (strcmp(op, "err") == 0) {
    printf("err %s: %s\n", xpc_dictionary_get_string(message, "code"), xpc_dictionary_get_string(message, "reason"));
  } else {
    printf("%s id=%llu\n", op, (unsigned long long)xpc_dictionary_get_uint64(message, "id"));
  }
  fflush(stdout);
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s SERVICE SUBJECT (a subject without wildcards: it is also published to)\n", argv[0]);
    return 2;
  }
  dispatch_queue_t queue = dispatch_queue_create("xpc-client", DISPATCH_QUEUE_SERIAL);
  /* 0 for a per-user agent; XPC_CONNECTION_MACH_SERVICE_PRIVILEGED for a system daemon. */
  xpc_connection_t broker = xpc_connection_create_mach_service(argv[1], queue, 0);
  xpc_connection_set_event_handler(broker, ^(xpc_object_t event) {
    if (xpc_get_type(event) == XPC_TYPE_DICTIONARY) {
      print_message(event);
    } else if (event == XPC_ERROR_CONNECTION_INTERRUPTED) {
      /* The broker restarted: a real client sends hello and its subscriptions again. */
      fprintf(stderr, "interrupted\n");
    } else if (event == XPC_ERROR_CONNECTION_INVALID) {
      fprintf(stderr, "invalid: is %s registered with launchd?\n", argv[1]);
      exit(1);
    }
  });
  xpc_connection_activate(broker);

  xpc_object_t hello = op_new("hello", 0);
  xpc_dictionary_set_uint64(hello, "v", 1);
  xpc_dictionary_set_string(hello, "name", "xpc-client.c");
  xpc_connection_send_message(broker, hello);
  xpc_release(hello);

  xpc_object_t sub = op_new("sub", 1);
  xpc_dictionary_set_uint64(sub, "sid", 1);
  xpc_dictionary_set_string(sub, "subject", argv[2]);
  xpc_connection_send_message(broker, sub);
  xpc_release(sub);

  /* Processed after the sub (one connection's ops are taken in order), so it comes back to us. */
  static const char payload[] = "hello from xpc-client.c";
  xpc_object_t pub = op_new("pub", 2);
  xpc_dictionary_set_string(pub, "subject", argv[2]);
  xpc_dictionary_set_data(pub, "p", payload, sizeof payload - 1);
  xpc_connection_send_message(broker, pub);
  xpc_release(pub);

  /*
   * An op sent with a reply handler and an id gets its answer there (pong for
   * ping; ok or err for req and the others): PROTOCOL.md, section 14. The pong
   * also says every op sent before it has been processed.
   */
  xpc_object_t ping = op_new("ping", 3);
  xpc_connection_send_message_with_reply(broker, ping, queue, ^(xpc_object_t reply) {
    if (xpc_get_type(reply) == XPC_TYPE_DICTIONARY) {
      printf("(reply handler) ");
      print_message(reply);
    }
  });
  xpc_release(ping);

  dispatch_main();
}
