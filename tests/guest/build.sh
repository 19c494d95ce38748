#!/usr/bin/env bash
# Builds the libvirt_ovs test guest: a Debian cloud kernel (fetched with
# `apt-get download`, unpacked with `dpkg-deb -x`, never installed on the
# host) and a busybox-static initramfs with the virtio-net modules and
# tests/guest/init. Usage: build.sh DIR — leaves DIR/vmlinuz and
# DIR/initrd.img; both are cached there (the kernel .deb is fetched once,
# the initramfs is rebuilt only when init changes). Concurrent runs
# serialize on DIR/.lock.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dir=${1:?usage: build.sh DIR}
mkdir -p "$dir"
exec 9>"$dir/.lock"
flock -w 300 9

if [ ! -s "$dir/vmlinuz" ] || [ ! -d "$dir/modules" ]; then
    # The versioned package behind the metapackage, e.g.
    # linux-image-6.1.0-57-cloud-amd64.
    resolve() { apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image-/{print $2; exit}'; }
    pkg=$(resolve)
    if [ -z "$pkg" ]; then
        apt-get update -qq </dev/null
        pkg=$(resolve)
    fi
    [ -n "$pkg" ] || { echo "build.sh: no linux-image-cloud-amd64 in the apt lists" >&2; exit 1; }
    tmp=$(mktemp -d "$dir/dl.XXXXXX")
    trap 'rm -rf "$tmp"' EXIT
    # apt's _apt user must be able to write there.
    chmod 0777 "$tmp"
    if ! (cd "$tmp" && apt-get download -qq "$pkg" </dev/null); then
        apt-get update -qq </dev/null
        (cd "$tmp" && apt-get download -qq "$pkg" </dev/null)
    fi
    dpkg-deb -x "$tmp"/*.deb "$tmp/x"
    rm -rf "$dir/modules"
    mkdir -p "$tmp/modules"
    for m in virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev \
             virtio_pci failover net_failover virtio_net; do
        f=$(find "$tmp/x/lib/modules" -name "$m.ko*" | head -n 1)
        [ -n "$f" ] || { echo "build.sh: $m.ko not in $pkg" >&2; exit 1; }
        case "$f" in
            *.ko.xz) xz -dc "$f" >"$tmp/modules/$m.ko" ;;
            *.ko.zst) zstd -qdc "$f" >"$tmp/modules/$m.ko" ;;
            *) cp "$f" "$tmp/modules/$m.ko" ;;
        esac
    done
    cp "$tmp"/x/boot/vmlinuz-* "$dir/vmlinuz.new"
    mv "$tmp/modules" "$dir/modules"
    mv "$dir/vmlinuz.new" "$dir/vmlinuz"
    echo "$pkg" >"$dir/kernel-package"
    rm -f "$dir/initrd.img"
fi

stamp=$(cat "$here/init" "$here/build.sh" /bin/busybox | sha256sum | cut -c1-16)
if [ ! -s "$dir/initrd.img" ] || [ "$(cat "$dir/initrd.stamp" 2>/dev/null)" != "$stamp" ]; then
    root=$(mktemp -d "$dir/root.XXXXXX")
    mkdir -p "$root"/{bin,dev,proc,sys,lib/modules}
    cp /bin/busybox "$root/bin/busybox"
    for a in $("$root/bin/busybox" --list); do
        [ "$a" = busybox ] || ln -s busybox "$root/bin/$a"
    done
    cp "$dir"/modules/*.ko "$root/lib/modules/"
    cp "$here/init" "$root/init"
    chmod 0755 "$root/init"
    (cd "$root" && find . -print0 | cpio --null -o -H newc --quiet | gzip -1) >"$dir/initrd.img.new"
    rm -rf "$root"
    mv "$dir/initrd.img.new" "$dir/initrd.img"
    echo "$stamp" >"$dir/initrd.stamp"
fi
echo "$dir"
