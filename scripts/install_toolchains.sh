#!/usr/bin/env bash
# Installs the native tools qanas needs (Debian packages), then proves that each one builds
# and runs a tiny program. `make test`, `make demo` and `.ci/run` call it first.
#
# Every package is listed in PACKAGES below; a package already installed is not touched.
# After installing, scripts/toolchain_check/probe.c (which includes <stdint.h>, <string.h>
# and <math.h> and calls libm) is compiled, linked and run with:
#   - the host gcc, natively, and through ccache (runtime.build_cache);
#   - arm-none-eabi-gcc for Cortex-M4 and Cortex-M55, in qemu-system-arm with semihosting;
#   - aarch64-linux-gnu-gcc, in qemu-aarch64;
# and headless Chromium renders a tiny page. A failing probe is an install failure that
# names the package to install, not a test failure minutes later.
#
# QANAS_TOOLCHAIN_CHECK=0 skips the probes (the packages are still checked).
set -euo pipefail

# package                   what it gives qanas
PACKAGES=(
    gcc                     # host C compiler: host target, harness builds
    libc6-dev               # host C library headers
    make                    # generated projects and firmware are built with make
    ccache                  # the runtime and kernel objects every project rebuilds, cached
    gcc-arm-none-eabi       # Cortex-M cross compiler (M4, M7, M33, M55)
    libnewlib-arm-none-eabi # Cortex-M C library and libm (newlib)
    qemu-system-arm         # Cortex-M emulation (mps2-an386/an500, mps3-an547)
    gcc-aarch64-linux-gnu   # AArch64 Linux cross compiler
    libc6-dev-arm64-cross   # AArch64 C library headers and libraries (stdint.h, libm)
    qemu-user               # qemu-aarch64 user-mode emulation
    chromium                # the HTML report is checked by rendering it headless
)

# probe name                package(s) it needs
PROBE_PACKAGES=(
    "host-gcc               gcc libc6-dev"
    "ccache                 ccache gcc libc6-dev"
    "arm-none-eabi-m4       gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm"
    "arm-none-eabi-m55      gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm"
    "aarch64-linux-gnu      gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user"
    "chromium               chromium"
)

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
probe_dir="$here/toolchain_check"

say() { echo "qanas: $*" >&2; }

installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"
}

install_missing() {
    local need=() pkg
    if ! command -v dpkg-query >/dev/null; then
        say "not a Debian system: install these packages (or their equivalents) yourself: ${PACKAGES[*]}"
        say "then run this script with QANAS_SKIP_APT=1 to check them"
        [ "${QANAS_SKIP_APT:-0}" = 1 ] || exit 1
        return
    fi
    for pkg in "${PACKAGES[@]}"; do
        installed "$pkg" || need+=("$pkg")
    done
    [ ${#need[@]} -eq 0 ] && return
    if [ "$(id -u)" != 0 ]; then
        say "missing native tools: ${need[*]}"
        say "install them as root: apt-get update && apt-get install -y --no-install-recommends ${need[*]}"
        exit 1
    fi
    say "installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
}

packages_of() {
    local row
    for row in "${PROBE_PACKAGES[@]}"; do
        set -- $row
        if [ "$1" = "$PROBE" ]; then
            shift
            echo "$*"
            return
        fi
    done
}

fail_probe() {
    say "toolchain check '$PROBE' failed: $1"
    say "it needs the Debian package(s): $(packages_of)"
    say "install them: apt-get update && apt-get install -y --no-install-recommends $(packages_of)"
    exit 1
}

# run_probe NAME EXPECTED-OUTPUT COMMAND...: runs COMMAND, which must print EXPECTED-OUTPUT.
run_probe() {
    local out
    PROBE="$1"
    shift
    local expected="$1"
    shift
    if ! out=$(timeout 60 "$@" 2>&1); then
        fail_probe "$(printf '%s' "$out" | tail -n 5)"
    fi
    case "$out" in
        *"$expected"*) ;;
        *) fail_probe "expected '$expected', got: $(printf '%s' "$out" | tail -n 5)" ;;
    esac
}

build_probe() {
    PROBE="$1"
    shift
    local out
    if ! out=$("$@" 2>&1); then
        fail_probe "$(printf '%s' "$out" | tail -n 5)"
    fi
}

check_toolchains() {
    local work cflags=(-O2 -std=c99 -Wall -Wextra -Werror)
    work="$(mktemp -d)"
    trap 'rm -rf "$work"' RETURN

    build_probe host-gcc gcc "${cflags[@]}" "$probe_dir/probe.c" "$probe_dir/hosted_io.c" -lm \
        -o "$work/host"
    run_probe host-gcc "probe: ok" "$work/host"

    build_probe ccache ccache gcc "${cflags[@]}" -c "$probe_dir/probe.c" -o "$work/probe.o"
    build_probe ccache gcc "$work/probe.o" "$probe_dir/hosted_io.c" -lm -o "$work/cached"
    run_probe ccache "probe: ok" "$work/cached"

    local m4=(-mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16)
    local m55=(-mcpu=cortex-m55 -mthumb -mfloat-abi=hard)
    local bare=(-nostartfiles -T "$probe_dir/cortex_m.ld" -Wl,--defsym=CODE_ORIGIN=0
                -Wl,--defsym=DATA_ORIGIN=0x20000000)
    local qemu=(qemu-system-arm -nographic -monitor none
                -semihosting-config enable=on,target=native)
    build_probe arm-none-eabi-m4 arm-none-eabi-gcc "${m4[@]}" "${cflags[@]}" "${bare[@]}" \
        "$probe_dir/probe.c" "$probe_dir/cortex_m_io.c" -lm -lc -lgcc -o "$work/m4.elf"
    run_probe arm-none-eabi-m4 "probe: ok" "${qemu[@]}" -M mps2-an386 -kernel "$work/m4.elf"
    build_probe arm-none-eabi-m55 arm-none-eabi-gcc "${m55[@]}" "${cflags[@]}" "${bare[@]}" \
        "$probe_dir/probe.c" "$probe_dir/cortex_m_io.c" -lm -lc -lgcc -o "$work/m55.elf"
    run_probe arm-none-eabi-m55 "probe: ok" "${qemu[@]}" -M mps3-an547 -kernel "$work/m55.elf"

    build_probe aarch64-linux-gnu aarch64-linux-gnu-gcc "${cflags[@]}" -static \
        "$probe_dir/probe.c" "$probe_dir/hosted_io.c" -lm -o "$work/aarch64"
    run_probe aarch64-linux-gnu "probe: ok" qemu-aarch64 "$work/aarch64"

    local browser
    browser="$(command -v chromium || command -v chromium-browser || true)"
    PROBE=chromium
    [ -n "$browser" ] || fail_probe "no chromium on the PATH"
    run_probe chromium "qanas-probe-rendered" "$browser" --headless --no-sandbox --disable-gpu \
        --disable-quic --no-first-run --disable-background-networking \
        --disable-component-update --disable-sync --user-data-dir="$work/chromium" \
        --dump-dom "file://$probe_dir/probe.html"
}

install_missing
if [ "${QANAS_TOOLCHAIN_CHECK:-1}" != 0 ]; then
    check_toolchains
    say "toolchains ok: host gcc (also through ccache), arm-none-eabi (cortex-m4, cortex-m55 in qemu-system-arm), aarch64-linux-gnu (qemu-aarch64), chromium"
fi
