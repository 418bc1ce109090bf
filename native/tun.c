// weft_tun: the udp backend's datapath, as flanneld's (pkg/backend/udp/proxy_amd64.c) but batched.
// A TUN device (flannel0) and a UDP socket; two threads move packets between them without touching JS:
//   tx: read IP packets from the TUN, look up the peer whose subnet holds the destination, send each
//       packet as a whole UDP payload to that peer (sendmmsg; runs of equal-sized packets to one peer go
//       as one UDP GSO send, which the kernel splits into ordinary datagrams);
//   rx: recvmmsg datagrams from the port (coalesced by UDP GRO where the kernel can) and write each
//       payload to the TUN.
// A packet to a subnet with no peer is dropped, counted and answered with ICMP net-unreachable, as
// flanneld's send_net_unreachable does. The route table is set from JS (the desired state).
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <node_api.h>
#include "napi-values.h"
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <linux/sockios.h>
#include <unistd.h>

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef UDP_GRO
#define UDP_GRO 104
#endif

// Packets per read/send batch; 64 also stays within the kernel's UDP GSO segment limit.
#define BATCH 64
// A slot holds any IP packet; pages are touched only as far as packets reach, so RSS stays small.
#define SLOT_BYTES 65536
#define UDP_BUFFER_BYTES (4 * 1024 * 1024)
#define IPV4_HEADER 20
#define ICMP_HEADER 8
#define MAX_IP_HEADER 60
#define GSO_MAX_BYTES 65000

// ---------------------------------------------------------------------------------------------
// Pure packet helpers (also exposed to JS for unit tests on bytes).

static uint16_t checksum(const uint8_t* data, size_t len) {
  uint32_t sum = 0;
  for (size_t i = 0; i + 1 < len; i += 2) sum += (uint32_t)(data[i] << 8 | data[i + 1]);
  if (len & 1) sum += (uint32_t)(data[len - 1] << 8);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return (uint16_t)~sum;
}

// Builds ICMP destination unreachable / net unreachable (type 3, code 0) from `source` (network order)
// to the sender of `offender`, quoting its IP header and first 8 payload bytes. Returns the length, or 0
// when no reply is due: malformed header, a non-first fragment, or an ICMP error (RFC 1122 3.2.2;
// flanneld stays silent for every ICMP, weft answers echo requests so ping reports the unreachable net).
static size_t build_net_unreachable(const uint8_t* pkt, size_t len, uint32_t source, uint8_t* out) {
  if (len < IPV4_HEADER || (pkt[0] >> 4) != 4) return 0;
  size_t ihl = (size_t)(pkt[0] & 0x0f) * 4;
  if (ihl < IPV4_HEADER || ihl > len) return 0;
  if (((pkt[6] & 0x1f) << 8 | pkt[7]) != 0) return 0;
  if (pkt[9] == IPPROTO_ICMP) {
    if (len < ihl + 1) return 0;
    uint8_t type = pkt[ihl];
    // Query messages may be answered; errors (3, 4, 5, 11, 12) and unknown types never.
    if (type != 8 && type != 13 && type != 15 && type != 17) return 0;
  }
  size_t quoted = ihl + 8 < len ? ihl + 8 : len;
  size_t total = IPV4_HEADER + ICMP_HEADER + quoted;
  memset(out, 0, IPV4_HEADER + ICMP_HEADER);
  out[0] = 0x45;
  out[2] = (uint8_t)(total >> 8);
  out[3] = (uint8_t)total;
  out[8] = 8;  // TTL, as flanneld
  out[9] = IPPROTO_ICMP;
  memcpy(out + 12, &source, 4);
  memcpy(out + 16, pkt + 12, 4);  // back to the offender's source
  uint16_t ipsum = checksum(out, IPV4_HEADER);
  out[10] = (uint8_t)(ipsum >> 8);
  out[11] = (uint8_t)ipsum;
  uint8_t* icmp = out + IPV4_HEADER;
  icmp[0] = 3;  // destination unreachable
  icmp[1] = 0;  // net unreachable
  memcpy(icmp + ICMP_HEADER, pkt, quoted);
  uint16_t icmpsum = checksum(icmp, ICMP_HEADER + quoted);
  icmp[2] = (uint8_t)(icmpsum >> 8);
  icmp[3] = (uint8_t)icmpsum;
  return total;
}

// Decrements the TTL and patches the header checksum incrementally (RFC 1624). 0: drop (TTL expired).
static int decrement_ttl(uint8_t* pkt) {
  if (pkt[8] <= 1) return 0;
  pkt[8]--;
  uint32_t sum = (uint32_t)(pkt[10] << 8 | pkt[11]) + 0x0100;
  sum = (sum & 0xffff) + (sum >> 16);
  pkt[10] = (uint8_t)(sum >> 8);
  pkt[11] = (uint8_t)sum;
  return 1;
}

// ---------------------------------------------------------------------------------------------
// Route table: peer subnets sorted by network address. Subnets never overlap (the caller keeps it so),
// so the candidate for an address is the last network at or below it.

typedef struct {
  uint32_t net;  // host order
  uint32_t mask;
  uint8_t prefix_len;
  struct sockaddr_in peer;
} route_t;

typedef struct {
  route_t* items;
  size_t count;
  size_t alloc;
} table_t;

static size_t table_lower_bound(const table_t* t, uint32_t net) {
  size_t lo = 0, hi = t->count;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (t->items[mid].net < net)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

static const route_t* table_find(const table_t* t, uint32_t addr) {
  size_t i = table_lower_bound(t, addr);
  if (i < t->count && t->items[i].net == addr) return &t->items[i];
  if (i == 0) return NULL;
  const route_t* r = &t->items[i - 1];
  return (addr & r->mask) == r->net ? r : NULL;
}

static uint32_t mask_of(int prefix_len) { return prefix_len == 0 ? 0 : 0xffffffffu << (32 - prefix_len); }

static int overlaps(const route_t* a, uint32_t net, uint32_t mask) {
  uint32_t m = a->mask & mask;
  return (a->net & m) == (net & m);
}

// Sets (adds or replaces) a route. EEXIST when it overlaps a different subnet in the table.
static int table_set(table_t* t, uint32_t net, int prefix_len, const struct sockaddr_in* peer) {
  uint32_t mask = mask_of(prefix_len);
  net &= mask;
  size_t i = table_lower_bound(t, net);
  if (i < t->count && t->items[i].net == net && t->items[i].prefix_len == prefix_len) {
    t->items[i].peer = *peer;
    return 0;
  }
  if ((i < t->count && overlaps(&t->items[i], net, mask)) || (i > 0 && overlaps(&t->items[i - 1], net, mask))) {
    return EEXIST;
  }
  if (t->count == t->alloc) {
    size_t alloc = t->alloc ? t->alloc * 2 : 16;
    route_t* items = realloc(t->items, alloc * sizeof(route_t));
    if (items == NULL) return ENOMEM;
    t->items = items;
    t->alloc = alloc;
  }
  memmove(&t->items[i + 1], &t->items[i], (t->count - i) * sizeof(route_t));
  t->items[i] = (route_t){.net = net, .mask = mask, .prefix_len = (uint8_t)prefix_len, .peer = *peer};
  t->count++;
  return 0;
}

static int table_delete(table_t* t, uint32_t net, int prefix_len) {
  net &= mask_of(prefix_len);
  size_t i = table_lower_bound(t, net);
  if (i >= t->count || t->items[i].net != net || t->items[i].prefix_len != prefix_len) return ENOENT;
  memmove(&t->items[i], &t->items[i + 1], (t->count - i - 1) * sizeof(route_t));
  t->count--;
  return 0;
}

// ---------------------------------------------------------------------------------------------
// The forwarder.

enum {
  S_TX_PACKETS,
  S_TX_BYTES,
  S_RX_PACKETS,
  S_RX_BYTES,
  S_NO_ROUTE,
  S_UNREACHABLE_SENT,
  S_TTL_EXPIRED,
  S_MALFORMED,
  S_SEND_ERRORS,
  S_TUN_WRITE_ERRORS,
  S_COUNT
};
static const char* STAT_NAMES[S_COUNT] = {
    "txPackets", "txBytes",          "rxPackets",  "rxBytes",    "noRoute",
    "unreachableSent", "ttlExpired", "malformed", "sendErrors", "tunWriteErrors",
};

typedef struct forwarder {
  int tun;
  int udp;
  int stop_fd;
  uint32_t tun_addr;  // network order: the ICMP source
  int gso;            // UDP GSO usable (cleared on the first EIO/EINVAL)
  pthread_mutex_t lock;
  table_t table;
  pthread_t tx_thread, rx_thread;
  int running;
  uint64_t stats[S_COUNT];
  int last_errno;  // the latest send/write failure, for the log
  int tun_lost;    // the TUN device went away under us (deleted): the JS side re-creates it
} forwarder_t;

static void add_stat(forwarder_t* f, int which, uint64_t n) {
  if (n) __atomic_fetch_add(&f->stats[which], n, __ATOMIC_RELAXED);
}

// Waits until `fd` is readable; 0 when asked to stop.
static int wait_readable(forwarder_t* f, int fd) {
  struct pollfd fds[2] = {{.fd = fd, .events = POLLIN}, {.fd = f->stop_fd, .events = POLLIN}};
  for (;;) {
    int n = poll(fds, 2, -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return 0;
    if (fds[1].revents) return 0;
    // POLLERR/POLLHUP on the TUN: the device was deleted; the JS side notices and re-creates it.
    if (fds[0].revents & (POLLERR | POLLHUP | POLLNVAL)) {
      if (fd == f->tun) __atomic_store_n(&f->tun_lost, 1, __ATOMIC_RELAXED);
      return 0;
    }
    return 1;
  }
}

static void* tx_loop(void* arg) {
  forwarder_t* f = arg;
  uint8_t* slots = malloc((size_t)BATCH * SLOT_BYTES);
  struct mmsghdr* msgs = calloc(BATCH, sizeof(struct mmsghdr));
  struct iovec* iovs = calloc(BATCH, sizeof(struct iovec));
  struct sockaddr_in* dsts = calloc(BATCH, sizeof(struct sockaddr_in));
  char(*cmsgs)[CMSG_SPACE(sizeof(uint16_t))] = calloc(BATCH, CMSG_SPACE(sizeof(uint16_t)));
  size_t* lens = calloc(BATCH, sizeof(size_t));
  uint8_t icmp[IPV4_HEADER + ICMP_HEADER + MAX_IP_HEADER + 8];
  if (!slots || !msgs || !iovs || !dsts || !cmsgs || !lens) goto out;
  while (wait_readable(f, f->tun)) {
    for (;;) {
      // Read what the TUN has, up to a batch.
      int n = 0;
      while (n < BATCH) {
        ssize_t r = read(f->tun, slots + (size_t)n * SLOT_BYTES, SLOT_BYTES);
        if (r < 0) break;
        if (r < IPV4_HEADER || (slots[(size_t)n * SLOT_BYTES] >> 4) != 4) {
          add_stat(f, S_MALFORMED, 1);
          continue;
        }
        lens[n++] = (size_t)r;
      }
      if (n == 0) break;
      // Route each packet; group runs of equal-sized packets to one peer into a GSO send.
      int m = 0;
      uint64_t no_route = 0, unreachable = 0, expired = 0, bytes = 0, packets = 0;
      pthread_mutex_lock(&f->lock);
      for (int i = 0; i < n; i++) {
        uint8_t* pkt = slots + (size_t)i * SLOT_BYTES;
        uint32_t dst;
        memcpy(&dst, pkt + 16, 4);
        const route_t* r = table_find(&f->table, ntohl(dst));
        if (r == NULL) {
          no_route++;
          size_t len = build_net_unreachable(pkt, lens[i], f->tun_addr, icmp);
          if (len && write(f->tun, icmp, len) == (ssize_t)len) unreachable++;
          continue;
        }
        if (!decrement_ttl(pkt)) {
          expired++;
          continue;
        }
        packets++;
        bytes += lens[i];
        // A packet that continues a run (same peer, not longer than the run's first packet, which sets
        // the segment size; only the last segment may be shorter) is appended to it in the run's slot,
        // so the run goes out as one UDP GSO send that the kernel splits into ordinary datagrams.
        if (f->gso && m > 0) {
          struct msghdr* prev = &msgs[m - 1].msg_hdr;
          struct iovec* pv = &iovs[m - 1];
          uint16_t seg_size;
          if (prev->msg_controllen)
            memcpy(&seg_size, CMSG_DATA((struct cmsghdr*)cmsgs[m - 1]), 2);
          else
            seg_size = (uint16_t)pv->iov_len;
          uint8_t* run_start = pv->iov_base;
          size_t run_len = pv->iov_len;
          int run_full = run_len % seg_size == 0;  // no short segment yet
          if (run_full && lens[i] <= seg_size && run_len + lens[i] <= GSO_MAX_BYTES &&
              run_len / seg_size < BATCH && memcmp(&dsts[m - 1], &r->peer, sizeof(r->peer)) == 0 &&
              (size_t)(pkt - run_start) >= run_len) {
            memmove(run_start + run_len, pkt, lens[i]);
            pv->iov_len = run_len + lens[i];
            if (!prev->msg_controllen) {
              struct cmsghdr* c = (struct cmsghdr*)cmsgs[m - 1];
              c->cmsg_level = SOL_UDP;
              c->cmsg_type = UDP_SEGMENT;
              c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
              memcpy(CMSG_DATA(c), &seg_size, 2);
              prev->msg_control = c;
              prev->msg_controllen = CMSG_SPACE(sizeof(uint16_t));
            }
            continue;
          }
        }
        dsts[m] = r->peer;
        iovs[m] = (struct iovec){.iov_base = pkt, .iov_len = lens[i]};
        msgs[m].msg_hdr = (struct msghdr){
            .msg_name = &dsts[m], .msg_namelen = sizeof(dsts[m]), .msg_iov = &iovs[m], .msg_iovlen = 1};
        m++;
      }
      pthread_mutex_unlock(&f->lock);
      add_stat(f, S_NO_ROUTE, no_route);
      add_stat(f, S_UNREACHABLE_SENT, unreachable);
      add_stat(f, S_TTL_EXPIRED, expired);
      // Send the batch.
      int sent = 0;
      while (sent < m) {
        int r = sendmmsg(f->udp, msgs + sent, (unsigned)(m - sent), 0);
        if (r > 0) {
          sent += r;
          continue;
        }
        if (r < 0 && errno == EINTR) continue;
        int err = errno;
        struct msghdr* failed = &msgs[sent].msg_hdr;
        if (failed->msg_controllen && (err == EIO || err == EINVAL)) {
          // This path cannot segment (e.g. no checksum offload): stop using GSO, and send this run's
          // packets one by one.
          __atomic_store_n(&f->gso, 0, __ATOMIC_RELAXED);
          uint16_t seg;
          memcpy(&seg, CMSG_DATA((struct cmsghdr*)failed->msg_control), 2);
          uint8_t* base = failed->msg_iov[0].iov_base;
          size_t total = failed->msg_iov[0].iov_len;
          for (size_t off = 0; off < total; off += seg) {
            size_t len = total - off < seg ? total - off : seg;
            if (sendto(f->udp, base + off, len, 0, failed->msg_name, failed->msg_namelen) < 0) {
              __atomic_store_n(&f->last_errno, errno, __ATOMIC_RELAXED);
              add_stat(f, S_SEND_ERRORS, 1);
            }
          }
        } else {
          // One failing message (e.g. a peer's network unreachable) is counted and skipped.
          __atomic_store_n(&f->last_errno, err, __ATOMIC_RELAXED);
          add_stat(f, S_SEND_ERRORS, 1);
        }
        sent++;
      }
      add_stat(f, S_TX_PACKETS, packets);
      add_stat(f, S_TX_BYTES, bytes);
      if (n < BATCH) break;
    }
  }
out:
  free(slots);
  free(msgs);
  free(iovs);
  free(dsts);
  free(cmsgs);
  free(lens);
  return NULL;
}

// Writes one received IP packet to the TUN; returns 1 if written, 0 if dropped (and counted).
static int deliver(forwarder_t* f, uint8_t* pkt, size_t len, uint64_t* malformed, uint64_t* expired,
                   uint64_t* failed) {
  if (len < IPV4_HEADER || (pkt[0] >> 4) != 4) {
    (*malformed)++;
    return 0;
  }
  if (!decrement_ttl(pkt)) {
    (*expired)++;
    return 0;
  }
  ssize_t w;
  do {
    w = write(f->tun, pkt, len);
  } while (w < 0 && (errno == EINTR || errno == EAGAIN));
  if (w != (ssize_t)len) {
    (*failed)++;
    __atomic_store_n(&f->last_errno, errno, __ATOMIC_RELAXED);
    return 0;
  }
  return 1;
}

#define GRO_CMSG_SPACE CMSG_SPACE(sizeof(int))

static void* rx_loop(void* arg) {
  forwarder_t* f = arg;
  uint8_t* slots = malloc((size_t)BATCH * SLOT_BYTES);
  struct mmsghdr* msgs = calloc(BATCH, sizeof(struct mmsghdr));
  struct iovec* iovs = calloc(BATCH, sizeof(struct iovec));
  char(*cmsgs)[GRO_CMSG_SPACE] = calloc(BATCH, GRO_CMSG_SPACE);
  if (!slots || !msgs || !iovs || !cmsgs) goto out;
  for (int i = 0; i < BATCH; i++) {
    iovs[i] = (struct iovec){.iov_base = slots + (size_t)i * SLOT_BYTES, .iov_len = SLOT_BYTES};
  }
  while (wait_readable(f, f->udp)) {
    for (;;) {
      for (int i = 0; i < BATCH; i++) {
        msgs[i].msg_hdr = (struct msghdr){
            .msg_iov = &iovs[i], .msg_iovlen = 1, .msg_control = cmsgs[i], .msg_controllen = GRO_CMSG_SPACE};
      }
      int n = recvmmsg(f->udp, msgs, BATCH, MSG_DONTWAIT, NULL);
      if (n <= 0) break;
      uint64_t packets = 0, bytes = 0, malformed = 0, expired = 0, failed = 0;
      for (int i = 0; i < n; i++) {
        uint8_t* data = iovs[i].iov_base;
        size_t len = msgs[i].msg_len;
        if (msgs[i].msg_hdr.msg_flags & MSG_TRUNC) {
          malformed++;
          continue;
        }
        // With UDP GRO the kernel may hand over several datagrams of one sender at once, each
        // `segment` bytes (the last may be shorter): every one is an IP packet of its own.
        size_t segment = len;
        for (struct cmsghdr* c = CMSG_FIRSTHDR(&msgs[i].msg_hdr); c; c = CMSG_NXTHDR(&msgs[i].msg_hdr, c)) {
          if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO) {
            int size;
            memcpy(&size, CMSG_DATA(c), sizeof(size));
            if (size > 0) segment = (size_t)size;
          }
        }
        for (size_t off = 0; off < len; off += segment) {
          size_t part = len - off < segment ? len - off : segment;
          if (deliver(f, data + off, part, &malformed, &expired, &failed)) {
            packets++;
            bytes += part;
          }
        }
      }
      add_stat(f, S_RX_PACKETS, packets);
      add_stat(f, S_RX_BYTES, bytes);
      add_stat(f, S_MALFORMED, malformed);
      add_stat(f, S_TTL_EXPIRED, expired);
      add_stat(f, S_TUN_WRITE_ERRORS, failed);
      if (n < BATCH) break;
    }
  }
out:
  free(slots);
  free(msgs);
  free(iovs);
  free(cmsgs);
  return NULL;
}

static void forwarder_stop(forwarder_t* f) {
  if (!f->running) return;
  f->running = 0;
  uint64_t one = 1;
  ssize_t ignored = write(f->stop_fd, &one, sizeof(one));
  (void)ignored;
  pthread_join(f->tx_thread, NULL);
  pthread_join(f->rx_thread, NULL);
  // Closing the TUN fd removes flannel0 (it is not persistent, as flanneld's).
  close(f->tun);
  close(f->udp);
  close(f->stop_fd);
}

static void forwarder_finalize(napi_env env, void* data, void* hint) {
  (void)env;
  (void)hint;
  forwarder_t* f = data;
  forwarder_stop(f);
  pthread_mutex_destroy(&f->lock);
  free(f->table.items);
  free(f);
}

// ---------------------------------------------------------------------------------------------
// N-API glue, in the style of native/netlink.c: errors are JS Errors whose .code is the errno name.

static napi_value throw_errno(napi_env env, const char* op, int err) {
  char msg[320];
  snprintf(msg, sizeof(msg), "%s: %s", op, strerror(err));
  const char* name = strerrorname_np(err);
  char fallback[32];
  if (name == NULL) {
    snprintf(fallback, sizeof(fallback), "ERRNO_%d", err);
    name = fallback;
  }
  napi_value code, message, error, errno_value;
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &code);
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

static int get_args(napi_env env, napi_callback_info info, size_t want, napi_value* argv) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return 0;
  return argc >= want;
}

static int get_ipv4(napi_env env, napi_value v, uint32_t* out) {
  char text[INET_ADDRSTRLEN];
  struct in_addr a;
  if (!get_string(env, v, text, sizeof(text)) || inet_pton(AF_INET, text, &a) != 1) return 0;
  *out = a.s_addr;
  return 1;
}

static forwarder_t* get_forwarder(napi_env env, napi_value v) {
  void* data = NULL;
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_external) return NULL;
  if (napi_get_value_external(env, v, &data) != napi_ok) return NULL;
  return data;
}

// openTun(name, txqlen) -> fd: attaches to (creating if needed) the TUN device `name`, IFF_TUN |
// IFF_NO_PI, and sets its transmit queue length (the kernel sizes the TUN's packet ring by it).
static napi_value js_open_tun(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  char name[IFNAMSIZ];
  int32_t txqlen;
  if (!get_args(env, info, 2, argv) || !get_string(env, argv[0], name, sizeof(name)) ||
      !get_int(env, argv[1], &txqlen) || txqlen < 1) {
    return throw_type(env, "openTun(name: string of at most 15 bytes, txqlen: positive number)");
  }
  int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return throw_errno(env, "open /dev/net/tun", errno);
  struct ifreq ifr;
  memset(&ifr, 0, sizeof(ifr));
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
  memcpy(ifr.ifr_name, name, strlen(name));
  char op[64];
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    int err = errno;
    close(fd);
    snprintf(op, sizeof(op), "TUNSETIFF %s", name);
    return throw_errno(env, op, err);
  }
  int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  int err = sock < 0 ? errno : 0;
  if (sock >= 0) {
    memset(&ifr, 0, sizeof(ifr));
    memcpy(ifr.ifr_name, name, strlen(name));
    ifr.ifr_qlen = txqlen;
    if (ioctl(sock, SIOCSIFTXQLEN, &ifr) < 0) err = errno;
    close(sock);
  }
  if (err) {
    close(fd);
    snprintf(op, sizeof(op), "set txqueuelen of %s", name);
    return throw_errno(env, op, err);
  }
  napi_value result;
  napi_create_int32(env, fd, &result);
  return result;
}

// closeFd(fd): for a TUN fd that never reached start().
static napi_value js_close_fd(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t fd;
  if (!get_args(env, info, 1, argv) || !get_int(env, argv[0], &fd)) return throw_type(env, "closeFd(fd: number)");
  close(fd);
  return NULL;
}

// start(tunFd, bindAddress, port, tunAddress, gso) -> forwarder. Takes over tunFd (stop closes it).
static napi_value js_start(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  int32_t tun, port;
  uint32_t bind_addr, tun_addr;
  bool gso = true;
  if (!get_args(env, info, 5, argv) || !get_int(env, argv[0], &tun) || !get_ipv4(env, argv[1], &bind_addr) ||
      !get_int(env, argv[2], &port) || port < 0 || port > 65535 || !get_ipv4(env, argv[3], &tun_addr) ||
      napi_get_value_bool(env, argv[4], &gso) != napi_ok) {
    return throw_type(env,
                      "start(tunFd: number, bindAddress: IPv4 string, port: 0-65535, tunAddress: IPv4 string, "
                      "gso: boolean)");
  }
  int udp = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (udp < 0) return throw_errno(env, "create UDP socket", errno);
  int size = UDP_BUFFER_BYTES;
  // Big buffers absorb bursts that would otherwise be dropped (and retransmitted by TCP).
  if (setsockopt(udp, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size)) < 0)
    setsockopt(udp, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
  if (setsockopt(udp, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof(size)) < 0)
    setsockopt(udp, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
  // Receive coalesced datagrams where the kernel can (UDP GRO; measured +10-30% here); rx_loop splits
  // them again. Optional: without it every datagram arrives alone.
  int one = 1;
  setsockopt(udp, SOL_UDP, UDP_GRO, &one, sizeof(one));
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  addr.sin_addr.s_addr = bind_addr;
  if (bind(udp, (struct sockaddr*)&addr, sizeof(addr)) < 0) {
    int err = errno;
    close(udp);
    char op[64], text[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &bind_addr, text, sizeof(text));
    snprintf(op, sizeof(op), "bind UDP %s:%d", text, port);
    return throw_errno(env, op, err);
  }
  int stop_fd = eventfd(0, EFD_CLOEXEC);
  if (stop_fd < 0) {
    int err = errno;
    close(udp);
    return throw_errno(env, "eventfd", err);
  }
  forwarder_t* f = calloc(1, sizeof(forwarder_t));
  if (f == NULL) {
    close(udp);
    close(stop_fd);
    return throw_errno(env, "allocate forwarder", ENOMEM);
  }
  f->tun = tun;
  f->udp = udp;
  f->stop_fd = stop_fd;
  f->tun_addr = tun_addr;
  f->gso = gso;
  pthread_mutex_init(&f->lock, NULL);
  int err = pthread_create(&f->tx_thread, NULL, tx_loop, f);
  if (err == 0) {
    err = pthread_create(&f->rx_thread, NULL, rx_loop, f);
    if (err != 0) {
      uint64_t one = 1;
      ssize_t ignored = write(stop_fd, &one, sizeof(one));
      (void)ignored;
      pthread_join(f->tx_thread, NULL);
    }
  }
  if (err != 0) {
    close(udp);
    close(stop_fd);
    pthread_mutex_destroy(&f->lock);
    free(f);
    return throw_errno(env, "start forwarding threads", err);
  }
  f->running = 1;
  napi_value result;
  if (napi_create_external(env, f, forwarder_finalize, NULL, &result) != napi_ok) {
    forwarder_finalize(env, f, NULL);
    napi_throw_error(env, "ENOMEM", "weft_tun: cannot wrap the forwarder");
    return NULL;
  }
  return result;
}

// stop(forwarder): stops both threads and closes the TUN (removing the device) and the socket.
static napi_value js_stop(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  forwarder_t* f;
  if (!get_args(env, info, 1, argv) || (f = get_forwarder(env, argv[0])) == NULL) {
    return throw_type(env, "stop(forwarder)");
  }
  forwarder_stop(f);
  return NULL;
}

// setRoute(forwarder, network, prefixLen, peerAddress, port)
static napi_value js_set_route(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  forwarder_t* f;
  uint32_t net, peer;
  int32_t len, port;
  if (!get_args(env, info, 5, argv) || (f = get_forwarder(env, argv[0])) == NULL || !get_ipv4(env, argv[1], &net) ||
      !get_int(env, argv[2], &len) || len < 0 || len > 32 || !get_ipv4(env, argv[3], &peer) ||
      !get_int(env, argv[4], &port) || port < 1 || port > 65535) {
    return throw_type(env,
                      "setRoute(forwarder, network: IPv4 string, prefixLen: 0-32, peer: IPv4 string, port: 1-65535)");
  }
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  sa.sin_addr.s_addr = peer;
  pthread_mutex_lock(&f->lock);
  int err = table_set(&f->table, ntohl(net), len, &sa);
  pthread_mutex_unlock(&f->lock);
  if (err == EEXIST) return throw_errno(env, "setRoute: overlaps another peer's subnet", err);
  if (err) return throw_errno(env, "setRoute", err);
  return NULL;
}

// deleteRoute(forwarder, network, prefixLen) -> whether it was there
static napi_value js_delete_route(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  forwarder_t* f;
  uint32_t net;
  int32_t len;
  if (!get_args(env, info, 3, argv) || (f = get_forwarder(env, argv[0])) == NULL || !get_ipv4(env, argv[1], &net) ||
      !get_int(env, argv[2], &len) || len < 0 || len > 32) {
    return throw_type(env, "deleteRoute(forwarder, network: IPv4 string, prefixLen: 0-32)");
  }
  pthread_mutex_lock(&f->lock);
  int err = table_delete(&f->table, ntohl(net), len);
  pthread_mutex_unlock(&f->lock);
  napi_value result;
  napi_get_boolean(env, err == 0, &result);
  return result;
}

static napi_value ipv4_string(napi_env env, uint32_t network_order) {
  char text[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &network_order, text, sizeof(text));
  napi_value v;
  napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &v);
  return v;
}

// routes(forwarder) -> [{network, prefixLen, peer, port}] in address order
static napi_value js_routes(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  forwarder_t* f;
  if (!get_args(env, info, 1, argv) || (f = get_forwarder(env, argv[0])) == NULL) {
    return throw_type(env, "routes(forwarder)");
  }
  pthread_mutex_lock(&f->lock);
  size_t count = f->table.count;
  route_t* copy = malloc((count ? count : 1) * sizeof(route_t));
  if (copy) memcpy(copy, f->table.items, count * sizeof(route_t));
  pthread_mutex_unlock(&f->lock);
  if (copy == NULL) return throw_errno(env, "routes", ENOMEM);
  napi_value list;
  napi_create_array_with_length(env, count, &list);
  for (size_t i = 0; i < count; i++) {
    napi_value item, v;
    napi_create_object(env, &item);
    napi_set_named_property(env, item, "network", ipv4_string(env, htonl(copy[i].net)));
    napi_create_int32(env, copy[i].prefix_len, &v);
    napi_set_named_property(env, item, "prefixLen", v);
    napi_set_named_property(env, item, "peer", ipv4_string(env, copy[i].peer.sin_addr.s_addr));
    napi_create_int32(env, ntohs(copy[i].peer.sin_port), &v);
    napi_set_named_property(env, item, "port", v);
    napi_set_element(env, list, (uint32_t)i, item);
  }
  free(copy);
  return list;
}

// stats(forwarder) -> counters, whether the threads still run, and the latest send/write errno name
static napi_value js_stats(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  forwarder_t* f;
  if (!get_args(env, info, 1, argv) || (f = get_forwarder(env, argv[0])) == NULL) {
    return throw_type(env, "stats(forwarder)");
  }
  napi_value result, v;
  napi_create_object(env, &result);
  for (int i = 0; i < S_COUNT; i++) {
    napi_create_double(env, (double)__atomic_load_n(&f->stats[i], __ATOMIC_RELAXED), &v);
    napi_set_named_property(env, result, STAT_NAMES[i], v);
  }
  napi_get_boolean(env, __atomic_load_n(&f->gso, __ATOMIC_RELAXED), &v);
  napi_set_named_property(env, result, "gso", v);
  napi_get_boolean(env, __atomic_load_n(&f->tun_lost, __ATOMIC_RELAXED), &v);
  napi_set_named_property(env, result, "tunLost", v);
  int err = __atomic_load_n(&f->last_errno, __ATOMIC_RELAXED);
  if (err) {
    const char* name = strerrorname_np(err);
    napi_create_string_utf8(env, name ? name : "unknown", NAPI_AUTO_LENGTH, &v);
    napi_set_named_property(env, result, "lastError", v);
  }
  return result;
}

// netUnreachable(packet, sourceAddress) -> Buffer | null: the ICMP reply the forwarder would send.
static napi_value js_net_unreachable(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  void* data;
  size_t len;
  uint32_t source;
  bool is_typed = false;
  if (!get_args(env, info, 2, argv) || napi_is_typedarray(env, argv[0], &is_typed) != napi_ok || !is_typed ||
      !get_ipv4(env, argv[1], &source)) {
    return throw_type(env, "netUnreachable(packet: Uint8Array, source: IPv4 string)");
  }
  napi_typedarray_type type;
  napi_value ab;
  size_t offset;
  napi_get_typedarray_info(env, argv[0], &type, &len, &data, &ab, &offset);
  if (type != napi_uint8_array) return throw_type(env, "netUnreachable: packet must be a Uint8Array");
  uint8_t out[IPV4_HEADER + ICMP_HEADER + MAX_IP_HEADER + 8];
  size_t n = build_net_unreachable(data, len, source, out);
  napi_value result;
  if (n == 0) {
    napi_get_null(env, &result);
    return result;
  }
  void* copy;
  napi_create_buffer_copy(env, n, out, &copy, &result);
  return result;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"openTun", NULL, js_open_tun, NULL, NULL, NULL, napi_enumerable, NULL},
      {"closeFd", NULL, js_close_fd, NULL, NULL, NULL, napi_enumerable, NULL},
      {"start", NULL, js_start, NULL, NULL, NULL, napi_enumerable, NULL},
      {"stop", NULL, js_stop, NULL, NULL, NULL, napi_enumerable, NULL},
      {"setRoute", NULL, js_set_route, NULL, NULL, NULL, napi_enumerable, NULL},
      {"deleteRoute", NULL, js_delete_route, NULL, NULL, NULL, napi_enumerable, NULL},
      {"routes", NULL, js_routes, NULL, NULL, NULL, napi_enumerable, NULL},
      {"stats", NULL, js_stats, NULL, NULL, NULL, napi_enumerable, NULL},
      {"netUnreachable", NULL, js_net_unreachable, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
