// sdNotify: systemd's notify protocol, one datagram to the unix socket named by $NOTIFY_SOCKET. Node cannot
// send it itself (node:dgram has no AF_UNIX), and a systemd-notify child would be another PID, which
// systemd ignores under NotifyAccess=main. The message is built and the socket name checked in TypeScript
// (src/daemon/sd-notify.ts); errors are thrown as JS Errors whose .code is the errno name.
#define _GNU_SOURCE
#include <errno.h>
#include <node_api.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "sd-notify.h"

static napi_value throw_code(napi_env env, const char* code, const char* what, int err) {
  char msg[256];
  if (err != 0)
    snprintf(msg, sizeof(msg), "%s: %s", what, strerror(err));
  else
    snprintf(msg, sizeof(msg), "%s", what);
  napi_throw_error(env, code, msg);
  return NULL;
}

static napi_value throw_errno(napi_env env, const char* what, int err) {
  const char* name = strerrorname_np(err);
  return throw_code(env, name != NULL ? name : "EIO", what, err);
}

// sdNotify(socket: string, message: string): sends `message` to the socket at a path ("/run/...") or to an
// abstract name ("@name"), without blocking: a receiver that does not read gives EAGAIN, not a stalled daemon.
static napi_value js_sd_notify(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_valuetype t0 = napi_undefined, t1 = napi_undefined;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2 ||
      napi_typeof(env, argv[0], &t0) != napi_ok || napi_typeof(env, argv[1], &t1) != napi_ok ||
      t0 != napi_string || t1 != napi_string) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "sdNotify(socket: string, message: string)");
    return NULL;
  }
  struct sockaddr_un addr;
  memset(&addr, 0, sizeof(addr));
  addr.sun_family = AF_UNIX;
  size_t path_len = 0;
  napi_get_value_string_utf8(env, argv[0], NULL, 0, &path_len);
  if (path_len == 0 || path_len >= sizeof(addr.sun_path))
    return throw_code(env, "EINVAL", "sdNotify: socket name is empty or too long", 0);
  napi_get_value_string_utf8(env, argv[0], addr.sun_path, sizeof(addr.sun_path), &path_len);
  if (addr.sun_path[0] != '/' && addr.sun_path[0] != '@')
    return throw_code(env, "EINVAL", "sdNotify: socket must be an absolute path or an @abstract name", 0);
  // An abstract name starts with a NUL byte and its length is exact (no terminator).
  if (addr.sun_path[0] == '@') addr.sun_path[0] = '\0';
  socklen_t addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + path_len);

  size_t msg_len = 0;
  napi_get_value_string_utf8(env, argv[1], NULL, 0, &msg_len);
  char* msg = malloc(msg_len + 1);
  if (msg == NULL) return throw_errno(env, "sdNotify", ENOMEM);
  napi_get_value_string_utf8(env, argv[1], msg, msg_len + 1, &msg_len);

  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    int err = errno;
    free(msg);
    return throw_errno(env, "sdNotify: socket", err);
  }
  ssize_t n;
  do {
    n = sendto(fd, msg, msg_len, MSG_NOSIGNAL | MSG_DONTWAIT, (struct sockaddr*)&addr, addr_len);
  } while (n < 0 && errno == EINTR);
  int err = errno;
  close(fd);
  free(msg);
  if (n < 0) return throw_errno(env, "sdNotify: sendto", err);
  return NULL;
}

void weft_define_sd_notify(napi_env env, napi_value exports) {
  napi_value fn;
  if (napi_create_function(env, "sdNotify", NAPI_AUTO_LENGTH, js_sd_notify, NULL, &fn) == napi_ok)
    napi_set_named_property(env, exports, "sdNotify", fn);
}
