#!/bin/sh
# Installs weft's `flannel` CNI plugin on the host: the plugin is JavaScript, so it is copied with the Node
# runtime it needs into /opt/cni/bin/weft/, and /opt/cni/bin/flannel becomes a small launcher. Each file is
# written beside its target and renamed over it, so the runtime never runs a half-written plugin.
set -eu
dest=/opt/cni/bin
mkdir -p "$dest/weft.new"
cp -a /usr/local/bin/node "$dest/weft.new/node"
# The plugin is one self-contained file (npm run build:cni), so nothing else of weft is copied.
cp -a /opt/weft/dist/cni/flannel.cjs "$dest/weft.new/flannel.cjs"
rm -rf "$dest/weft.old"
[ -d "$dest/weft" ] && mv "$dest/weft" "$dest/weft.old"
mv "$dest/weft.new" "$dest/weft"
rm -rf "$dest/weft.old"
cat > "$dest/.flannel.tmp" <<'LAUNCHER'
#!/bin/sh
# Beside this launcher, wherever the plugin directory is mounted; runtimes run plugins by absolute path.
here=$(dirname "$0")
exec "$here/weft/node" "$here/weft/flannel.cjs" "$@"
LAUNCHER
chmod 0755 "$dest/.flannel.tmp"
mv -f "$dest/.flannel.tmp" "$dest/flannel"
echo "installed the flannel CNI plugin (weft) into $dest"
