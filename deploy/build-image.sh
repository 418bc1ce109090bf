#!/usr/bin/env bash
# Builds weft's container image with podman, without any container registry:
#   - the base is Debian 12 made by mmdebstrap from Debian's packages (apt's configured sources), imported
#     with `podman import` as localhost/weft-base:<hash of its package list>;
#   - weft is what `npm run build` left in dist/ (run it first): three executables that need no Node,
#     dist/bin/weftd, dist/bin/weft and the CNI plugin dist/cni/flannel (installed on the host by
#     install-cni-plugin.sh); the runtime (Bun) and the native addons are inside each of them.
# Each image's tag carries a hash of its inputs, and a present tag is not built again, so a second run with
# the same inputs takes seconds. The image is also tagged localhost/weft:<version>, as deploy/kube-weft.yml
# names it. Prints the image reference (localhost/weft:<version>-<hash>) as its last line.
#
# usage: deploy/build-image.sh [--store DIR]
#   --store DIR  keep podman's images under DIR (storage DIR/storage, run state DIR/run) instead of the
#                system's store; the tests use this so their cache is their own.
set -euo pipefail
cd "$(dirname "$0")/.."

store=""
while [ $# -gt 0 ]; do
  case "$1" in
    --store) store="${2:?--store needs a directory}"; shift 2 ;;
    --store=*) store="${1#--store=}"; shift ;;
    *) echo "build-image.sh: unknown argument $1 (usage: deploy/build-image.sh [--store DIR])" >&2; exit 2 ;;
  esac
done

SUITE=bookworm
# What weftd and the plugin run: iptables/ip6tables (nft and legacy), nft, ip; ca-certificates for the API.
PACKAGES=iptables,nftables,iproute2,ca-certificates
fail() {
  echo "build-image.sh: $*" >&2
  exit 1
}

for tool in podman mmdebstrap node sha256sum; do
  command -v "$tool" >/dev/null || fail "needs $tool (scripts/setup.sh installs it)"
done
for built in dist/bin/weftd dist/bin/weft dist/cni/flannel; do
  [ -f "$built" ] || fail "$built is missing: run npm run build first"
done

if [ -n "$store" ]; then
  mkdir -p "$store"
  store=$(cd "$store" && pwd)
  printf '[storage]\ndriver = "overlay"\ngraphroot = "%s/storage"\nrunroot = "%s/run"\n' "$store" "$store" >"$store/storage.conf"
  export CONTAINERS_STORAGE_CONF="$store/storage.conf"
fi

version=$(node -p 'require("./package.json").version')
hash_of() { sha256sum | cut -c1-16; }

# The base: a Debian root file system with the packages, from the mirror apt is configured with.
base_hash=$(printf '%s\n' "$SUITE" "$PACKAGES" "$(sed -n '/^# BASE>/,/^# <BASE/p' "$0")" | hash_of)
base="localhost/weft-base:$SUITE-$base_hash"
if ! podman image exists "$base"; then
  work=$(mktemp -d /var/tmp/weft-image-XXXXXX)
  trap 'rm -rf "$work"' EXIT
  echo "build-image.sh: building $base with mmdebstrap (Debian $SUITE: $PACKAGES)" >&2
  # BASE>
  sources=()
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [ -s "$f" ] && sources+=("$f")
  done
  [ ${#sources[@]} -gt 0 ] || fail "apt has no sources configured (/etc/apt/sources.list*)"
  mmdebstrap --quiet --mode=root --variant=minbase --include="$PACKAGES" \
    --aptopt='Acquire::Check-Valid-Until "false"' \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
    "$SUITE" "$work/rootfs.tar" "${sources[@]}"
  # <BASE
  podman import --quiet \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    "$work/rootfs.tar" "$base" >/dev/null
  rm -rf "$work"
  trap - EXIT
fi

# The context: exactly the files of weft the image ships.
ctx=$(mktemp -d /var/tmp/weft-image-ctx-XXXXXX)
trap 'rm -rf "$ctx"' EXIT
mkdir -p "$ctx/weft/bin"
cp dist/bin/weftd dist/bin/weft "$ctx/weft/bin/"
# The plugin is the executable alone (the Node bundle beside it is a development build).
cp dist/cni/flannel "$ctx/weft/bin/"
cp deploy/install-cni-plugin.sh "$ctx/weft/"
cp deploy/Containerfile "$ctx/Containerfile"

app_hash=$( (echo "$base"; cd "$ctx" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum) | hash_of)
image="localhost/weft:$version-$app_hash"
if ! podman image exists "$image"; then
  echo "build-image.sh: building $image" >&2
  podman build --quiet --pull=never --network=none --build-arg "BASE=$base" -t "$image" -f "$ctx/Containerfile" "$ctx" >/dev/null
fi
podman tag "$image" "localhost/weft:$version"
# A store of our own holds only the current build: older hashed tags go, so a cache that sees every code
# change stays the size of one base and one image.
if [ -n "$store" ]; then
  podman images --format '{{.Repository}}:{{.Tag}}' |
    grep -E '^localhost/weft(-base)?:.+-[0-9a-f]{16}$' | grep -vxF -e "$image" -e "$base" |
    xargs -r podman rmi --force >/dev/null 2>&1 || true
  podman image prune --force >/dev/null 2>&1 || true
fi
echo "$image"
