//! The kernel side of `profile`: counts the syscalls of watched cgroups, in the kernel.
//!
//! A task's syscalls count once the task runs under a seccomp filter inside a watched cgroup:
//! from that moment the filter governs its calls. The kernel's own record decides —
//! `task->seccomp.mode` turns to SECCOMP_MODE_FILTER when an install succeeds (prctl or
//! seccomp(2), with or without TSYNC) and is inherited by every child and thread — so failed
//! installs and probes never count. Cgroups watched with `WATCH_ALL_SYSCALLS` count every task
//! in them instead. Adopted container cgroups (`profile watch`) also count the workload of a
//! container that runs without a filter (unconfined), from the exec that hands over to it.
//! Everything is aggregated in maps; nothing streams to userspace, so nothing can be lost to a
//! full buffer.
//!
//! The container runtime's own calls are told from the workload's by the kernel's events, not
//! by names: a task another process moves into a watched cgroup (`cgroup_attach_task`: a
//! runtime placing its init) is the runtime's, and so is every task it forks, until the exec
//! that hands over to the container's process — an exec under a seccomp filter, or in another
//! mount namespace than the runtime's (runc re-executing itself before it enters the container
//! is neither). What the runtime does under the filter (runc installs it before its last steps)
//! counts in a table of its own; what it does before is never counted.
//!
//! `sys_exit` is attached only while a profile is being verified: it counts the calls that
//! return the verification errno.
#![no_std]
#![no_main]
// Atomic adds on a shared map value (the target has no compare-and-swap for core's atomics).
#![allow(internal_features)]
#![feature(core_intrinsics)]

use aya_ebpf::{
    EbpfContext, Global,
    bindings::{BPF_NOEXIST, pt_regs},
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_current_task_btf,
        bpf_probe_read_kernel, bpf_probe_read_kernel_buf, bpf_probe_read_kernel_str_bytes,
        bpf_probe_read_user, bpf_probe_read_user_str_bytes,
        generated::{bpf_get_stack, bpf_task_pt_regs},
    },
    macros::{map, raw_tracepoint, tracepoint},
    maps::{Array, HashMap, PerCpuArray},
    programs::{RawTracePointContext, TracePointContext},
};
use aya_log_ebpf::warn;
use tracer_common::{
    ABI_IA32, ABI_NATIVE, ABI_X32, ADOPTED_SLOT_BIT, ARG_DENIED, ARG_IOCTL, ARG_PERSONALITY,
    ARG_PRCTL, ARG_SOCKET, AdoptedTable, ArgCounts, ArgKey, CAP_DENIED, CAP_GRANTED, CAP_LOW_PORT,
    CAP_NET_BIND_SERVICE, CGROUP_KEY_LEN, CONFIG_ADOPT, CONFIG_ADOPT_LOST, CONFIG_ALL_SYSCALLS,
    CONFIG_LEN, CONFIG_PENDING_NAMES, CONFIG_RUNTIME_LOST, CONFIG_WATCH_GEN, CapKey, CapSeen,
    CgroupKey, DENY_ERRNO, EROFS, EXEC_GAINED, EXEC_PATH_LEN, EXEC_SETID_STOPPED, ExecKey,
    FIRST_DENIED_BASE, FIRST_RUNTIME_BASE, FirstKey, FirstSeen, LastCgroup, MAX_ADOPTED,
    MAX_ARG_ENTRIES, MAX_ARG_VALUES, MAX_FIRST_SEEN, MAX_NOAUDIT_CALLERS, MAX_PENDING_NAMES,
    MAX_RUNTIME_TASKS, MAX_SLOTS, MAX_WATCHED_CGROUPS, NR_BIND, NR_IOCTL, NR_PER_ABI,
    NR_PERSONALITY, NR_PRCTL, NR_SOCKET, RUNTIME_BUCKETS, ReadOnlyWrite, RuntimeCounts,
    SOCK_TYPE_MASK, SlotStats, SyscallCounts, WATCH_ADOPTED, WATCH_ALL_SYSCALLS, WATCH_BUCKETS,
    WATCH_STRICT_ARGS, Watch, X32_SYSCALL_BIT, adopted_slot, runtime_bucket, table_index,
    watch_bucket,
};

const SECCOMP_MODE_FILTER: i32 = 2;
// A map insert with BPF_NOEXIST fails with -EEXIST when the key is already there.
const EEXIST: i32 = 17;
// thread_info.status bit of a task inside an i386 syscall (arch/x86/include/asm/thread_info.h):
// set on every ia32 entry, `int 0x80` from 64-bit code included, cleared on return to user.
const TS_COMPAT: u32 = 0x0002;

/// Offset of `seccomp.mode` in `struct task_struct`, from the kernel's BTF (set by the loader).
#[unsafe(no_mangle)]
static SECCOMP_MODE_OFFSET: Global<u32> = Global::new(0);
/// Offset of `thread_info.status` in `struct task_struct`, from the kernel's BTF.
#[unsafe(no_mangle)]
static THREAD_STATUS_OFFSET: Global<u32> = Global::new(0);
/// Offset of `pid` (the thread id) in `struct task_struct`.
#[unsafe(no_mangle)]
static TASK_PID_OFFSET: Global<u32> = Global::new(0);
/// Offset of `tgid` (the process id) in `struct task_struct`.
#[unsafe(no_mangle)]
static TASK_TGID_OFFSET: Global<u32> = Global::new(0);
// The path from a task to its cgroup v2 id, as `bpf_get_current_cgroup_id()` walks it:
// task->cgroups->dfl_cgrp->kn->id, read with plain loads instead of the helper call.
#[unsafe(no_mangle)]
static TASK_CGROUPS_OFFSET: Global<u32> = Global::new(0);
#[unsafe(no_mangle)]
static CSS_SET_DFL_CGRP_OFFSET: Global<u32> = Global::new(0);
#[unsafe(no_mangle)]
static CGROUP_KN_OFFSET: Global<u32> = Global::new(0);
#[unsafe(no_mangle)]
static KERNFS_NODE_ID_OFFSET: Global<u32> = Global::new(0);
// task->nsproxy->mnt_ns->ns.inum: the mount namespace a task lives in.
#[unsafe(no_mangle)]
static TASK_NSPROXY_OFFSET: Global<u32> = Global::new(0);
#[unsafe(no_mangle)]
static NSPROXY_MNT_NS_OFFSET: Global<u32> = Global::new(0);
#[unsafe(no_mangle)]
static MNT_NS_INUM_OFFSET: Global<u32> = Global::new(0);
// Offsets into the classic cgroup_attach_task, sched_process_fork and sched_process_exec
// records, read from tracefs by the loader.
#[unsafe(no_mangle)]
static ATTACH_ROOT_OFFSET: Global<u32> = Global::new(0);
#[unsafe(no_mangle)]
static ATTACH_ID_OFFSET: Global<u32> = Global::new(0);
#[unsafe(no_mangle)]
static ATTACH_PID_OFFSET: Global<u32> = Global::new(0);
#[unsafe(no_mangle)]
static FORK_CHILD_OFFSET: Global<u32> = Global::new(0);
#[unsafe(no_mangle)]
static EXEC_OLD_PID_OFFSET: Global<u32> = Global::new(0);
/// Offset of sched_process_exec's `__data_loc char[] filename`.
#[unsafe(no_mangle)]
static EXEC_FILENAME_OFFSET: Global<u32> = Global::new(0);
// What privileges a task holds and an exec's program, from the kernel's BTF (see kbtf).
#[unsafe(no_mangle)]
static TASK_REAL_CRED_OFFSET: Global<u32> = Global::new(0);
#[unsafe(no_mangle)]
static TASK_ATOMIC_FLAGS_OFFSET: Global<u32> = Global::new(0);
#[unsafe(no_mangle)]
static CRED_CAP_BSET_OFFSET: Global<u32> = Global::new(0);
#[unsafe(no_mangle)]
static CRED_EUID_OFFSET: Global<u32> = Global::new(0);
#[unsafe(no_mangle)]
static CRED_EGID_OFFSET: Global<u32> = Global::new(0);
#[unsafe(no_mangle)]
static BPRM_FILE_OFFSET: Global<u32> = Global::new(0);
#[unsafe(no_mangle)]
static BPRM_FILENAME_OFFSET: Global<u32> = Global::new(0);
#[unsafe(no_mangle)]
static BPRM_SECUREEXEC_BIT: Global<u32> = Global::new(0);
#[unsafe(no_mangle)]
static FILE_INODE_OFFSET: Global<u32> = Global::new(0);
#[unsafe(no_mangle)]
static INODE_MODE_OFFSET: Global<u32> = Global::new(0);
#[unsafe(no_mangle)]
static INODE_UID_OFFSET: Global<u32> = Global::new(0);
#[unsafe(no_mangle)]
static INODE_GID_OFFSET: Global<u32> = Global::new(0);
// Offsets into the classic cgroup_mkdir record, read from tracefs by the loader.
#[unsafe(no_mangle)]
static MKDIR_ROOT_OFFSET: Global<u32> = Global::new(0);
#[unsafe(no_mangle)]
static MKDIR_ID_OFFSET: Global<u32> = Global::new(0);
#[unsafe(no_mangle)]
static MKDIR_PATH_OFFSET: Global<u32> = Global::new(0);

/// cgroup v2 id → where its syscalls go.
#[map]
static WATCHED: HashMap<u64, Watch> = HashMap::with_max_entries(MAX_WATCHED_CGROUPS, 0);
/// Non-zero where some watched cgroup's id falls ([`watch_bucket`]): tasks of cgroups whose bucket
/// is clear are turned away before the hash lookup.
#[map]
static WATCH_BUCKET: Array<u32> = Array::with_max_entries(WATCH_BUCKETS, 0);
/// The runtime's tasks in watched cgroups, by thread id, with the runtime's mount namespace:
/// from their entry into the cgroup (or their fork from such a task) until they hand over.
#[map]
static RUNTIME_TASKS: HashMap<u32, u64> = HashMap::with_max_entries(MAX_RUNTIME_TASKS, 0);
/// How many of `RUNTIME_TASKS` fall in each bucket ([`runtime_bucket`]): a thread whose bucket
/// is empty is the workload's, told by one inlined array load instead of the hash lookup.
#[map]
static RUNTIME_BUCKET: Array<u32> = Array::with_max_entries(RUNTIME_BUCKETS, 0);
/// Cgroups to watch the moment they are created (a container's, before it can run anything),
/// keyed by the end of their name.
#[map]
static PENDING: HashMap<CgroupKey, Watch> = HashMap::with_max_entries(MAX_PENDING_NAMES, 0);
#[map]
static COUNTS: PerCpuArray<SyscallCounts> = PerCpuArray::with_max_entries(MAX_SLOTS, 0);
/// Exits with `-DENY_ERRNO`: calls a profile under verification denied. Denials are rare, so
/// one shared copy with atomic increments instead of one per CPU.
#[map]
static DENIED: Array<SyscallCounts> = Array::with_max_entries(MAX_SLOTS, 0);
/// The runtime's calls before it hands over, per slot (see [`RuntimeCounts`]).
#[map]
static RUNTIME: Array<RuntimeCounts> = Array::with_max_entries(MAX_SLOTS, 0);
/// The runtime's calls denied while verifying, per slot.
#[map]
static RUNTIME_DENIED: Array<RuntimeCounts> = Array::with_max_entries(MAX_SLOTS, 0);
#[map]
static FIRST: HashMap<FirstKey, FirstSeen> = HashMap::with_max_entries(MAX_FIRST_SEEN, 0);
#[map]
static STATS: PerCpuArray<SlotStats> = PerCpuArray::with_max_entries(MAX_SLOTS, 0);
/// Distinct argument tuples of the syscalls whose arguments are learned.
/// The programs each recording's workload exec'd (sized at load time).
#[map]
static EXECS: HashMap<ExecKey, u64> = HashMap::with_max_entries(1, 0);
#[map]
static ARGS: HashMap<ArgKey, u32> = HashMap::with_max_entries(MAX_ARG_ENTRIES, 0);
#[map]
static ARG_COUNTS: PerCpuArray<ArgCounts> = PerCpuArray::with_max_entries(MAX_SLOTS, 0);
/// Counts of the container cgroups adopted on creation, by cgroup id. One copy shared by all
/// CPUs (atomic adds): a per-CPU map would cost a table per CPU even when nothing is adopted.
#[map]
static ADOPTED: HashMap<u64, AdoptedTable> = HashMap::with_max_entries(MAX_ADOPTED, 0);
/// The name (its last 64 bytes: the container id) of each adopted cgroup, by id: the cgroup
/// may be gone by the time userspace learns whose it was.
#[map]
static ADOPTED_NAMES: HashMap<u64, CgroupKey> = HashMap::with_max_entries(MAX_ADOPTED, 0);
/// One zeroed table: where a newly adopted cgroup's counts are copied from.
#[map]
static ZERO: Array<AdoptedTable> = Array::with_max_entries(1, 0);
/// The capability checks of each recording's workload, and its binds below port 1024 (sized
/// at load time).
#[map]
static CAPS: HashMap<CapKey, CapSeen> = HashMap::with_max_entries(1, 0);
/// The address ranges (start, end) of the kernel functions that check capabilities with
/// CAP_OPT_NOAUDIT, from /proc/kallsyms (set by the loader; a zero start ends the list).
#[map]
static NOAUDIT_CALLERS: Array<[u64; 2]> = Array::with_max_entries(MAX_NOAUDIT_CALLERS, 0);
/// The execs of each recording's workload that changed its credentials, or that no_new_privs
/// kept from it (`EXEC_*` flags, or'ed), by program (sized at load time).
#[map]
static PRIVILEGED_EXECS: HashMap<ExecKey, u32> = HashMap::with_max_entries(1, 0);
/// While verifying: writes refused with EROFS, by path (sized at load time).
#[map]
static READ_ONLY_WRITES: HashMap<ExecKey, ReadOnlyWrite> = HashMap::with_max_entries(1, 0);
/// Counters the loader keeps so that rare paths can be skipped whole.
#[map]
static CONFIG: Array<u32> = Array::with_max_entries(CONFIG_LEN, 0);
/// Per CPU, what it found last about a cgroup (see [`LastCgroup`]).
#[map]
static LAST_CGROUP: PerCpuArray<LastCgroup> = PerCpuArray::with_max_entries(1, 0);

#[inline(always)]
fn config(index: u32) -> u32 {
    CONFIG.get(index).copied().unwrap_or(0)
}

/// Where `task`'s syscalls go, if its cgroup is watched, with the cgroup's id. A task of the
/// cgroup this CPU last looked up, with the watched set unchanged since, pays a few loads and
/// comparisons: two for an unwatched cgroup, four for a watched one (whose id is checked too).
/// Tasks of other cgroups pay one inlined array lookup more, and those whose bucket is shared
/// with a watched cgroup also the hash lookup.
#[inline(always)]
fn current_watch(task: *const u8) -> Option<(u64, Watch)> {
    let css_set: *const u8 = task_field(task, TASK_CGROUPS_OFFSET.load());
    let cgroup: *const u8 = task_field(css_set, CSS_SET_DFL_CGRP_OFFSET.load());
    // Read before the watched set is: a change after this read bumps the generation, so an
    // answer found under this one is never kept past that.
    let generation = config(CONFIG_WATCH_GEN);
    let cache = LAST_CGROUP.get_ptr_mut(0);
    if let Some(c) = cache {
        // SAFETY: this CPU's element, valid while the program runs; it is only read and
        // written by this CPU, with preemption off.
        let c = unsafe { &*c };
        if c.cgroup == cgroup as u64 && c.generation == generation {
            if c.watched == 0 {
                return None;
            }
            if cgroup_id(cgroup) == c.id {
                return Some((c.id, c.watch));
            }
        }
    }
    let id = cgroup_id(cgroup);
    let found = if WATCH_BUCKET.get(watch_bucket(id)).copied().unwrap_or(0) == 0 {
        None
    } else {
        // SAFETY: the entry is copied at once; the map is preallocated, so a concurrent
        // update can make the copy stale but never points it at freed memory.
        unsafe { WATCHED.get(&id) }.copied()
    };
    if let Some(c) = cache {
        // SAFETY: as above.
        let c = unsafe { &mut *c };
        c.cgroup = cgroup as u64;
        c.id = id;
        c.generation = generation;
        // An unwatched cgroup's entry keeps the last watch it held; it is never read.
        match found {
            Some(w) => {
                c.watched = 1;
                c.watch = w;
            }
            None => c.watched = 0,
        }
    }
    found.map(|w| (id, w))
}

/// The v2 id of `cgroup` (a `struct cgroup` read from the current task).
#[inline(always)]
fn cgroup_id(cgroup: *const u8) -> u64 {
    let kn: *const u8 = task_field(cgroup, CGROUP_KN_OFFSET.load());
    task_field(kn, KERNFS_NODE_ID_OFFSET.load())
}

/// The inode number of `task`'s mount namespace.
#[inline(always)]
fn mnt_ns(task: *const u8) -> u64 {
    let nsproxy: *const u8 = task_field(task, TASK_NSPROXY_OFFSET.load());
    let mnt_ns: *const u8 = task_field(nsproxy, NSPROXY_MNT_NS_OFFSET.load());
    u64::from(task_field::<u32>(mnt_ns, MNT_NS_INUM_OFFSET.load()))
}

/// Marks a cgroup id as watched in the bucket filter (before it goes into `WATCHED`).
#[inline(always)]
fn mark_bucket(id: u64) {
    if let Some(bucket) = WATCH_BUCKET.get_ptr_mut(watch_bucket(id)) {
        // SAFETY: an array element, never freed; a plain store (the value is only ever set to
        // 1 here and by userspace), so concurrent writers can't lose it.
        unsafe { core::ptr::write_volatile(bucket, 1) };
    }
}

/// Whether some runtime task's thread id falls in `tid`'s bucket: if none does, `tid` is not
/// the runtime's.
#[inline(always)]
fn may_be_runtime(tid: u32) -> bool {
    RUNTIME_BUCKET
        .get(runtime_bucket(tid))
        .is_some_and(|&count| count != 0)
}

/// Whether thread `tid` is the runtime's, not yet handed over to the workload.
#[inline(always)]
fn is_runtime(tid: u32) -> bool {
    // SAFETY: only checks for presence; the value is never read.
    may_be_runtime(tid) && unsafe { RUNTIME_TASKS.get(&tid) }.is_some()
}

/// The mount namespace of runtime task `tid`, if it is one.
#[inline(always)]
fn runtime_ns(tid: u32) -> Option<u64> {
    if !may_be_runtime(tid) {
        return None;
    }
    // SAFETY: the value is copied at once (see `current_watch`).
    unsafe { RUNTIME_TASKS.get(&tid) }.copied()
}

/// Marks thread `tid` as the runtime's (whose mount namespace is `ns`). Its bucket counts it
/// first, so that the mark is never in the map while the filter turns its thread away.
#[cold]
fn mark_runtime(tid: u32, ns: u64) {
    let Some(bucket) = RUNTIME_BUCKET.get_ptr_mut(runtime_bucket(tid)) else {
        return;
    };
    add_atomic_u32(bucket, 1);
    match RUNTIME_TASKS.insert(&tid, &ns, BPF_NOEXIST.into()) {
        Ok(()) => {}
        Err(err) => {
            add_atomic_u32(bucket, u32::MAX);
            if err != -EEXIST {
                add_config(CONFIG_RUNTIME_LOST, 1);
            }
        }
    }
}

/// Unmarks thread `tid` (it exec'd or exited).
#[inline(always)]
fn unmark_runtime(tid: u32) {
    if may_be_runtime(tid)
        && RUNTIME_TASKS.remove(&tid).is_ok()
        && let Some(bucket) = RUNTIME_BUCKET.get_ptr_mut(runtime_bucket(tid))
    {
        add_atomic_u32(bucket, u32::MAX);
    }
}

/// Adds `delta` (wrapping: `u32::MAX` subtracts one) to a shared `u32`, atomically.
#[inline(always)]
fn add_atomic_u32(cell: *mut u32, delta: u32) {
    // SAFETY: `cell` is an array element, valid and aligned for the map's lifetime.
    unsafe {
        core::intrinsics::atomic_xadd::<u32, u32, { core::intrinsics::AtomicOrdering::Relaxed }>(
            cell, delta,
        )
    };
}

/// Adds `delta` to a `CONFIG` counter, atomically.
#[inline(always)]
fn add_config(index: u32, delta: u32) {
    if let Some(cell) = CONFIG.get_ptr_mut(index) {
        add_atomic_u32(cell, delta);
    }
}

/// The counters of a watch: its slot's (this CPU's copy), or its adopted cgroup's (shared by
/// all CPUs), with that cgroup's argument bookkeeping (a slot's is looked up only when an
/// argument is recorded).
#[inline(always)]
fn tables(id: u64, watch: &Watch) -> Option<(*mut SyscallCounts, Option<*mut ArgCounts>)> {
    if watch.flags & WATCH_ADOPTED != 0 {
        let t = ADOPTED.get_ptr_mut(&id)?;
        // SAFETY: `t` points at the entry's value; only the field addresses are taken.
        return Some(unsafe { (&raw mut (*t).counts, Some(&raw mut (*t).args)) });
    }
    Some((COUNTS.get_ptr_mut(watch.slot)?, None))
}

/// The runtime's counters of a watch (shared by all CPUs): its slot's, or its adopted cgroup's.
#[inline(always)]
fn runtime_table(id: u64, watch: &Watch, denied: bool) -> Option<*mut RuntimeCounts> {
    if watch.flags & WATCH_ADOPTED != 0 {
        let t = ADOPTED.get_ptr_mut(&id)?;
        // SAFETY: `t` points at the entry's value; only the field's address is taken.
        return Some(unsafe { &raw mut (*t).runtime });
    }
    let map = if denied { &RUNTIME_DENIED } else { &RUNTIME };
    map.get_ptr_mut(watch.slot)
}

/// Counts a native call of a runtime task (one not yet handed over to the workload); true when
/// it was counted, whether it is its first is for the first-program map to decide.
#[cold]
fn count_runtime(
    ctx: &RawTracePointContext,
    id: u64,
    watch: &Watch,
    nr: u64,
    denied: bool,
) -> bool {
    let Some(table) = runtime_table(id, watch, denied) else {
        return false;
    };
    // SAFETY: reads a local through a reference to it (keeps the verifier's bounds check).
    let nr = unsafe { core::ptr::read_volatile(&nr) } as usize;
    // SAFETY: a map value, never freed while the program runs; the add below is atomic.
    let Some(cell) = (unsafe { (*table).counts.get_mut(nr) }) else {
        return false;
    };
    // SAFETY: `cell` is a valid, aligned u64 of the map value.
    let first = unsafe { core::ptr::read_volatile(cell) } == 0;
    add_atomic(cell);
    if first {
        let base = if denied { FIRST_DENIED_BASE } else { 0 };
        remember_first(ctx, watch.slot, (base + FIRST_RUNTIME_BASE) as usize + nr);
    }
    true
}

/// The current task's `task_struct`, as a BTF-typed pointer: the verifier knows its type, so
/// its fields are read with plain loads (guarded by the kernel's exception table) instead of
/// a helper call each.
#[inline(always)]
fn current_task() -> *const u8 {
    // SAFETY: the helper takes no arguments and only returns the current task's address.
    unsafe { bpf_get_current_task_btf() as *const u8 }
}

/// Reads the field at `offset` in the kernel object `object`, a BTF-typed pointer (the current
/// task, or a pointer read from one of its fields): the loader took the offset from the
/// kernel's BTF, and the verifier checks it against the same BTF.
#[inline(always)]
fn task_field<T: Copy>(object: *const u8, offset: u32) -> T {
    let field = object.wrapping_add(offset as usize) as *const T;
    // SAFETY: `object` is the current task or an object it points to, alive while its syscall
    // runs (under RCU); the verifier turns this load into a checked one (a fault reads as zero).
    unsafe { core::ptr::read_volatile(field) }
}

/// Whether a seccomp filter governs `task`'s syscalls.
#[inline(always)]
fn under_filter(task: *const u8) -> bool {
    task_field::<i32>(task, SECCOMP_MODE_OFFSET.load()) == SECCOMP_MODE_FILTER
}

/// Table index of syscall `nr` made by `task`, by the ABI it entered with. The kernel's own
/// tests, in its order: `in_ia32_syscall()` (TS_COMPAT in thread_info.status: the entry path,
/// not the code segment, decides, so `int 0x80` from 64-bit code is i386), then the x32 bit.
#[inline(always)]
fn syscall_index(task: *const u8, nr: u64) -> usize {
    if task_field::<u32>(task, THREAD_STATUS_OFFSET.load()) & TS_COMPAT != 0 {
        return table_index(ABI_IA32, nr);
    }
    if nr & X32_SYSCALL_BIT != 0 {
        return table_index(ABI_X32, nr & !X32_SYSCALL_BIT);
    }
    table_index(ABI_NATIVE, nr)
}

#[inline(always)]
fn count(table: *mut SyscallCounts, index: usize, shared: bool) -> bool {
    // Launder the index so the compiler keeps the bounds check the verifier needs to see.
    // SAFETY: reads a local through a reference to it.
    let index = unsafe { core::ptr::read_volatile(&index) };
    // SAFETY: `table` is a map value (never freed while the program runs); a per-CPU copy is
    // only touched by this CPU (programs run with preemption off and never nest).
    let Some(cell) = (unsafe { (*table).counts.get_mut(index) }) else {
        return false;
    };
    if shared {
        // Two CPUs may both see 0 and both report a first call: the first-program map keeps one.
        // SAFETY: `cell` is a valid, aligned u64 of the map value.
        let first = unsafe { core::ptr::read_volatile(cell) } == 0;
        add_atomic(cell);
        return first;
    }
    *cell += 1;
    *cell == 1
}

/// Adds one to a counter other CPUs may add to at the same time.
#[inline(always)]
fn add_atomic(cell: &mut u64) {
    // The BPF target has no compare-and-swap, so core's AtomicU64 offers no fetch_add; the
    // intrinsic becomes BPF's atomic add (the result is unused, so no fetch is needed).
    // SAFETY: `cell` is a valid, aligned u64 for the map's lifetime.
    unsafe {
        core::intrinsics::atomic_xadd::<u64, u64, { core::intrinsics::AtomicOrdering::Relaxed }>(
            cell, 1,
        )
    };
}

#[cold]
fn remember_first(ctx: &RawTracePointContext, slot: u32, index: usize) {
    let key = FirstKey {
        slot,
        index: index as u32,
    };
    let pid_tgid = bpf_get_current_pid_tgid();
    let seen = FirstSeen {
        comm: bpf_get_current_comm().unwrap_or([0; 16]),
        tgid: (pid_tgid >> 32) as u32,
        pid: pid_tgid as u32,
    };
    // BPF_NOEXIST: when two CPUs race, the first to insert stays.
    if let Err(err) = FIRST.insert(&key, &seen, BPF_NOEXIST.into()) {
        if err != -EEXIST
            && let Some(stats) = STATS.get_ptr_mut(slot)
        {
            // SAFETY: this CPU's copy of the slot's stats; as in `count`, no access overlaps.
            let stats = unsafe { &mut *stats };
            if stats.dropped_first == 0 {
                warn!(
                    ctx,
                    "first-program map full: programs of new syscalls are not recorded"
                );
            }
            stats.dropped_first += 1;
        }
    }
}

/// Adds one to a shared counter; true when it was found (the first-program map decides which
/// call was first).
#[inline(always)]
fn count_shared(map: &Array<SyscallCounts>, slot: u32, index: usize) -> bool {
    // SAFETY: reads a local through a reference to it (keeps the verifier's bounds check).
    let index = unsafe { core::ptr::read_volatile(&index) };
    let Some(table) = map.get_ptr_mut(slot) else {
        return false;
    };
    // SAFETY: array elements are never freed; the increment below is atomic, so CPUs updating
    // the same counter at once don't lose counts.
    let Some(cell) = (unsafe { (*table).counts.get_mut(index) }) else {
        return false;
    };
    add_atomic(cell);
    true
}

/// The kind of a native syscall whose arguments are learned, and the values that matter.
#[inline(always)]
fn learned_args(regs: *const pt_regs, nr: u64, strict: bool) -> Option<(u32, [u64; 2])> {
    let kind = match nr {
        NR_SOCKET => ARG_SOCKET,
        NR_PERSONALITY => ARG_PERSONALITY,
        NR_IOCTL if strict => ARG_IOCTL,
        NR_PRCTL if strict => ARG_PRCTL,
        _ => return None,
    };
    // SAFETY: only the fields' addresses are computed here; the helper does the checked reads.
    let (di, si) = unsafe {
        (
            bpf_probe_read_kernel(&raw const (*regs).rdi).ok()?,
            bpf_probe_read_kernel(&raw const (*regs).rsi).ok()?,
        )
    };
    let values = match kind {
        ARG_SOCKET => [di, si & SOCK_TYPE_MASK],
        ARG_IOCTL => [si, 0],
        _ => [di, 0],
    };
    Some((kind, values))
}

/// Remembers one argument tuple; past [`MAX_ARG_VALUES`] distinct ones (or a full map) the
/// kind is marked overflowed and userspace falls back to the base's rule.
#[cold]
fn remember_args(slot: u32, counts: *mut ArgCounts, kind: u32, values: [u64; 2]) {
    let key = ArgKey { slot, kind, values };
    // SAFETY: only checks for presence; the value is never read.
    if unsafe { ARGS.get(&key) }.is_some() {
        return;
    }
    let k = kind as usize;
    // Per CPU, so the bound is checked against this CPU's count; userspace adds them up.
    // SAFETY: this CPU's copy of the slot's counts; as in `count`, no access overlaps.
    let counts = unsafe { &mut *counts };
    let (Some(distinct), Some(overflowed)) =
        (counts.distinct.get_mut(k), counts.overflowed.get_mut(k))
    else {
        return;
    };
    if *distinct >= MAX_ARG_VALUES {
        *overflowed = 1;
        return;
    }
    match ARGS.insert(&key, &1, BPF_NOEXIST.into()) {
        Ok(()) => *distinct += 1,
        Err(err) if err == -EEXIST => {}
        Err(_) => *overflowed = 1,
    }
}

/// raw_syscalls:sys_enter(struct pt_regs *regs, long id).
#[raw_tracepoint(tracepoint = "sys_enter")]
pub fn sys_enter(ctx: RawTracePointContext) -> i32 {
    // Most tasks on a host run without a seccomp filter: their mode (one inlined lookup of the
    // current task and one read) turns them away before anything else, unless a recording
    // counts such tasks too (--all-syscalls; adopted containers, which may run unconfined).
    let task = current_task();
    let filtered = under_filter(task);
    if !filtered && config(CONFIG_ALL_SYSCALLS) == 0 && config(CONFIG_ADOPT) == 0 {
        return 0;
    }
    let Some((id, watch)) = current_watch(task) else {
        return 0;
    };
    let every_call = watch.flags & WATCH_ALL_SYSCALLS != 0;
    let regs: *const pt_regs = ctx.arg(0);
    let nr: u64 = ctx.arg(1);
    let index = syscall_index(task, nr);
    if !every_call {
        let runtime = is_runtime(task_field(task, TASK_PID_OFFSET.load()));
        // Without a filter, only an adopted container's workload counts: the runtime's setup
        // (mount, pivot_root, …) is never checked by a filter and never granted.
        if !filtered && (runtime || watch.flags & WATCH_ADOPTED == 0) {
            return 0;
        }
        if runtime
            && index == nr as usize
            && nr < NR_PER_ABI as u64
            && count_runtime(&ctx, id, &watch, nr, false)
        {
            return 0;
        }
    }
    let Some((table, adopted_args)) = tables(id, &watch) else {
        return 0;
    };
    if count(table, index, adopted_args.is_some()) {
        remember_first(&ctx, watch.slot, index);
    }
    if index == nr as usize {
        if let Some((kind, values)) = learned_args(regs, nr, watch.flags & WATCH_STRICT_ARGS != 0) {
            // Only now, for the few syscalls whose arguments are learned, the slot's bookkeeping.
            if let Some(counts) = adopted_args.or_else(|| ARG_COUNTS.get_ptr_mut(watch.slot)) {
                remember_args(watch.slot, counts, kind, values);
            }
        } else if nr == NR_BIND {
            remember_low_port(regs, watch.slot);
        }
    }
    0
}

/// A bind() to an AF_INET or AF_INET6 port below 1024 is remembered by port: where the
/// container's unprivileged port range starts at 1024, it needs NET_BIND_SERVICE, which no
/// capability check shows under Docker (it starts the range at 0).
#[cold]
fn remember_low_port(regs: *const pt_regs, slot: u32) {
    // SAFETY: only the field's address is computed here; the helper does the checked read.
    let Ok(addr) = (unsafe { bpf_probe_read_kernel(&raw const (*regs).rsi) }) else {
        return;
    };
    // sa_family (2 bytes), then the port in network order: the same in sockaddr_in and _in6.
    // SAFETY: bpf_probe_read_user checks the address and fails instead of faulting.
    let Ok(head) = (unsafe { bpf_probe_read_user(addr as *const [u8; 4]) }) else {
        return;
    };
    let family = u16::from_ne_bytes([head[0], head[1]]);
    let port = u16::from_be_bytes([head[2], head[3]]);
    // AF_INET, AF_INET6; port 0 asks for any free port.
    if (family == 2 || family == 10) && port != 0 && port < 1024 {
        remember_cap(CapKey {
            slot,
            cap: CAP_NET_BIND_SERVICE,
            how: CAP_LOW_PORT,
            nr: u32::from(port),
        });
    }
}

/// Counts one capability entry; the first of its key keeps the program that made it.
#[inline(always)]
fn remember_cap(key: CapKey) {
    if let Some(seen) = CAPS.get_ptr_mut(&key) {
        // SAFETY: a preallocated map value, valid and aligned while the program runs.
        add_atomic(unsafe { &mut (*seen).count });
        return;
    }
    let seen = CapSeen {
        count: 1,
        comm: bpf_get_current_comm().unwrap_or([0; 16]),
        probe: 0,
        _pad: 0,
    };
    // A full map loses the entry: the recipe then keeps less, and verification shows it.
    let _ = CAPS.insert(&key, &seen, BPF_NOEXIST.into());
}

/// The native syscall number `task` is in, from its saved registers (-1: none).
#[inline(always)]
fn current_syscall(task: *const u8) -> u32 {
    // SAFETY: the helper returns the task's saved user registers, a BTF-typed pointer.
    let regs = unsafe { bpf_task_pt_regs(task as *mut _) } as *const pt_regs;
    if regs.is_null() {
        return u32::MAX;
    }
    // SAFETY: a BTF-typed pointer the verifier checks the load against.
    unsafe { core::ptr::read_volatile(&raw const (*regs).orig_rax) as u32 }
}

/// raw capability:cap_capable(cred, target_ns, capable_ns, cap, ret): every capability check
/// the kernel makes (Linux 6.14 and later). One of a watched cgroup's workload (never the
/// runtime's before it hands over) against the task's own credentials (not a mounter's
/// borrowed by overlayfs: their bounding set differs) is remembered with its outcome and
/// syscall. The tracepoint does not say whether the check only probes (CAP_OPT_NOAUDIT: every
/// mmap asks for CAP_SYS_ADMIN in the overcommit check); the first check of each kind is told
/// by the kernel functions it came through (see [`probed`]), and what it was decides the kind.
#[raw_tracepoint(tracepoint = "cap_capable")]
pub fn cap_capable(ctx: RawTracePointContext) -> i32 {
    // As for syscalls: before its filter is in place a task is still being set up (the
    // install's own CAP_SYS_ADMIN check among it), unless its cgroup counts everything or was
    // adopted unconfined. The task's own field first: most checks end there, before any
    // lookup.
    let task = current_task();
    let filtered = under_filter(task);
    if !filtered && config(CONFIG_ALL_SYSCALLS) == 0 && config(CONFIG_ADOPT) == 0 {
        return 0;
    }
    let Some((_, watch)) = current_watch(task) else {
        return 0;
    };
    if !filtered && watch.flags & (WATCH_ALL_SYSCALLS | WATCH_ADOPTED) == 0 {
        return 0;
    }
    if is_runtime(task_field(task, TASK_PID_OFFSET.load())) {
        return 0;
    }
    let cred: u64 = ctx.arg(0);
    let own: *const u8 = task_field(task, TASK_REAL_CRED_OFFSET.load());
    if cred != own as u64 && !same_bounding_set(cred as *const u8, own) {
        return 0;
    }
    let cap: u64 = ctx.arg(3);
    let ret: u64 = ctx.arg(4);
    let key = CapKey {
        slot: watch.slot,
        cap: cap as u16,
        how: if ret as i32 == 0 {
            CAP_GRANTED
        } else {
            CAP_DENIED
        },
        nr: current_syscall(task),
    };
    if let Some(seen) = CAPS.get_ptr_mut(&key) {
        // SAFETY: a preallocated map value, valid and aligned while the program runs.
        add_atomic(unsafe { &mut (*seen).count });
        return 0;
    }
    let seen = CapSeen {
        count: 1,
        comm: bpf_get_current_comm().unwrap_or([0; 16]),
        probe: probed(&ctx) as u32,
        _pad: 0,
    };
    // A full map loses the entry: the recipe then keeps less, and verification shows it.
    let _ = CAPS.insert(&key, &seen, BPF_NOEXIST.into());
    0
}

/// Whether credentials `cred` have the same bounding set as the task's own `own`.
#[inline(always)]
fn same_bounding_set(cred: *const u8, own: *const u8) -> bool {
    let at = CRED_CAP_BSET_OFFSET.load() as usize;
    // SAFETY: the helper checks the address and fails instead of faulting.
    let theirs = unsafe { bpf_probe_read_kernel(cred.wrapping_add(at) as *const u64) };
    theirs.is_ok_and(|b| b == task_field::<u64>(own, at as u32))
}

/// Kernel frames looked at above the tracepoint for a probing caller.
const PROBE_FRAMES: usize = 8;

/// Whether the check came through one of the kernel functions that check with
/// CAP_OPT_NOAUDIT (`ns_capable_noaudit`, `has_ns_capability_noaudit`,
/// `cap_vm_enough_memory`, …: their address ranges are in `NOAUDIT_CALLERS`).
#[inline(never)]
fn probed(ctx: &RawTracePointContext) -> bool {
    let mut frames = [0u64; PROBE_FRAMES];
    // SAFETY: the helper writes at most the buffer's size into it.
    let got = unsafe {
        bpf_get_stack(
            ctx.as_ptr(),
            frames.as_mut_ptr().cast(),
            (PROBE_FRAMES * 8) as u32,
            0,
        )
    };
    if got <= 0 {
        return false;
    }
    let got = (got as usize / 8).min(PROBE_FRAMES);
    for (i, &frame) in frames.iter().enumerate() {
        if i >= got {
            break;
        }
        for r in 0..MAX_NOAUDIT_CALLERS {
            let Some(range) = NOAUDIT_CALLERS.get(r) else {
                break;
            };
            if range[0] == 0 {
                break;
            }
            if frame >= range[0] && frame < range[1] {
                return true;
            }
        }
    }
    false
}

/// raw sched_process_exec(p, old_pid, bprm): an exec of a watched cgroup's workload that
/// changed its credentials (the kernel's secure-exec flag), or of a setuid or setgid program
/// whose ids no_new_privs kept from it, is remembered by program.
#[raw_tracepoint(tracepoint = "sched_process_exec")]
pub fn privileged_exec(ctx: RawTracePointContext) -> i32 {
    let task = current_task();
    let Some((_, watch)) = current_watch(task) else {
        return 0;
    };
    let bprm: *const u8 = ctx.arg(2);
    let bit = BPRM_SECUREEXEC_BIT.load();
    // SAFETY: the helper checks the address and fails instead of faulting.
    let Ok(byte) = (unsafe { bpf_probe_read_kernel(bprm.wrapping_add((bit / 8) as usize)) }) else {
        return 0;
    };
    let byte: u8 = byte;
    let mut flags = 0;
    if byte & (1 << (bit % 8)) != 0 {
        flags |= EXEC_GAINED;
    }
    // PFA_NO_NEW_PRIVS is bit 0 of task->atomic_flags.
    if task_field::<u64>(task, TASK_ATOMIC_FLAGS_OFFSET.load()) & 1 != 0
        && setid_stopped(bprm, task)
    {
        flags |= EXEC_SETID_STOPPED;
    }
    if flags != 0 {
        remember_privileged_exec(bprm, watch.slot, flags);
    }
    0
}

/// Whether the exec'd file is setuid (or setgid) to another user (group) than the task's
/// effective one: what no_new_privs keeps from taking effect.
#[inline(always)]
fn setid_stopped(bprm: *const u8, task: *const u8) -> bool {
    let read = |at: *const u8| -> Option<u64> {
        // SAFETY: the helper checks the address and fails instead of faulting.
        unsafe { bpf_probe_read_kernel(at as *const u64) }.ok()
    };
    let Some(file) = read(bprm.wrapping_add(BPRM_FILE_OFFSET.load() as usize)) else {
        return false;
    };
    let Some(inode) = read((file as *const u8).wrapping_add(FILE_INODE_OFFSET.load() as usize))
    else {
        return false;
    };
    let inode = inode as *const u8;
    // SAFETY: as above.
    let Ok(mode) = (unsafe {
        bpf_probe_read_kernel(inode.wrapping_add(INODE_MODE_OFFSET.load() as usize) as *const u16)
    }) else {
        return false;
    };
    let cred: *const u8 = task_field(task, TASK_REAL_CRED_OFFSET.load());
    let other = |inode_at: u32, cred_at: u32| {
        // SAFETY: as above.
        let owner =
            unsafe { bpf_probe_read_kernel(inode.wrapping_add(inode_at as usize) as *const u32) };
        owner.is_ok_and(|o| o != task_field::<u32>(cred, cred_at))
    };
    (mode & 0o4000 != 0 && other(INODE_UID_OFFSET.load(), CRED_EUID_OFFSET.load()))
        || (mode & 0o2000 != 0 && other(INODE_GID_OFFSET.load(), CRED_EGID_OFFSET.load()))
}

#[cold]
fn remember_privileged_exec(bprm: *const u8, slot: u32, flags: u32) {
    let mut key = ExecKey {
        slot,
        path: [0; EXEC_PATH_LEN],
    };
    // SAFETY: the helper checks the address and fails instead of faulting.
    let Ok(name) = (unsafe {
        bpf_probe_read_kernel(bprm.wrapping_add(BPRM_FILENAME_OFFSET.load() as usize) as *const u64)
    }) else {
        return;
    };
    // SAFETY: as above; it stops at the NUL or one byte before the buffer's end.
    if unsafe { bpf_probe_read_kernel_str_bytes(name as *const u8, &mut key.path) }.is_err() {
        return;
    }
    if let Some(old) = PRIVILEGED_EXECS.get_ptr_mut(&key) {
        // SAFETY: a preallocated map value; a lost or of two racing execs only repeats a flag.
        unsafe { *old |= flags };
        return;
    }
    let _ = PRIVILEGED_EXECS.insert(&key, &flags, BPF_NOEXIST.into());
}

/// Whether native call `nr` (at table index `index`) of `task` is the runtime's: made before the
/// task handed over to the workload.
#[inline(always)]
fn by_runtime(task: *const u8, index: usize, nr: u64) -> bool {
    index == nr as usize
        && nr < NR_PER_ABI as u64
        && is_runtime(task_field(task, TASK_PID_OFFSET.load()))
}

/// raw_syscalls:sys_exit(struct pt_regs *regs, long ret): attached while verifying only.
#[raw_tracepoint(tracepoint = "sys_exit")]
pub fn sys_exit(ctx: RawTracePointContext) -> i32 {
    let ret: i64 = ctx.arg(1);
    if ret == -(EROFS as i64) {
        read_only_write(&ctx);
        return 0;
    }
    if ret != -(DENY_ERRNO as i64) {
        return 0;
    }
    // Adopted cgroups are never verified.
    let task = current_task();
    let Some((id, watch)) = current_watch(task) else {
        return 0;
    };
    if watch.slot & ADOPTED_SLOT_BIT != 0 {
        return 0;
    }
    let regs: *const pt_regs = ctx.arg(0);
    // SAFETY: only the field's address is computed here; the helper does the checked read.
    let Ok(nr) = (unsafe { bpf_probe_read_kernel(&raw const (*regs).orig_rax) }) else {
        return 0;
    };
    let index = syscall_index(task, nr);
    if by_runtime(task, index, nr) && count_runtime(&ctx, id, &watch, nr, true) {
        return 0;
    }
    if count_shared(&DENIED, watch.slot, index) {
        // The first-program map keeps the first insert; later ones fail cheaply.
        remember_first(&ctx, watch.slot, FIRST_DENIED_BASE as usize + index);
    }
    if index == nr as usize
        && let Some((kind, values)) = learned_args(regs, nr, true)
    {
        if let Some(counts) = ARG_COUNTS.get_ptr_mut(watch.slot) {
            remember_args(watch.slot, counts, kind + ARG_DENIED, values);
        }
    }
    0
}

/// A write of a verified recording's workload refused by a read-only filesystem: remembered
/// by the path the call named (when it names one).
#[cold]
fn read_only_write(ctx: &RawTracePointContext) {
    let task = current_task();
    let Some((_, watch)) = current_watch(task) else {
        return;
    };
    if watch.slot & ADOPTED_SLOT_BIT != 0 {
        return;
    }
    let regs: *const pt_regs = ctx.arg(0);
    // SAFETY: only the field's address is computed here; the helper does the checked read.
    let Ok(nr) = (unsafe { bpf_probe_read_kernel(&raw const (*regs).orig_rax) }) else {
        return;
    };
    let mut key = ExecKey {
        slot: watch.slot,
        path: [0; EXEC_PATH_LEN],
    };
    if let Some(arg) = path_argument(nr) {
        // SAFETY: as above.
        let at = unsafe {
            match arg {
                0 => bpf_probe_read_kernel(&raw const (*regs).rdi),
                1 => bpf_probe_read_kernel(&raw const (*regs).rsi),
                _ => bpf_probe_read_kernel(&raw const (*regs).rdx),
            }
        };
        if let Ok(at) = at {
            // SAFETY: the helper checks the user address and fails instead of faulting.
            let _ = unsafe { bpf_probe_read_user_str_bytes(at as *const u8, &mut key.path) };
        }
    }
    if let Some(old) = READ_ONLY_WRITES.get_ptr_mut(&key) {
        // SAFETY: a preallocated map value; a count lost to a race is one write of the same path.
        unsafe { (*old).count += 1 };
        return;
    }
    let seen = ReadOnlyWrite {
        count: 1,
        nr: nr as u32,
        comm: bpf_get_current_comm().unwrap_or([0; 16]),
    };
    let _ = READ_ONLY_WRITES.insert(&key, &seen, BPF_NOEXIST.into());
}

/// Which argument of native call `nr` names the path it writes, for the calls that take one.
#[inline(always)]
fn path_argument(nr: u64) -> Option<u8> {
    Some(match nr {
        // open, creat, mkdir, rmdir, unlink, rename, link, chmod, chown, lchown, truncate,
        // utime, mknod, utimes, setxattr, lsetxattr, removexattr, lremovexattr
        2 | 85 | 83 | 84 | 87 | 82 | 86 | 90 | 92 | 94 | 76 | 132 | 133 | 235 | 188 | 189 | 197
        | 198 => 0,
        // symlink (its new name)
        88 => 1,
        // openat, mkdirat, mknodat, fchownat, futimesat, unlinkat, renameat, fchmodat,
        // utimensat, renameat2, openat2, fchmodat2
        257 | 258 | 259 | 260 | 261 | 263 | 264 | 268 | 280 | 316 | 437 | 452 => 1,
        // symlinkat (its new name), linkat (its new name is the fourth: not read)
        266 => 2,
        _ => return None,
    })
}

/// cgroup:cgroup_attach_task: a task is moved into a cgroup. One that another process moves
/// into a watched cgroup is the runtime's (runc's init, a `runc exec` process) until it hands
/// over; one that joins by itself (a launcher before its exec) is the workload's.
#[tracepoint(category = "cgroup", name = "cgroup_attach_task")]
pub fn cgroup_attach_task(ctx: TracePointContext) -> u32 {
    // SAFETY: read_at goes through bpf_probe_read_kernel, which fails instead of faulting;
    // the offsets of this and the next two reads come from the tracepoint's format in tracefs.
    match unsafe { ctx.read_at::<i32>(ATTACH_ROOT_OFFSET.load() as usize) } {
        Ok(0) => {}
        _ => return 0,
    }
    // SAFETY: as above.
    let Ok(id) = (unsafe { ctx.read_at::<u64>(ATTACH_ID_OFFSET.load() as usize) }) else {
        return 0;
    };
    // SAFETY: as above.
    let Ok(pid) = (unsafe { ctx.read_at::<i32>(ATTACH_PID_OFFSET.load() as usize) }) else {
        return 0;
    };
    let writer = current_task();
    // SAFETY: only checks for presence; the value is never read.
    if task_field::<i32>(writer, TASK_TGID_OFFSET.load()) != pid
        && unsafe { WATCHED.get(&id) }.is_some()
    {
        // The runtime writes the task's id from where it runs itself: its mount namespace.
        mark_runtime(pid as u32, mnt_ns(writer));
    }
    0
}

/// sched:sched_process_fork: what a runtime task forks (a process or a thread) is the runtime's.
#[tracepoint(category = "sched", name = "sched_process_fork")]
pub fn sched_process_fork(ctx: TracePointContext) -> u32 {
    let parent: u32 = task_field(current_task(), TASK_PID_OFFSET.load());
    let Some(ns) = runtime_ns(parent) else {
        return 0;
    };
    // SAFETY: read_at goes through bpf_probe_read_kernel; the offset comes from tracefs.
    if let Ok(child) = unsafe { ctx.read_at::<i32>(FORK_CHILD_OFFSET.load() as usize) } {
        mark_runtime(child as u32, ns);
    }
    0
}

/// sched:sched_process_exec: an exec under a seccomp filter, or in another mount namespace than
/// the runtime's, hands the task over to the workload. The exec'ing thread may have taken its
/// leader's id (`old_pid` is the one it had). Every exec of a watched cgroup's workload is
/// remembered with its recording.
#[tracepoint(category = "sched", name = "sched_process_exec")]
pub fn sched_process_exec(ctx: TracePointContext) -> u32 {
    let task = current_task();
    if stays_runtime(&ctx, task) {
        return 0;
    }
    if let Some((_, watch)) = current_watch(task) {
        remember_exec(&ctx, &watch);
    }
    0
}

/// Hands a runtime task over to the workload on its exec; true when the task exec'd as the
/// runtime still (runc's copy of its own binary, outside the container).
#[inline(always)]
fn stays_runtime(ctx: &TracePointContext, task: *const u8) -> bool {
    let pid: u32 = task_field(task, TASK_PID_OFFSET.load());
    // SAFETY: read_at goes through bpf_probe_read_kernel; the offset comes from tracefs.
    let old = unsafe { ctx.read_at::<i32>(EXEC_OLD_PID_OFFSET.load() as usize) }
        .map_or(pid, |old| old as u32);
    let Some(ns) = runtime_ns(old).or_else(|| runtime_ns(pid)) else {
        return false;
    };
    if !under_filter(task) && mnt_ns(task) == ns {
        if old != pid {
            mark_runtime(pid, ns);
            unmark_runtime(old);
        }
        return true;
    }
    unmark_runtime(pid);
    if old != pid {
        unmark_runtime(old);
    }
    false
}

/// Counts an exec of the workload under its path (as the exec named it, cut to
/// `EXEC_PATH_LEN - 1` bytes); a path that finds no room counts as lost.
#[cold]
fn remember_exec(ctx: &TracePointContext, watch: &Watch) {
    // SAFETY: read_at goes through bpf_probe_read_kernel; the offset comes from tracefs.
    let Ok(loc) = (unsafe { ctx.read_at::<u32>(EXEC_FILENAME_OFFSET.load() as usize) }) else {
        return;
    };
    let mut key = ExecKey {
        slot: watch.slot,
        path: [0; EXEC_PATH_LEN],
    };
    let src = (ctx.as_ptr() as *const u8).wrapping_add((loc & 0xffff) as usize);
    // SAFETY: the helper checks the address and fails instead of faulting; it stops at the NUL
    // or one byte before the buffer's end, so the key's path always ends with a NUL.
    if unsafe { bpf_probe_read_kernel_str_bytes(src, &mut key.path) }.is_err() {
        return;
    }
    if let Some(count) = EXECS.get_ptr_mut(&key) {
        // SAFETY: a preallocated map value, valid and aligned while the program runs.
        add_atomic(unsafe { &mut *count });
        return;
    }
    match EXECS.insert(&key, &1, BPF_NOEXIST.into()) {
        Ok(()) => {}
        Err(err) if err == -EEXIST => {}
        Err(_) => {
            if let Some(stats) = STATS.get_ptr_mut(watch.slot) {
                // SAFETY: this CPU's copy of the slot's statistics.
                unsafe { (*stats).lost_programs += 1 };
            }
        }
    }
}

/// sched:sched_process_exit: a runtime task that ends without exec'ing is forgotten.
#[tracepoint(category = "sched", name = "sched_process_exit")]
pub fn sched_process_exit(_ctx: TracePointContext) -> u32 {
    unmark_runtime(task_field(current_task(), TASK_PID_OFFSET.load()));
    0
}

#[tracepoint(category = "cgroup", name = "cgroup_mkdir")]
pub fn cgroup_mkdir(ctx: TracePointContext) -> u32 {
    if config(CONFIG_PENDING_NAMES) == 0 && config(CONFIG_ADOPT) == 0 {
        return 0;
    }
    // Hierarchy 0 is the unified (v2) one, whose ids bpf_get_current_cgroup_id() returns.
    // SAFETY: read_at goes through bpf_probe_read_kernel, which fails instead of faulting;
    // the offsets of this and the next two reads come from the tracepoint's format in tracefs.
    match unsafe { ctx.read_at::<i32>(MKDIR_ROOT_OFFSET.load() as usize) } {
        Ok(0) => {}
        _ => return 0,
    }
    // SAFETY: as above.
    let Ok(id) = (unsafe { ctx.read_at::<u64>(MKDIR_ID_OFFSET.load() as usize) }) else {
        return 0;
    };
    // SAFETY: as above.
    let Ok(loc) = (unsafe { ctx.read_at::<u32>(MKDIR_PATH_OFFSET.load() as usize) }) else {
        return 0;
    };
    // The key is the path's last CGROUP_KEY_LEN bytes: a container's cgroup name ends with
    // its 64-character id in every layout (`<id>`, `docker-<id>.scope`), so no parsing is needed.
    let len = (loc >> 16) as usize; // with the trailing NUL
    if len <= CGROUP_KEY_LEN {
        return 0;
    }
    let offset = (loc & 0xffff) as usize + len - 1 - CGROUP_KEY_LEN;
    let mut key = CgroupKey {
        bytes: [0; CGROUP_KEY_LEN],
    };
    let src = (ctx.as_ptr() as *const u8).wrapping_add(offset);
    // SAFETY: bpf_probe_read_kernel_buf checks the address and fails instead of faulting.
    if unsafe { bpf_probe_read_kernel_buf(src, &mut key.bytes) }.is_err() {
        return 0;
    }
    // SAFETY: the entry is only passed on to the insert helper, which copies it (see
    // `current_watch` for why a concurrent update can't make it dangle).
    if let Some(watch) = unsafe { PENDING.get(&key) } {
        mark_bucket(id);
        let _ = WATCHED.insert(&id, watch, 0);
        add_config(CONFIG_WATCH_GEN, 1);
    } else if config(CONFIG_ADOPT) != 0 {
        if is_container_id(&key.bytes) {
            adopt(id, &key);
        } else if key.bytes.ends_with(SCOPE) && len > CGROUP_KEY_LEN + SCOPE.len() {
            // The systemd driver's `<prefix>-<id>.scope` (docker-, cri-containerd-, crio-,
            // libpod-): the id is the 64 bytes before the suffix.
            let mut inner = CgroupKey {
                bytes: [0; CGROUP_KEY_LEN],
            };
            // SAFETY: as above; the window ends where the suffix starts, inside the path.
            let src = src.wrapping_sub(SCOPE.len());
            if unsafe { bpf_probe_read_kernel_buf(src, &mut inner.bytes) }.is_ok()
                && is_container_id(&inner.bytes)
            {
                adopt(id, &inner);
            }
        }
    }
    0
}

/// The systemd cgroup driver's suffix of a container's unit.
const SCOPE: &[u8] = b".scope";

/// A container id: 64 lowercase hex digits (the end of `/docker/<id>`, `libpod-<id>`,
/// `/kubepods/<qos>/pod<uid>/<id>`).
#[inline(always)]
fn is_container_id(bytes: &[u8; CGROUP_KEY_LEN]) -> bool {
    bytes
        .iter()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
}

/// Watches a new container cgroup from its creation, with counts of its own; userspace learns
/// from the engine whose it is and keeps or forgets it.
#[cold]
fn adopt(id: u64, name: &CgroupKey) {
    let Some(zero) = ZERO.get_ptr(0) else {
        return;
    };
    // SAFETY: the zeroed table is only read, by the insert helper that copies it.
    match ADOPTED.insert(&id, unsafe { &*zero }, BPF_NOEXIST.into()) {
        Ok(()) => {}
        Err(err) if err == -EEXIST => return,
        Err(_) => {
            // Full: this container goes unrecorded, and userspace says so.
            add_config(CONFIG_ADOPT_LOST, 1);
            return;
        }
    }
    let watch = Watch {
        slot: adopted_slot(id),
        flags: WATCH_ADOPTED,
    };
    let _ = ADOPTED_NAMES.insert(&id, name, 0);
    mark_bucket(id);
    if WATCHED.insert(&id, &watch, 0).is_err() {
        add_config(CONFIG_ADOPT_LOST, 1);
    }
    add_config(CONFIG_WATCH_GEN, 1);
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
