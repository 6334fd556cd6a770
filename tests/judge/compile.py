#!/usr/bin/python3
"""The independent judge of the multi-architecture tests: libseccomp compiles a Docker seccomp
profile for one architecture alone, exactly as the engine and runc hand it over there.

  compile.py PROFILE GOARCH [CAP,CAP,...] [KERNEL]   classic BPF of the filter, on stdout
  compile.py names GOARCH                            {number: name} of libseccomp's table (JSON)

GOARCH is Go's name (amd64, arm64), as Docker's includes.arches uses it. The resolution is
moby's setupSeccomp (profiles/seccomp): a rule is kept when includes.arches is empty or names
GOARCH, includes.caps are all held, includes.minKernel <= KERNEL, excludes.arches doesn't name
GOARCH, no excludes.caps is held, and excludes.minKernel > KERNEL. The rules then go to
libseccomp as runc's InitSeccomp adds them: one name at a time, a rule with the default action
skipped, and conditions on one argument named twice added as separate rules. Names are
resolved by libseccomp for the filter's architecture; names it lacks are skipped, as runc
skips them.
"""
import json
import sys

import seccomp

ARCHES = {"amd64": seccomp.Arch.X86_64, "arm64": seccomp.Arch.AARCH64}
OPS = {
    "SCMP_CMP_NE": seccomp.NE,
    "SCMP_CMP_LT": seccomp.LT,
    "SCMP_CMP_LE": seccomp.LE,
    "SCMP_CMP_EQ": seccomp.EQ,
    "SCMP_CMP_GE": seccomp.GE,
    "SCMP_CMP_GT": seccomp.GT,
    "SCMP_CMP_MASKED_EQ": seccomp.MASKED_EQ,
}
DEFAULT_CAPS = (
    "CAP_CHOWN,CAP_DAC_OVERRIDE,CAP_FSETID,CAP_FOWNER,CAP_MKNOD,CAP_NET_RAW,CAP_SETGID,"
    "CAP_SETUID,CAP_SETFCAP,CAP_SETPCAP,CAP_NET_BIND_SERVICE,CAP_SYS_CHROOT,CAP_KILL,"
    "CAP_AUDIT_WRITE"
)


def action(name, errno):
    if name == "SCMP_ACT_ALLOW":
        return seccomp.ALLOW
    if name == "SCMP_ACT_LOG":
        return seccomp.LOG
    if name == "SCMP_ACT_ERRNO":
        return seccomp.ERRNO(1 if errno is None else errno)
    if name == "SCMP_ACT_TRACE":
        return seccomp.TRACE(1 if errno is None else errno)
    if name == "SCMP_ACT_TRAP":
        return seccomp.TRAP
    if name in ("SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD"):
        return seccomp.KILL
    if name == "SCMP_ACT_KILL_PROCESS":
        return seccomp.KILL_PROCESS
    raise SystemExit(f"unknown action {name}")


def version(text):
    parts = [int(p) for p in text.split(".")[:2]]
    return tuple(parts + [0] * (2 - len(parts)))


def kept(rule, goarch, caps, kernel):
    inc = rule.get("includes") or {}
    exc = rule.get("excludes") or {}
    if inc.get("arches") and goarch not in inc["arches"]:
        return False
    if any(c not in caps for c in inc.get("caps") or []):
        return False
    if inc.get("minKernel") and kernel < version(inc["minKernel"]):
        return False
    if goarch in (exc.get("arches") or []):
        return False
    if any(c in caps for c in exc.get("caps") or []):
        return False
    if exc.get("minKernel") and kernel >= version(exc["minKernel"]):
        return False
    return True


def compile_profile(path, goarch, caps, kernel):
    with open(path) as f:
        profile = json.load(f)
    default = action(profile["defaultAction"], profile.get("defaultErrnoRet"))
    flt = seccomp.SyscallFilter(default)
    flt.remove_arch(seccomp.Arch.NATIVE)
    flt.add_arch(ARCHES[goarch])
    for rule in profile.get("syscalls") or []:
        if not kept(rule, goarch, caps, kernel):
            continue
        act = action(rule["action"], rule.get("errnoRet"))
        if act == default:
            continue
        names = list(rule.get("names") or []) + ([rule["name"]] if rule.get("name") else [])
        conds = [
            seccomp.Arg(a["index"], OPS[a["op"]], a["value"], a.get("valueTwo", 0))
            for a in rule.get("args") or []
        ]
        indexes = [a["index"] for a in rule.get("args") or []]
        groups = [[c] for c in conds] if len(set(indexes)) < len(indexes) else [conds]
        for name in names:
            # runc resolves a name on its own platform and skips what libseccomp doesn't
            # know at all; a name the platform lacks (a pseudo number) libseccomp drops.
            if seccomp.resolve_syscall(ARCHES[goarch], name) == -1:
                continue
            for group in groups:
                flt.add_rule(act, name, *group)
    sys.stdout.flush()
    flt.export_bpf(sys.stdout)


def names(goarch):
    table = {}
    for nr in range(0, 1024):
        try:
            table[nr] = seccomp.resolve_syscall(ARCHES[goarch], nr).decode()
        except ValueError:
            pass
    print(json.dumps(table))


def main():
    if sys.argv[1] == "names":
        names(sys.argv[2])
        return
    caps = set((sys.argv[3] if len(sys.argv) > 3 else DEFAULT_CAPS).split(","))
    kernel = version(sys.argv[4]) if len(sys.argv) > 4 else (6, 18)
    compile_profile(sys.argv[1], sys.argv[2], caps, kernel)


main()
