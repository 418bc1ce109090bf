#!/usr/bin/env bash
# Installs everything weft needs to build, test and run its demo on Debian 12, as root.
# Idempotent: packages already present are skipped by apt, npm ci reuses its cache.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  iproute2 iptables nftables    # kernel plumbing weftd drives and the tests inspect
  iputils-ping                  # connectivity checks in the lab
  etcd-server etcd-client       # the store (etcd 3.4) and etcdctl for tests
  iperf3                        # traffic in lab tests
  ethtool libxml2-utils         # weft doctor's checksum-offload check; xmllint checks weft's SVG
  containernetworking-plugins   # bridge/host-local/portmap for the CNI plugin
  podman runc busybox-static    # the real container runtime test
  mmdebstrap openssl curl       # deploy/build-image.sh's Debian base and Node check; the image test's probe
  wireguard-tools wireguard-go  # userspace WireGuard where the module is missing
  strongswan-charon libcharon-extra-plugins    # ipsec: charon; kernel-libipsec (ESP in userspace where the kernel has none)
  libstrongswan-standard-plugins strongswan-swanctl  # ipsec: openssl/gcm for flannel's proposals; swanctl to inspect
  awscli                        # the real AWS CLI checks the EC2 stand-in (test/cloud)
  make g++ python3              # node-gyp builds the netlink addon
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian's etcd-server package may start a system etcd; weft's tests run their own, inside namespaces.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet etcd 2>/dev/null; then
  systemctl stop etcd || true
fi

npm ci --no-audit --no-fund --loglevel=error
npm run --silent build
