// Reading JS argument values in the addons (netlink.c, tun.c): one copy of each check.
#ifndef WEFT_NAPI_VALUES_H
#define WEFT_NAPI_VALUES_H
#include <node_api.h>
#include <stddef.h>
#include <stdint.h>

static inline int get_int(napi_env env, napi_value v, int32_t* out) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_number) return 0;
  return napi_get_value_int32(env, v, out) == napi_ok;
}

static inline int get_uint(napi_env env, napi_value v, uint32_t* out) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_number) return 0;
  return napi_get_value_uint32(env, v, out) == napi_ok;
}

// Copies a JS string into buf; returns 0 unless it is a string that fits.
static inline int get_string(napi_env env, napi_value v, char* buf, size_t size) {
  napi_valuetype t;
  size_t len;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_string) return 0;
  if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok || len + 1 > size) return 0;
  return napi_get_value_string_utf8(env, v, buf, size, &len) == napi_ok;
}
#endif
