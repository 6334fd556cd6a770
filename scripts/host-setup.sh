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

root="$(cd "$(dirname "$0")/.." && pwd)"
# bpf-linker links the nightly's LLVM bitcode with this LLVM: the pinned nightly must use it too.
llvm=22
bpf_linker_version=0.13.0

need_pkgs=()
dpkg -s "llvm-$llvm-dev" >/dev/null 2>&1 || need_pkgs+=("llvm-$llvm-dev" "libpolly-$llvm-dev" libzstd-dev zlib1g-dev)
command -v dockerd >/dev/null 2>&1 || need_pkgs+=(docker.io)
# libc6-dev: static libc for the test workload; busybox-static: the example images' userland;
# docker-compose and podman: the tests of `profile watch` on a compose stack and of Podman's
# Docker-compatible service; openssl: a TLS server for the HTTP probe's HTTPS test;
# python3-seccomp (libseccomp) and the kernel's x86_64 and arm64 uapi headers (with cpp): the
# independent judge of profiles derived for arm64 and of the syscall tables;
# golang-go: the Go workload `profile scan` is tested on; caddy: a real Go server it is
# measured on; protobuf-compiler: the CRI client is generated from its proto at build time;
# containerd (with its CRI plugin): the private Kubernetes node the tests drive as kubelet
# does; python3-venv: the Kubernetes schema check of deploy/kubernetes/; musl-tools: the C
# compiler (musl-gcc) for the static release executable's C parts; man-db: the man pages'
# render check; zsh and fish: the completions' load check; time: the peak memory in
# `cargo xtask bench`.
for pkg in libc6-dev busybox-static docker-compose podman openssl python3-seccomp cpp \
  linux-libc-dev linux-libc-dev-arm64-cross golang-go caddy protobuf-compiler containerd \
  python3-venv musl-tools man-db zsh fish time; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_pkgs+=("$pkg")
done
if [ "${#need_pkgs[@]}" -gt 0 ]; then
  log "installing ${need_pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi

# The toolchains are pinned in rust-toolchain.toml (userspace) and
# tracer-ebpf/rust-toolchain.toml (the eBPF crate's nightly); install each with its components.
toml_value() { sed -n "s/^$1 *= *//p" "$2" | tr -d '[]",'; }
ensure_toolchain() {
  local file="$1" channel c missing="" args=()
  channel="$(toml_value channel "$file")"
  [ -n "$channel" ] || die "$file names no channel"
  rustup run "$channel" rustc --version >/dev/null 2>&1 || missing=yes
  for c in $(toml_value components "$file"); do
    args+=(-c "$c")
    rustup component list --toolchain "$channel" --installed 2>/dev/null | grep -q "^$c" || missing=yes
  done
  if [ -n "$missing" ]; then
    log "installing Rust $channel ${args[*]}"
    rustup toolchain install "$channel" --profile minimal "${args[@]}" \
      || die "could not install Rust $channel (named in $file)"
  fi
}
ensure_toolchain "$root/rust-toolchain.toml"
ensure_toolchain "$root/tracer-ebpf/rust-toolchain.toml"
# The release executable (`cargo xtask dist`) is linked static against musl.
userspace_toolchain="$(toml_value channel "$root/rust-toolchain.toml")"
if ! rustup target list --installed --toolchain "$userspace_toolchain" | grep -qx x86_64-unknown-linux-musl; then
  log "adding the x86_64-unknown-linux-musl target to Rust $userspace_toolchain"
  rustup target add --toolchain "$userspace_toolchain" x86_64-unknown-linux-musl \
    || die "could not add the musl target to Rust $userspace_toolchain"
fi
ebpf_toolchain="$(toml_value channel "$root/tracer-ebpf/rust-toolchain.toml")"
ebpf_llvm="$(rustup run "$ebpf_toolchain" rustc -vV | sed -n 's/^LLVM version: \([0-9]*\).*/\1/p')"
[ "$ebpf_llvm" = "$llvm" ] || die "$ebpf_toolchain uses LLVM $ebpf_llvm, but bpf-linker is built against LLVM $llvm"

if [ "$(bpf-linker --version 2>/dev/null)" != "bpf-linker $bpf_linker_version" ]; then
  log "building bpf-linker $bpf_linker_version (about a minute)"
  # llvm-sys names its variable after its own version: LLVM_SYS_221_PREFIX for LLVM 22.1.
  (cd "$root" && env LLVM_PREFIX="/usr/lib/llvm-$llvm" "LLVM_SYS_${llvm}1_PREFIX=/usr/lib/llvm-$llvm" \
    cargo install --locked --force bpf-linker --version "$bpf_linker_version" --no-default-features --features "llvm-$llvm")
fi

# kubernetes-validate, with the Kubernetes schemas bundled (checks the manifests offline).
kv=/opt/kubernetes-validate
if [ ! -x "$kv/bin/kubernetes-validate" ]; then
  log "installing kubernetes-validate into $kv"
  python3 -m venv "$kv" && "$kv/bin/pip" install -q kubernetes-validate \
    || die "could not install kubernetes-validate (pip) into $kv"
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
