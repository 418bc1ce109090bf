#!/usr/bin/env bash
# Builds what ships as single Bun executables, the runtime and the native addons (build/Release) inside,
# so no Node is needed to run them: dist/bin/weftd and dist/bin/weft from tsc's output in dist/src, and the
# CNI plugin dist/cni/flannel from its source (it imports nothing from dist). These are what the tests run.
set -euo pipefail
cd "$(dirname "$0")/.."
bun=node_modules/@oven/bun-linux-x64/bin/bun
version=$(node -p 'require("./package.json").version')
mkdir -p dist/bin dist/cni

# compile ENTRY OUTFILE [FLAG...]. --bytecode: start-up without parsing the bundle (weftd --version:
# ~10 ms instead of ~60 ms). No .env or bunfig.toml from the working directory may change what runs.
compile() {
  local entry=$1 outfile=$2
  shift 2
  "$bun" build --compile --minify --bytecode --no-compile-autoload-dotenv --no-compile-autoload-bunfig \
    --define "WEFT_VERSION=\"$version\"" "$@" "$entry" --outfile "$outfile" --log-level=warn >/dev/null
}

compile dist/src/daemon/weftd-main.js dist/bin/weftd
compile dist/src/cli/weft-main.js dist/bin/weft
# A plugin runs once per pod: JSC's tier-up thresholds scaled by 1000, since compiling hot code cost more
# than it saved (own work ADD 9.6 -> 8.0 ms, DEL 7.1 -> 4.1 ms).
compile src/cni/flannel-main.ts dist/cni/flannel --compile-jit-policy=1000
