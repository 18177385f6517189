#!/bin/sh
# Build a BusyBox root filesystem in DEST.
#
#   sh images/busybox/build.sh DEST        (or, as podlab runs it: sh -s -- DEST < build.sh)
#
# The recipe copies the statically linked /bin/busybox of the Debian/Ubuntu package
# `busybox-static` into DEST/bin, adds one symbolic link per applet (sh, ls, ps, ...), and
# writes the few files under /etc that programs expect. Nothing is downloaded; the package
# is installed with apt-get only when /bin/busybox is missing and we are root.
#
# Safe to run again on the same DEST. It refuses DEST=/ (and other host system
# directories) and never writes outside DEST: it does not follow symbolic links it finds
# inside DEST, it replaces them.
set -eu

say() { printf 'busybox recipe: %s\n' "$*"; }
die() { printf 'busybox recipe: error: %s\n' "$*" >&2; exit 1; }

[ "$#" -eq 1 ] || die "usage: build.sh DEST (the directory to build the root filesystem in)"
[ -n "$1" ] || die "DEST is empty; give the directory to build the root filesystem in"

# --- 1. Refuse dangerous destinations ------------------------------------------------
# Check the name as given, then the real path once the directory exists (it could be a
# symbolic link to /, or spelled /tmp/..).
refuse_system_dir() {
    case "$1" in
        / | /bin | /boot | /dev | /etc | /home | /lib | /lib32 | /lib64 | /libx32 | /media | /mnt | \
            /opt | /proc | /root | /run | /sbin | /srv | /sys | /tmp | /usr | /usr/bin | /usr/sbin | \
            /usr/lib | /usr/lib64 | /usr/libexec | /usr/local | /usr/share | /var | /var/lib)
            die "refusing to build a root filesystem in $1: that is a directory of this host; give an empty or new directory, e.g. /tmp/rootfs"
            ;;
    esac
}
refuse_system_dir "$1"
mkdir -p -- "$1"
DEST=$(cd -- "$1" && pwd -P) || die "cannot enter $1"
refuse_system_dir "$DEST"

# --- 2. Find a static BusyBox ---------------------------------------------------------
BUSYBOX=/bin/busybox
if [ ! -x "$BUSYBOX" ] && [ -x /usr/bin/busybox ]; then
    BUSYBOX=/usr/bin/busybox
fi
if [ ! -x "$BUSYBOX" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        say "/bin/busybox is missing: installing the busybox-static package" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y busybox-static >&2 ||
            { apt-get update >&2 && apt-get install -y busybox-static >&2; } ||
            die "could not install busybox-static with apt-get"
    else
        die "/bin/busybox is missing: install it with 'apt-get install busybox-static' (as root), then run this again"
    fi
fi
[ -x "$BUSYBOX" ] || die "$BUSYBOX is still missing after installing busybox-static"

# A dynamically linked binary names its loader in a PT_INTERP program header; copied
# into an empty root it could not start. readelf (binutils) tells; without it we trust
# the package and only check that the binary runs.
if command -v readelf >/dev/null 2>&1; then
    if readelf -lW "$BUSYBOX" 2>/dev/null | grep -q 'INTERP'; then
        die "$BUSYBOX is dynamically linked (the 'busybox' package?); install 'busybox-static' instead: apt-get install busybox-static"
    fi
fi
"$BUSYBOX" true || die "$BUSYBOX does not run"

# --- 3. Directories -----------------------------------------------------------------
# A directory we write into must be a real directory, not a link that leads elsewhere.
make_dir() { # make_dir MODE PATH-INSIDE-DEST
    if [ -L "$DEST/$2" ]; then
        die "$DEST/$2 is a symbolic link; remove it (or use a fresh DEST) and run again"
    fi
    mkdir -p -- "$DEST/$2"
    chmod "$1" "$DEST/$2"
}
for d in bin sbin usr usr/bin usr/sbin dev proc sys etc var var/run; do
    make_dir 0755 "$d"
done
make_dir 1777 tmp
make_dir 0700 root

# --- 4. The binary and its applets --------------------------------------------------
# Copy under a temporary name, then rename: a rename replaces whatever was there (even a
# symbolic link) instead of writing through it.
cp -- "$BUSYBOX" "$DEST/bin/.busybox.new"
chmod 0755 "$DEST/bin/.busybox.new"
mv -f -- "$DEST/bin/.busybox.new" "$DEST/bin/busybox"

# link PATH-INSIDE-DEST: make it a symbolic link to /bin/busybox. The target is absolute:
# it is resolved inside the new root once a process is chrooted there.
link() {
    rm -f -- "$DEST/$1"
    ln -s /bin/busybox "$DEST/$1"
}

count=0
for applet in $("$DEST/bin/busybox" --list); do
    case "$applet" in
        busybox | '' | */* | .*) continue ;;
    esac
    link "bin/$applet"
    count=$((count + 1))
done
[ "$count" -gt 0 ] || die "busybox --list printed no applets"
# So that scripts starting with #!/usr/bin/env sh work.
link usr/bin/env

# --- 5. The files programs expect in /etc --------------------------------------------
# write PATH-INSIDE-DEST MODE: the text on stdin becomes the file (replaced, not followed).
write() {
    rm -f -- "$DEST/$1"
    cat >"$DEST/$1"
    chmod "$2" "$DEST/$1"
}
write etc/passwd 0644 <<'EOF'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
write etc/group 0644 <<'EOF'
root:x:0:
nogroup:x:65534:
nobody:x:65534:
EOF
write etc/hostname 0644 <<'EOF'
podlab
EOF
write etc/hosts 0644 <<'EOF'
127.0.0.1	localhost
::1	localhost
EOF
write etc/resolv.conf 0644 </dev/null

say "built a BusyBox root filesystem in $DEST ($count applets linked to /bin/busybox)"
