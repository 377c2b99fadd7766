#!/usr/bin/env bash
# The local stand-in for the Dockerfile's base (python:3.11-slim-bookworm cannot be pulled here): a
# Debian bookworm minbase root filesystem with python3, python3-venv and ca-certificates, made with
# debootstrap and imported into podman as $1. Kept between runs: the podman image when it exists, else
# the root filesystem's tarball in the cache folder ($2), else debootstrap (under a minute).
set -euo pipefail
image=$1 cache=$2
if podman image exists "$image"; then echo "base $image: cached"; exit 0; fi
tarball=$cache/bookworm-python3-rootfs.tar
if [ ! -s "$tarball" ] && [ "$(id -u)" != 0 ]; then
  echo "making the base needs root (debootstrap, chroot): run 'sudo make image-test', or put a bookworm" \
    "root filesystem with python3 at $tarball" >&2
  exit 1
fi
if [ ! -s "$tarball" ]; then
  mkdir -p "$cache"
  rootfs=$(mktemp -d "$cache/rootfs.XXXXXX")
  trap 'rm -rf "$rootfs"' EXIT
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$rootfs" >"$cache/debootstrap.log" 2>&1 \
    || { tail -20 "$cache/debootstrap.log" >&2; echo "debootstrap failed; log: $cache/debootstrap.log" >&2; exit 1; }
  # The build host's own certificate authorities (a proxy's CA, for one), so that pip in the build
  # trusts what the host trusts; public certificates only.
  if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/"
    chroot "$rootfs" update-ca-certificates >/dev/null
  fi
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -cf "$tarball.part" . && mv "$tarball.part" "$tarball"
fi
podman import --change 'CMD ["python3"]' "$tarball" "$image" >/dev/null
echo "base $image: imported from $tarball"
