// pageOutCode(): hands the clean, read-only file pages of this process (the runtime's code and its
// embedded bundle) back to the kernel with MADV_PAGEOUT. A JS runtime touches tens of MB of its own
// binary to start and to program thousands of peers, then runs a small part of it; those pages stay
// in RSS until memory runs short. What is still used faults back in from the file on the next use.
// Only private, non-writable file mappings are advised; the kernel skips pages other processes map.
// Returns the bytes advised; errors (an old kernel without MADV_PAGEOUT) are not fatal: it returns 0.
#define _GNU_SOURCE
#include "resident-code.h"

#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif

static napi_value js_page_out_code(napi_env env, napi_callback_info info) {
  (void)info;
  double advised = 0;
  FILE* maps = fopen("/proc/self/maps", "re");
  if (maps != NULL) {
    char line[4096 + 128];
    while (fgets(line, sizeof(line), maps) != NULL) {
      unsigned long start, end, offset, inode;
      char perms[8], dev[16];
      if (sscanf(line, "%lx-%lx %7s %lx %15s %lu", &start, &end, perms, &offset, dev, &inode) != 6) continue;
      // File-backed (an inode), private and not writable: code and read-only data, never dirty.
      if (inode == 0 || perms[1] == 'w' || perms[3] != 'p') continue;
      if (madvise((void*)start, end - start, MADV_PAGEOUT) == 0) advised += (double)(end - start);
    }
    fclose(maps);
  }
  napi_value result;
  napi_create_double(env, advised, &result);
  return result;
}

void weft_define_page_out_code(napi_env env, napi_value exports) {
  napi_value fn;
  if (napi_create_function(env, "pageOutCode", NAPI_AUTO_LENGTH, js_page_out_code, NULL, &fn) == napi_ok)
    napi_set_named_property(env, exports, "pageOutCode", fn);
}
