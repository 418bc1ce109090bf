// weft_netlink: the smallest possible bridge between Node and AF_NETLINK sockets.
// It only opens sockets, sends bytes and delivers received datagrams; every message is encoded and
// decoded in TypeScript (src/netlink). Errors are thrown as JS Errors whose .code is the errno name.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <node_api.h>
#include "napi-values.h"
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "sd-notify.h"

#ifndef SOL_NETLINK
#define SOL_NETLINK 270
#endif
#ifndef NETLINK_EXT_ACK
#define NETLINK_EXT_ACK 11
#endif
#ifndef NETLINK_GET_STRICT_CHK
#define NETLINK_GET_STRICT_CHK 12
#endif

#define RCVBUF_BYTES (8 * 1024 * 1024)
#define SNDBUF_BYTES (4 * 1024 * 1024)
// Kernel dump chunks are at most 32 KiB; 64 KiB leaves room for large single replies.
#define RECV_INITIAL_BYTES (64 * 1024)
// Bound one callback's batch so a flood of events cannot starve the event loop; the poll is
// level-triggered, so what is left is read on the next loop turn.
#define MAX_BATCH 4096

// The environment's teardown, waiting for the uv_close of its pollers before it lets Node go on.
typedef struct {
  napi_async_cleanup_hook_handle hook;
  size_t pending;
} teardown_t;

typedef struct poller {
  uv_poll_t handle;
  napi_env env;
  napi_ref callback;
  napi_async_context async_context;
  int fd;
  unsigned char* buf;
  size_t buf_size;
  teardown_t* teardown;
  struct poller* next;
} poller_t;

// Pollers and open sockets of one Node environment (main thread or a worker), kept as the addon's
// instance data, so the environment's teardown can stop and close what JS left open.
typedef struct {
  poller_t* head;
  int* fds;
  size_t nfds;
  size_t fds_cap;
} instance_t;

static instance_t* instance(napi_env env) {
  void* data = NULL;
  napi_get_instance_data(env, &data);
  return (instance_t*)data;
}

static void free_instance(napi_env env, void* data, void* hint) {
  (void)env;
  (void)hint;
  instance_t* inst = (instance_t*)data;
  free(inst->fds);
  free(inst);
}

static int track_fd(instance_t* inst, int fd) {
  if (inst->nfds == inst->fds_cap) {
    size_t cap = inst->fds_cap ? inst->fds_cap * 2 : 16;
    int* grown = realloc(inst->fds, cap * sizeof(int));
    if (grown == NULL) return 0;
    inst->fds = grown;
    inst->fds_cap = cap;
  }
  inst->fds[inst->nfds++] = fd;
  return 1;
}

static void untrack_fd(instance_t* inst, int fd) {
  for (size_t i = 0; i < inst->nfds; i++) {
    if (inst->fds[i] == fd) {
      inst->fds[i] = inst->fds[--inst->nfds];
      return;
    }
  }
}

static const char* errno_name(int err) {
  const char* name = uv_err_name(-err);
  if (name == NULL || strncmp(name, "Unknown", 7) == 0) {
    static char unknown[32];
    snprintf(unknown, sizeof(unknown), "ERRNO_%d", err);
    return unknown;
  }
  return name;
}

// Throws Error("<op>: <strerror>") with .code = errno name and .errno = errno.
static napi_value throw_errno(napi_env env, const char* op, int err) {
  char msg[256];
  snprintf(msg, sizeof(msg), "%s: %s", op, strerror(err));
  napi_value code, message, error, errno_value;
  napi_create_string_utf8(env, errno_name(err), NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &message);
  napi_create_error(env, code, message, &error);
  napi_create_int32(env, err, &errno_value);
  napi_set_named_property(env, error, "errno", errno_value);
  napi_throw(env, error);
  return NULL;
}

static napi_value throw_type(napi_env env, const char* msg) {
  napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
  return NULL;
}

static int get_args(napi_env env, napi_callback_info info, size_t want, napi_value* argv, size_t* argc) {
  *argc = want;
  return napi_get_cb_info(env, info, argc, argv, NULL, NULL) == napi_ok;
}

static int is_present(napi_env env, napi_value v) {
  napi_valuetype t;
  return napi_typeof(env, v, &t) == napi_ok && t != napi_undefined && t != napi_null;
}

static int make_socket(int protocol, uint32_t groups, int rcvbuf, int* err) {
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, protocol);
  if (fd < 0) {
    *err = errno;
    return -1;
  }
  int size = rcvbuf;
  // RCVBUFFORCE needs CAP_NET_ADMIN; without it the kernel caps SO_RCVBUF at rmem_max.
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size)) < 0) {
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
  }
  size = SNDBUF_BYTES;
  if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof(size)) < 0) {
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
  }
  int one = 1;
  // Both are optional: older kernels just give plain acks and lenient dumps.
  setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof(one));
  setsockopt(fd, SOL_NETLINK, NETLINK_GET_STRICT_CHK, &one, sizeof(one));
  struct sockaddr_nl addr;
  memset(&addr, 0, sizeof(addr));
  addr.nl_family = AF_NETLINK;
  addr.nl_groups = groups;
  if (bind(fd, (struct sockaddr*)&addr, sizeof(addr)) < 0) {
    *err = errno;
    close(fd);
    return -1;
  }
  return fd;
}

// open(protocol, groups, netnsPath?, rcvbufBytes?) -> fd
static napi_value js_open(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  size_t argc;
  int32_t protocol;
  uint32_t groups;
  int32_t rcvbuf = RCVBUF_BYTES;
  char path[4096];
  if (!get_args(env, info, 4, argv, &argc) || argc < 2 || !get_int(env, argv[0], &protocol) ||
      !get_uint(env, argv[1], &groups)) {
    return throw_type(env, "open(protocol: number, groups: number, netnsPath?: string, rcvbuf?: number)");
  }
  int use_netns = argc >= 3 && is_present(env, argv[2]);
  if (use_netns && !get_string(env, argv[2], path, sizeof(path))) {
    return throw_type(env, "open: netnsPath must be a string");
  }
  if (argc >= 4 && is_present(env, argv[3]) && (!get_int(env, argv[3], &rcvbuf) || rcvbuf <= 0)) {
    return throw_type(env, "open: rcvbuf must be a positive number of bytes");
  }
  int err = 0;
  int fd;
  if (!use_netns) {
    fd = make_socket(protocol, groups, rcvbuf, &err);
    if (fd < 0) return throw_errno(env, "open netlink socket", err);
  } else {
    // A socket stays in the namespace it was created in, so hop in, create it, and hop back.
    int orig = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (orig < 0) return throw_errno(env, "open /proc/thread-self/ns/net", errno);
    int target = open(path, O_RDONLY | O_CLOEXEC);
    if (target < 0) {
      err = errno;
      close(orig);
      char op[4200];
      snprintf(op, sizeof(op), "open netns %s", path);
      return throw_errno(env, op, err);
    }
    if (setns(target, CLONE_NEWNET) < 0) {
      err = errno;
      close(target);
      close(orig);
      char op[4200];
      snprintf(op, sizeof(op), "setns %s", path);
      return throw_errno(env, op, err);
    }
    fd = make_socket(protocol, groups, rcvbuf, &err);
    if (setns(orig, CLONE_NEWNET) < 0) {
      // This thread (the JS thread) is now in the wrong namespace: every later socket, route and device
      // would silently go there. Nothing can be trusted any more, so stop the process.
      fprintf(stderr, "weft_netlink: cannot return to the original network namespace after %s: %s; aborting\n",
              path, strerror(errno));
      abort();
    }
    close(target);
    close(orig);
    if (fd < 0) return throw_errno(env, "open netlink socket in netns", err);
  }
  if (!track_fd(instance(env), fd)) {
    close(fd);
    return throw_errno(env, "open", ENOMEM);
  }
  napi_value result;
  napi_create_int32(env, fd, &result);
  return result;
}

// addMembership(fd, group)
static napi_value js_add_membership(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  size_t argc;
  int32_t fd;
  uint32_t group;
  if (!get_args(env, info, 2, argv, &argc) || argc < 2 || !get_int(env, argv[0], &fd) ||
      !get_uint(env, argv[1], &group)) {
    return throw_type(env, "addMembership(fd: number, group: number)");
  }
  if (setsockopt(fd, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &group, sizeof(group)) < 0) {
    return throw_errno(env, "setsockopt NETLINK_ADD_MEMBERSHIP", errno);
  }
  return NULL;
}

// send(fd, bytes) -> bytes sent
static napi_value js_send(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  size_t argc;
  int32_t fd;
  bool is_typed = false;
  if (!get_args(env, info, 2, argv, &argc) || argc < 2 || !get_int(env, argv[0], &fd)) {
    return throw_type(env, "send(fd: number, buf: Uint8Array)");
  }
  napi_is_typedarray(env, argv[1], &is_typed);
  if (!is_typed) return throw_type(env, "send: buf must be a Buffer or Uint8Array");
  napi_typedarray_type type;
  size_t length;
  void* data;
  napi_get_typedarray_info(env, argv[1], &type, &length, &data, NULL, NULL);
  if (type != napi_uint8_array) return throw_type(env, "send: buf must be a Buffer or Uint8Array");
  struct sockaddr_nl kernel;
  memset(&kernel, 0, sizeof(kernel));
  kernel.nl_family = AF_NETLINK;
  ssize_t n;
  do {
    n = sendto(fd, data, length, 0, (struct sockaddr*)&kernel, sizeof(kernel));
  } while (n < 0 && errno == EINTR);
  if (n < 0) return throw_errno(env, "sendto netlink", errno);
  napi_value result;
  napi_create_double(env, (double)n, &result);
  return result;
}

static poller_t* find_poller(napi_env env, int fd) {
  for (poller_t* p = instance(env)->head; p != NULL; p = p->next) {
    if (p->fd == fd) return p;
  }
  return NULL;
}

static void unlink_poller(poller_t* target) {
  for (poller_t** pp = &instance(target->env)->head; *pp != NULL; pp = &(*pp)->next) {
    if (*pp == target) {
      *pp = target->next;
      return;
    }
  }
}

static void teardown_release(teardown_t* t) {
  if (--t->pending > 0) return;
  napi_remove_async_cleanup_hook(t->hook);
  free(t);
}

static void on_poller_closed(uv_handle_t* handle) {
  poller_t* p = (poller_t*)handle->data;
  teardown_t* t = p->teardown;
  free(p->buf);
  free(p);
  if (t != NULL) teardown_release(t);
}

static void stop_poller(poller_t* p) {
  unlink_poller(p);
  uv_poll_stop(&p->handle);
  napi_delete_reference(p->env, p->callback);
  napi_async_destroy(p->env, p->async_context);
  // The handle memory must outlive libuv's close, so it is freed in the close callback.
  uv_close((uv_handle_t*)&p->handle, on_poller_closed);
}

// Calls back into JS with (err, datagrams); makes sure microtasks run like any other callback.
static void deliver(poller_t* p, const char* err, napi_value datagrams) {
  napi_env env = p->env;
  napi_value callback, global, argv[2], result;
  napi_get_reference_value(env, p->callback, &callback);
  napi_get_global(env, &global);
  if (err == NULL) {
    napi_get_null(env, &argv[0]);
  } else {
    napi_create_string_utf8(env, err, NAPI_AUTO_LENGTH, &argv[0]);
  }
  argv[1] = datagrams;
  if (napi_make_callback(env, p->async_context, global, callback, 2, argv, &result) == napi_pending_exception) {
    // A throwing listener must not kill the poller; surface it like any uncaught exception.
    napi_value exception;
    napi_get_and_clear_last_exception(env, &exception);
    napi_fatal_exception(env, exception);
  }
}

static void on_readable(uv_poll_t* handle, int status, int events) {
  (void)events;
  poller_t* p = (poller_t*)handle->data;
  napi_env env = p->env;
  int fd = p->fd;
  // libuv reports a pending socket error (sk_err, e.g. ENOBUFS after an overrun) as POLLERR, passes
  // UV_EBADF and stops the handle. recvmsg below returns the real error; then polling is re-armed.
  int rearm = status < 0;
  if (rearm && fcntl(fd, F_GETFD) < 0) rearm = 0;
  napi_handle_scope scope;
  napi_open_handle_scope(env, &scope);
  napi_value batch, empty;
  napi_create_array(env, &batch);
  uint32_t count = 0;
  const char* pending_error = NULL;
  if (status < 0 && !rearm) pending_error = uv_err_name(status);
  while (pending_error == NULL && count < MAX_BATCH) {
    struct sockaddr_nl from;
    struct iovec iov = {.iov_base = p->buf, .iov_len = p->buf_size};
    struct msghdr msg = {.msg_name = &from, .msg_namelen = sizeof(from), .msg_iov = &iov, .msg_iovlen = 1};
    ssize_t n = recvmsg(fd, &msg, MSG_DONTWAIT | MSG_TRUNC);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      pending_error = errno_name(errno);
      break;
    }
    if ((size_t)n > p->buf_size || (msg.msg_flags & MSG_TRUNC)) {
      // The datagram did not fit and is gone; grow so it cannot happen again and report the loss.
      size_t size = p->buf_size;
      while (size < (size_t)n) size *= 2;
      unsigned char* grown = realloc(p->buf, size);
      if (grown != NULL) {
        p->buf = grown;
        p->buf_size = size;
      }
      pending_error = "EMSGSIZE";
      break;
    }
    // Only datagrams from the kernel (port 0) are trusted.
    if (from.nl_pid != 0) continue;
    napi_value datagram;
    void* copy;
    napi_create_buffer_copy(env, (size_t)n, p->buf, &copy, &datagram);
    napi_set_element(env, batch, count++, datagram);
  }
  if (rearm && uv_poll_start(&p->handle, UV_READABLE, on_readable) < 0 && pending_error == NULL) {
    pending_error = "EBADF";
  }
  // The JS callback may unpoll or close; p itself stays valid until the uv_close callback runs.
  int still_polling = 1;
  if (count > 0) {
    deliver(p, NULL, batch);
    still_polling = find_poller(env, fd) == p;
  }
  if (pending_error != NULL && still_polling) {
    napi_create_array(env, &empty);
    deliver(p, pending_error, empty);
  }
  napi_close_handle_scope(env, scope);
}

// poll(fd, callback(err, datagrams))
static napi_value js_poll(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  size_t argc;
  int32_t fd;
  napi_valuetype t;
  if (!get_args(env, info, 2, argv, &argc) || argc < 2 || !get_int(env, argv[0], &fd) ||
      napi_typeof(env, argv[1], &t) != napi_ok || t != napi_function) {
    return throw_type(env, "poll(fd: number, callback: (err, datagrams) => void)");
  }
  if (find_poller(env, fd) != NULL) {
    napi_throw_error(env, "EBUSY", "poll: this fd is already being polled");
    return NULL;
  }
  uv_loop_t* loop;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok) {
    napi_throw_error(env, "EINVAL", "poll: no event loop");
    return NULL;
  }
  poller_t* p = calloc(1, sizeof(poller_t));
  if (p == NULL) return throw_errno(env, "poll", ENOMEM);
  p->buf = malloc(RECV_INITIAL_BYTES);
  if (p->buf == NULL) {
    free(p);
    return throw_errno(env, "poll", ENOMEM);
  }
  p->buf_size = RECV_INITIAL_BYTES;
  p->env = env;
  p->fd = fd;
  int rc = uv_poll_init(loop, &p->handle, fd);
  if (rc < 0) {
    free(p->buf);
    free(p);
    return throw_errno(env, "uv_poll_init", -rc);
  }
  p->handle.data = p;
  napi_value resource_name;
  napi_create_string_utf8(env, "weft_netlink.poll", NAPI_AUTO_LENGTH, &resource_name);
  napi_async_init(env, NULL, resource_name, &p->async_context);
  napi_create_reference(env, argv[1], 1, &p->callback);
  rc = uv_poll_start(&p->handle, UV_READABLE, on_readable);
  if (rc < 0) {
    napi_delete_reference(env, p->callback);
    napi_async_destroy(env, p->async_context);
    uv_close((uv_handle_t*)&p->handle, on_poller_closed);
    return throw_errno(env, "uv_poll_start", -rc);
  }
  p->next = instance(env)->head;
  instance(env)->head = p;
  return NULL;
}

// unpoll(fd): stops delivering; a no-op when not polling.
static napi_value js_unpoll(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  size_t argc;
  int32_t fd;
  if (!get_args(env, info, 1, argv, &argc) || argc < 1 || !get_int(env, argv[0], &fd)) {
    return throw_type(env, "unpoll(fd: number)");
  }
  poller_t* p = find_poller(env, fd);
  if (p != NULL) stop_poller(p);
  return NULL;
}

// close(fd): stops polling first, since libuv must not watch a closed (and maybe reused) fd.
static napi_value js_close(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  size_t argc;
  int32_t fd;
  if (!get_args(env, info, 1, argv, &argc) || argc < 1 || !get_int(env, argv[0], &fd)) {
    return throw_type(env, "close(fd: number)");
  }
  poller_t* p = find_poller(env, fd);
  if (p != NULL) stop_poller(p);
  untrack_fd(instance(env), fd);
  if (close(fd) < 0 && errno != EINTR) return throw_errno(env, "close netlink socket", errno);
  return NULL;
}

// enterNetns(path): moves the calling thread (the JS main thread) into a network namespace.
static napi_value js_enter_netns(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  size_t argc;
  char path[4096];
  if (!get_args(env, info, 1, argv, &argc) || argc < 1 || !get_string(env, argv[0], path, sizeof(path))) {
    return throw_type(env, "enterNetns(path: string)");
  }
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  char op[4200];
  if (fd < 0) {
    snprintf(op, sizeof(op), "open netns %s", path);
    return throw_errno(env, op, errno);
  }
  if (setns(fd, CLONE_NEWNET) < 0) {
    int err = errno;
    close(fd);
    snprintf(op, sizeof(op), "setns %s", path);
    return throw_errno(env, op, err);
  }
  close(fd);
  return NULL;
}

// The environment (a worker thread, or the main thread at exit) is going away with sockets JS left
// open: stop their polls and close them. A uv_poll still open would make Node abort the whole process
// when it closes the worker's loop; the hook is asynchronous so Node runs the loop until the handles
// are closed.
static void on_env_teardown(napi_async_cleanup_hook_handle hook, void* arg) {
  instance_t* inst = (instance_t*)arg;
  teardown_t* t = malloc(sizeof(teardown_t));
  if (t == NULL) {
    napi_remove_async_cleanup_hook(hook);
    return;
  }
  t->hook = hook;
  t->pending = 1;
  while (inst->head != NULL) {
    poller_t* p = inst->head;
    p->teardown = t;
    t->pending++;
    stop_poller(p);
  }
  for (size_t i = 0; i < inst->nfds; i++) close(inst->fds[i]);
  inst->nfds = 0;
  teardown_release(t);
}

static napi_value init(napi_env env, napi_value exports) {
  instance_t* inst = calloc(1, sizeof(instance_t));
  if (inst == NULL || napi_set_instance_data(env, inst, free_instance, NULL) != napi_ok) {
    free(inst);
    napi_throw_error(env, "ENOMEM", "weft_netlink: cannot allocate instance data");
    return NULL;
  }
  if (napi_add_async_cleanup_hook(env, on_env_teardown, inst, NULL) != napi_ok) {
    napi_throw_error(env, "EINVAL", "weft_netlink: cannot register the environment cleanup hook");
    return NULL;
  }
  napi_property_descriptor props[] = {
      {"open", NULL, js_open, NULL, NULL, NULL, napi_enumerable, NULL},
      {"addMembership", NULL, js_add_membership, NULL, NULL, NULL, napi_enumerable, NULL},
      {"send", NULL, js_send, NULL, NULL, NULL, napi_enumerable, NULL},
      {"poll", NULL, js_poll, NULL, NULL, NULL, napi_enumerable, NULL},
      {"unpoll", NULL, js_unpoll, NULL, NULL, NULL, napi_enumerable, NULL},
      {"close", NULL, js_close, NULL, NULL, NULL, napi_enumerable, NULL},
      {"enterNetns", NULL, js_enter_netns, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
  weft_define_sd_notify(env, exports);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
