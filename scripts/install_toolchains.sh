#!/usr/bin/env bash
# Installs the native tools qanas needs (Debian packages) when they are missing.
# Cortex-M firmware and emulation: gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm.
# AArch64 Linux targets: gcc-aarch64-linux-gnu qemu-user.
# Report rendering check: chromium.
set -euo pipefail
need=()
command -v arm-none-eabi-gcc >/dev/null || need+=(gcc-arm-none-eabi)
[ -e /usr/lib/arm-none-eabi/newlib ] || [ -e /usr/lib/arm-none-eabi/lib/libc.a ] || need+=(libnewlib-arm-none-eabi)
command -v qemu-system-arm >/dev/null || need+=(qemu-system-arm)
command -v aarch64-linux-gnu-gcc >/dev/null || need+=(gcc-aarch64-linux-gnu)
command -v qemu-aarch64 >/dev/null || need+=(qemu-user)
# The HTML report is checked by rendering it in headless Chromium.
command -v chromium >/dev/null || command -v chromium-browser >/dev/null || need+=(chromium)
if [ ${#need[@]} -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "qanas: missing native tools: ${need[*]}" >&2
    echo "qanas: install them as root: apt-get update && apt-get install -y ${need[*]}" >&2
    exit 1
fi
echo "qanas: installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
