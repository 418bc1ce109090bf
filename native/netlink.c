// weft_netlink: the smallest possible bridge between Node and AF_NETLINK sockets.
// It only opens sockets, sends bytes and delivers received datagrams; every message is encoded and
// decoded in TypeScript (src/netlink). Errors are thrown as JS Errors whose .code is the errno name.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <linux/netlink.h>
#include <node_api.h>
#include "napi-values.h"
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "resident-code.h"
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
// level-triggered, so what is left is read on the next turn.
#define MAX_BATCH 4096

// A readable-poll without libuv: a small thread waits in poll(2) on the socket and tells the JS thread
// through a threadsafe function, which reads the datagrams there. Both Node and Bun (whose N-API has no
// libuv) provide threadsafe functions. The thread waits again only when the JS thread re-arms it, so
// at most one call is queued and every recvmsg happens on the JS thread.
typedef struct poller {
  napi_env env;
  napi_threadsafe_function tsfn;
  pthread_t thread;
  int wake;  // eventfd: the JS thread re-arms (or stops) the poll thread
  atomic_int stopping;
  int released;  // stop_poller ran: unlinked, thread joined, threadsafe function released
  int fd;
  unsigned char* buf;
  size_t buf_size;
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
  const char* name = strerrorname_np(err);
  if (name == NULL) {
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

static void free_poller(poller_t* p) {
  if (p->wake >= 0) close(p->wake);
  free(p->buf);
  free(p);
}

static void wake_thread(poller_t* p) {
  uint64_t one = 1;
  ssize_t n;
  do {
    n = write(p->wake, &one, sizeof(one));
  } while (n < 0 && errno == EINTR);
}

// Ends the thread; it only ever waits in poll(2), so it leaves at once.
static void join_thread(poller_t* p) {
  unlink_poller(p);
  atomic_store(&p->stopping, 1);
  wake_thread(p);
  pthread_join(p->thread, NULL);
}

// Stops the thread, then lets the threadsafe function go; a call still queued is dropped in on_ready,
// which sees `stopping`. The poller is freed when the threadsafe function is finalized.
static void stop_poller(poller_t* p) {
  join_thread(p);
  p->released = 1;
  napi_release_threadsafe_function(p->tsfn, napi_tsfn_abort);
}

// The threadsafe function is gone: after stop_poller, or when the runtime tears the environment down
// first (its own cleanup may run before ours), in which case the thread must still be ended here.
static void on_tsfn_finalized(napi_env env, void* data, void* hint) {
  (void)env;
  (void)hint;
  poller_t* p = (poller_t*)data;
  if (!p->released) join_thread(p);
  free_poller(p);
}

static int wait_readable(int fd, int wake, int* readable) {
  struct pollfd fds[2] = {{.fd = fd, .events = POLLIN}, {.fd = wake, .events = POLLIN}};
  int n;
  do {
    n = poll(fds, 2, -1);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return -1;
  if (fds[1].revents & POLLIN) {
    uint64_t count;
    ssize_t r = read(wake, &count, sizeof(count));
    (void)r;
  }
  // POLLERR (a pending socket error such as ENOBUFS) and POLLNVAL count as readable: the JS thread's
  // recvmsg reports the real error.
  *readable = (fds[0].revents & (POLLIN | POLLERR | POLLHUP | POLLNVAL)) != 0;
  return 0;
}

static void* poll_thread(void* arg) {
  poller_t* p = (poller_t*)arg;
  int armed = 1;
  while (!atomic_load(&p->stopping)) {
    int readable = 0;
    // While unarmed only the wake fd matters (a closed socket fd would report POLLNVAL forever).
    if (wait_readable(armed ? p->fd : -1, p->wake, &readable) < 0) break;
    if (atomic_load(&p->stopping)) break;
    if (!armed) {
      armed = 1;
      continue;
    }
    if (readable) {
      armed = 0;
      if (napi_call_threadsafe_function(p->tsfn, NULL, napi_tsfn_nonblocking) != napi_ok) break;
    }
  }
  return NULL;
}

// Calls back into JS with (err, datagrams).
static void deliver(napi_env env, napi_value callback, const char* err, napi_value datagrams) {
  napi_value global, argv[2], result;
  napi_get_global(env, &global);
  if (err == NULL) {
    napi_get_null(env, &argv[0]);
  } else {
    napi_create_string_utf8(env, err, NAPI_AUTO_LENGTH, &argv[0]);
  }
  argv[1] = datagrams;
  if (napi_call_function(env, global, callback, 2, argv, &result) == napi_pending_exception) {
    // A throwing listener must not kill the poller; surface it like any uncaught exception.
    napi_value exception;
    napi_get_and_clear_last_exception(env, &exception);
    napi_fatal_exception(env, exception);
  }
}

// On the JS thread: the socket was readable. Reads up to MAX_BATCH datagrams, delivers them, re-arms.
static void on_ready(napi_env env, napi_value callback, void* context, void* data) {
  (void)data;
  poller_t* p = (poller_t*)context;
  if (env == NULL || atomic_load(&p->stopping)) return;
  int fd = p->fd;
  napi_value batch, empty;
  napi_create_array(env, &batch);
  uint32_t count = 0;
  const char* pending_error = NULL;
  int closed = fcntl(fd, F_GETFD) < 0;
  if (closed) pending_error = "EBADF";
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
  // The JS callback may unpoll or close; then p must not be touched again (it may be freed).
  if (count > 0) {
    deliver(env, callback, NULL, batch);
    if (find_poller(env, fd) != p) return;
  }
  if (pending_error != NULL) {
    napi_create_array(env, &empty);
    deliver(env, callback, pending_error, empty);
    if (find_poller(env, fd) != p) return;
  }
  // A closed fd is not polled again (its number may be reused); the poller waits for unpoll/close.
  if (!closed) wake_thread(p);
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
  poller_t* p = calloc(1, sizeof(poller_t));
  if (p == NULL) return throw_errno(env, "poll", ENOMEM);
  p->wake = eventfd(0, EFD_CLOEXEC);
  p->buf = malloc(RECV_INITIAL_BYTES);
  if (p->wake < 0 || p->buf == NULL) {
    int err = p->wake < 0 ? errno : ENOMEM;
    free_poller(p);
    return throw_errno(env, "poll", err);
  }
  p->buf_size = RECV_INITIAL_BYTES;
  p->env = env;
  p->fd = fd;
  napi_value resource_name;
  napi_create_string_utf8(env, "weft_netlink.poll", NAPI_AUTO_LENGTH, &resource_name);
  // Like a started uv_poll, the threadsafe function keeps the event loop alive until unpoll/close.
  if (napi_create_threadsafe_function(env, argv[1], NULL, resource_name, 0, 1, p, on_tsfn_finalized, p, on_ready,
                                      &p->tsfn) != napi_ok) {
    free_poller(p);
    napi_throw_error(env, "EINVAL", "poll: cannot create the threadsafe function");
    return NULL;
  }
  int rc = pthread_create(&p->thread, NULL, poll_thread, p);
  if (rc != 0) {
    napi_release_threadsafe_function(p->tsfn, napi_tsfn_abort);
    return throw_errno(env, "poll: pthread_create", rc);
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

// close(fd): stops polling first, since the poll thread must not watch a closed (and maybe reused) fd.
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
// open: stop their poll threads and close them.
static void on_env_teardown(void* arg) {
  instance_t* inst = (instance_t*)arg;
  while (inst->head != NULL) stop_poller(inst->head);
  for (size_t i = 0; i < inst->nfds; i++) close(inst->fds[i]);
  inst->nfds = 0;
}

static napi_value init(napi_env env, napi_value exports) {
  instance_t* inst = calloc(1, sizeof(instance_t));
  if (inst == NULL || napi_set_instance_data(env, inst, free_instance, NULL) != napi_ok) {
    free(inst);
    napi_throw_error(env, "ENOMEM", "weft_netlink: cannot allocate instance data");
    return NULL;
  }
  if (napi_add_env_cleanup_hook(env, on_env_teardown, inst) != napi_ok) {
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
  weft_define_page_out_code(env, exports);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
