#!/bin/sh
# Installs weft's `flannel` CNI plugin on the host as /opt/cni/bin/flannel: one self-contained executable
# (npm run build:bin compiles it with Bun), so the host needs no Node. It is written beside its target and
# renamed over it, so the runtime never runs a half-written plugin.
set -eu
dest=/opt/cni/bin
cp /opt/weft/bin/flannel "$dest/.flannel.tmp"
chmod 0755 "$dest/.flannel.tmp"
mv -f "$dest/.flannel.tmp" "$dest/flannel"
# Earlier weft images installed Node and a launcher under weft/; the new plugin no longer uses them.
rm -rf "$dest/weft" "$dest/weft.new" "$dest/weft.old"
echo "installed the flannel CNI plugin (weft) into $dest"
