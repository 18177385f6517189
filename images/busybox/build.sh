# PLACEHOLDER by the lead so the crate compiles; helper-2 replaces this file.
set -eu
DEST=$1
mkdir -p "$DEST/bin" "$DEST/proc" "$DEST/dev" "$DEST/sys" "$DEST/tmp" "$DEST/etc"
cp /bin/busybox "$DEST/bin/busybox"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] && continue; ln -sf /bin/busybox "$DEST/bin/$a"; done
