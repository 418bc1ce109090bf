// Adds pageOutCode (native/resident-code.c) to the addon's exports.
#pragma once
#include <node_api.h>

void weft_define_page_out_code(napi_env env, napi_value exports);
