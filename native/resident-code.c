// pageOutCode(): hands the clean file pages of this process's private mappings (the runtime's code, its
// embedded bundle, and the never-written pages of its data segment) back to the kernel with
// MADV_PAGEOUT. A JS runtime touches tens of MB of its own binary to start and to program thousands
// of peers, then runs a small part of it; those pages stay in RSS until memory runs short. What is
// still used faults back in from the file on the next use.
// Only private file mappings are advised; the kernel skips pages other processes map. A written
// (copied) page of a writable one is anonymous memory: without swap (a Kubernetes node's default) it
// stays; with swap it would be swapped out and read back when next used.
// Returns the bytes advised; errors (an old kernel without MADV_PAGEOUT) are not fatal: it returns 0.
#define _GNU_SOURCE
#include "resident-code.h"

#include <stdio.h>
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
      // File-backed (an inode) and private: code, read-only data, and the data segment's clean pages
      // (~4 MB of Bun's are read at start and never written).
      if (inode == 0 || perms[3] != 'p') continue;
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
