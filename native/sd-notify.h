// Adds sdNotify (native/sd-notify.c) to the addon's exports.
#pragma once
#include <node_api.h>

void weft_define_sd_notify(napi_env env, napi_value exports);
