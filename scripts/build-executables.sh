#!/usr/bin/env bash
# Builds weftd and weft as single Bun executables (dist/bin), from tsc's output in dist/src: what ships
# and what the tests run. The native addons (build/Release) are embedded; no Node is needed to run them.
set -euo pipefail
cd "$(dirname "$0")/.."
bun=node_modules/@oven/bun-linux-x64/bin/bun
version=$(node -p 'require("./package.json").version')
mkdir -p dist/bin
for entry in daemon/weftd-main:weftd cli/weft-main:weft; do
  # --bytecode: start-up without parsing the bundle (weftd --version: ~10 ms instead of ~60 ms). No .env or
  # bunfig.toml from the working directory may change what a daemon does.
  "$bun" build --compile --minify --bytecode --no-compile-autoload-dotenv --no-compile-autoload-bunfig \
    --define "WEFT_VERSION=\"$version\"" \
    "dist/src/${entry%%:*}.js" --outfile "dist/bin/${entry##*:}" --log-level=warn >/dev/null
done
