#!/usr/bin/env bash
# Prepares a Debian host to build and run `profile`: eBPF toolchain, Docker Engine, tracefs.
# Idempotent: every step checks before it acts. Exits non-zero if anything can't be made ready.
set -euo pipefail

log() { printf 'host-setup: %s\n' "$*" >&2; }
die() { printf 'host-setup: error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root (it installs packages and starts dockerd)"
# Compilers and probes write to /dev/null; a regular file there corrupts builds.
if [ ! -c /dev/null ]; then
  log "restoring /dev/null (it was not a character device)"
  rm -f /dev/null && mknod -m 666 /dev/null c 1 3
fi

need_pkgs=()
dpkg -s llvm-22-dev >/dev/null 2>&1 || need_pkgs+=(llvm-22-dev libpolly-22-dev libzstd-dev zlib1g-dev)
command -v dockerd >/dev/null 2>&1 || need_pkgs+=(docker.io)
# libc6-dev: static libc for the test workload; busybox-static: the example images' userland.
for pkg in libc6-dev busybox-static; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_pkgs+=("$pkg")
done
if [ "${#need_pkgs[@]}" -gt 0 ]; then
  log "installing ${need_pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi

if ! rustup component list --toolchain nightly --installed 2>/dev/null | grep -q '^rust-src'; then
  log "adding rust-src to the nightly toolchain"
  rustup component add rust-src --toolchain nightly
fi

if ! command -v bpf-linker >/dev/null 2>&1; then
  log "building bpf-linker (about a minute)"
  LLVM_PREFIX=/usr/lib/llvm-22 LLVM_SYS_221_PREFIX=/usr/lib/llvm-22 cargo install --locked bpf-linker --no-default-features --features llvm-22
fi

if [ ! -e /sys/kernel/tracing/events ]; then
  log "mounting tracefs"
  mount -t tracefs nodev /sys/kernel/tracing || die "tracefs is not available: mount -t tracefs nodev /sys/kernel/tracing failed"
fi
[ -d /sys/kernel/tracing/events/raw_syscalls ] || die "kernel lacks raw_syscalls tracepoints (CONFIG_FTRACE_SYSCALLS)"

if ! docker version >/dev/null 2>&1; then
  log "starting dockerd"
  mkdir -p /var/log
  nohup dockerd >/var/log/dockerd.log 2>&1 &
  for _ in $(seq 1 60); do
    docker version >/dev/null 2>&1 && break
    sleep 0.5
  done
  docker version >/dev/null 2>&1 || { tail -n 30 /var/log/dockerd.log >&2 || true; die "dockerd did not start"; }
fi
log "ready: $(bpf-linker --version 2>/dev/null | head -n1), docker $(docker version --format '{{.Server.Version}}')"
