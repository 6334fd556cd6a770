//! The kernel side of `profile`: counts the syscalls of watched cgroups, in the kernel.
//!
//! A task is counted once it runs under a seccomp filter it installed (or inherited) inside a
//! watched cgroup: that is the moment from which the filter governs its syscalls. Cgroups watched
//! with `WATCH_ALL_SYSCALLS` count every task in them instead. Everything is aggregated in maps;
//! nothing streams to userspace, so nothing can be lost to a full buffer.
#![no_std]
#![no_main]

use aya_ebpf::{
    EbpfContext, Global,
    bindings::pt_regs,
    helpers::{
        bpf_get_current_cgroup_id, bpf_get_current_comm, bpf_get_current_pid_tgid,
        bpf_probe_read_kernel_buf,
    },
    macros::{btf_tracepoint, map, tracepoint},
    maps::{Array, HashMap, PerCpuArray},
    programs::{BtfTracePointContext, TracePointContext},
};
use aya_log_ebpf::warn;
use tracer_common::{
    ABI_IA32, ABI_NATIVE, ABI_X32, CGROUP_KEY_LEN, CONFIG_ALL_SYSCALLS_WATCHES, CONFIG_LEN,
    CONFIG_PENDING_NAMES, CgroupKey, DENY_ERRNO, FIRST_DENIED_BASE, FirstKey, FirstSeen,
    MAX_ARMED_TASKS, MAX_FIRST_SEEN, MAX_PENDING_NAMES, MAX_SLOTS, MAX_WATCHED_CGROUPS, SlotStats,
    SyscallCounts, WATCH_ALL_SYSCALLS, Watch, X32_SYSCALL_BIT, table_index,
};

// x86_64 numbers of the two ways to install a seccomp filter.
const SYS_PRCTL: u64 = 157;
const SYS_SECCOMP: u64 = 317;
const PR_SET_SECCOMP: u64 = 22;
const SECCOMP_MODE_FILTER: u64 = 2;
const SECCOMP_SET_MODE_FILTER: u64 = 1;
const SECCOMP_FILTER_FLAG_TSYNC: u64 = 1;
const SECCOMP_FILTER_FLAG_NEW_LISTENER: u64 = 8;
const SECCOMP_FILTER_FLAG_TSYNC_ESRCH: u64 = 16;
// Code segment of 32-bit user code: the task entered through the ia32 ABI.
const USER32_CS: u64 = 0x23;

// Offsets into classic tracepoint records, read from tracefs by the loader.
#[unsafe(no_mangle)]
static FORK_CHILD_PID_OFFSET: Global<u32> = Global::new(0);
#[unsafe(no_mangle)]
static EXEC_OLD_PID_OFFSET: Global<u32> = Global::new(0);
#[unsafe(no_mangle)]
static MKDIR_ROOT_OFFSET: Global<u32> = Global::new(0);
#[unsafe(no_mangle)]
static MKDIR_ID_OFFSET: Global<u32> = Global::new(0);
#[unsafe(no_mangle)]
static MKDIR_PATH_OFFSET: Global<u32> = Global::new(0);

/// cgroup v2 id → where its syscalls go.
#[map]
static WATCHED: HashMap<u64, Watch> = HashMap::with_max_entries(MAX_WATCHED_CGROUPS, 0);
/// Tasks (by kernel pid, i.e. thread id) whose syscalls a seccomp filter governs → slot.
#[map]
static ARMED: HashMap<u32, u32> = HashMap::with_max_entries(MAX_ARMED_TASKS, 0);
/// Cgroups to watch the moment they are created (a container's, before it can run anything),
/// keyed by the end of their name.
#[map]
static PENDING: HashMap<CgroupKey, Watch> = HashMap::with_max_entries(MAX_PENDING_NAMES, 0);
#[map]
static COUNTS: PerCpuArray<SyscallCounts> = PerCpuArray::with_max_entries(MAX_SLOTS, 0);
/// Exits with `-DENY_ERRNO`: calls a profile under verification denied.
#[map]
static DENIED: PerCpuArray<SyscallCounts> = PerCpuArray::with_max_entries(MAX_SLOTS, 0);
#[map]
static FIRST: HashMap<FirstKey, FirstSeen> = HashMap::with_max_entries(MAX_FIRST_SEEN, 0);
#[map]
static STATS: PerCpuArray<SlotStats> = PerCpuArray::with_max_entries(MAX_SLOTS, 0);
/// Counters the loader keeps so that the hot path can skip whole features.
#[map]
static CONFIG: Array<u32> = Array::with_max_entries(CONFIG_LEN, 0);

#[inline(always)]
fn config(index: u32) -> u32 {
    CONFIG.get(index).copied().unwrap_or(0)
}

#[inline(always)]
fn current_tid() -> u32 {
    bpf_get_current_pid_tgid() as u32
}

/// The slot the current task's syscalls count into, if any. Untraced tasks pay one lookup.
#[inline(always)]
fn current_slot() -> Option<u32> {
    if let Some(slot) = unsafe { ARMED.get(current_tid()) } {
        return Some(*slot);
    }
    if config(CONFIG_ALL_SYSCALLS_WATCHES) == 0 {
        return None;
    }
    let watch = unsafe { WATCHED.get(bpf_get_current_cgroup_id()) }?;
    (watch.flags & WATCH_ALL_SYSCALLS != 0).then_some(watch.slot)
}

#[inline(always)]
fn stats(slot: u32) -> Option<&'static mut SlotStats> {
    STATS.get_ptr_mut(slot).map(|p| unsafe { &mut *p })
}

/// Table index of the syscall `regs` describes, by the ABI the task entered with.
#[inline(always)]
fn syscall_index(regs: *const pt_regs, id: i64) -> usize {
    let nr = id as u64;
    if nr & X32_SYSCALL_BIT != 0 {
        return table_index(ABI_X32, nr & !X32_SYSCALL_BIT);
    }
    let cs = unsafe { (*regs).cs };
    table_index(
        if cs == USER32_CS {
            ABI_IA32
        } else {
            ABI_NATIVE
        },
        nr,
    )
}

#[inline(always)]
fn count(map: &PerCpuArray<SyscallCounts>, slot: u32, index: usize) -> bool {
    // Launder the index so the compiler keeps the bounds check the verifier needs to see.
    let index = unsafe { core::ptr::read_volatile(&index) };
    let Some(table) = map.get_ptr_mut(slot) else {
        return false;
    };
    let Some(cell) = (unsafe { (*table).counts.get_mut(index) }) else {
        return false;
    };
    *cell += 1;
    *cell == 1
}

#[cold]
fn remember_first(slot: u32, index: usize) {
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
    if let Err(err) = FIRST.insert(key, seen, 1) {
        if err != -17 {
            if let Some(stats) = stats(slot) {
                stats.dropped_first += 1;
            }
        }
    }
}

#[btf_tracepoint(function = "sys_enter")]
pub fn sys_enter(ctx: BtfTracePointContext) -> i32 {
    let Some(slot) = current_slot() else {
        return 0;
    };
    let regs: *const pt_regs = ctx.arg(0);
    let index = syscall_index(regs, ctx.arg(1));
    if count(&COUNTS, slot, index) {
        remember_first(slot, index);
    }
    0
}

#[btf_tracepoint(function = "sys_exit")]
pub fn sys_exit(ctx: BtfTracePointContext) -> i32 {
    let ret: i64 = ctx.arg(1);
    if ret == -(DENY_ERRNO as i64) {
        on_denied(&ctx);
        return 0;
    }
    if ret < 0 {
        return 0;
    }
    let regs: *const pt_regs = ctx.arg(0);
    let nr = unsafe { (*regs).orig_rax };
    if nr != SYS_PRCTL && nr != SYS_SECCOMP {
        return 0;
    }
    let (op, mode, flags) = unsafe { ((*regs).rdi, (*regs).rsi, (*regs).rdx) };
    let installed = if nr == SYS_PRCTL {
        ret == 0 && op == PR_SET_SECCOMP && mode == SECCOMP_MODE_FILTER
    } else {
        // With TSYNC a positive return names the thread that blocked the sync (a failure);
        // with NEW_LISTENER it is the listener fd (a success).
        let listener = flags & SECCOMP_FILTER_FLAG_NEW_LISTENER != 0
            && (flags & SECCOMP_FILTER_FLAG_TSYNC == 0
                || flags & SECCOMP_FILTER_FLAG_TSYNC_ESRCH != 0);
        op == SECCOMP_SET_MODE_FILTER && (ret == 0 || listener)
    };
    if installed && unsafe { (*regs).cs } != USER32_CS {
        on_filter_installed(&ctx);
    }
    0
}

#[cold]
fn on_denied(ctx: &BtfTracePointContext) {
    let Some(slot) = (unsafe { ARMED.get(current_tid()) }).copied() else {
        return;
    };
    let regs: *const pt_regs = ctx.arg(0);
    let id = unsafe { (*regs).orig_rax } as i64;
    let index = syscall_index(regs, id);
    if count(&DENIED, slot, index) {
        remember_first(slot, FIRST_DENIED_BASE as usize + index);
    }
}

#[cold]
fn on_filter_installed(ctx: &BtfTracePointContext) {
    let tid = current_tid();
    if unsafe { ARMED.get(tid) }.is_some() {
        return;
    }
    let Some(watch) = (unsafe { WATCHED.get(bpf_get_current_cgroup_id()) }).copied() else {
        return;
    };
    arm(ctx, tid, watch.slot, true);
}

#[inline(always)]
fn arm<C: EbpfContext>(ctx: &C, tid: u32, slot: u32, install: bool) {
    let Some(stats) = stats(slot) else {
        return;
    };
    if ARMED.insert(tid, slot, 0).is_ok() {
        if install {
            stats.installs += 1;
        } else {
            stats.inherited += 1;
        }
    } else {
        stats.dropped_tasks += 1;
        warn!(
            ctx,
            "task map full: syscalls of task {} are not recorded", tid
        );
    }
}

#[tracepoint(category = "sched", name = "sched_process_fork")]
pub fn sched_process_fork(ctx: TracePointContext) -> u32 {
    // The parent is the current task; its filter is copied to the child.
    let Some(slot) = (unsafe { ARMED.get(current_tid()) }).copied() else {
        return 0;
    };
    if let Ok(child) = unsafe { ctx.read_at::<i32>(FORK_CHILD_PID_OFFSET.load() as usize) } {
        arm(&ctx, child as u32, slot, false);
    }
    0
}

#[btf_tracepoint(function = "sched_process_exit")]
pub fn sched_process_exit(_ctx: BtfTracePointContext) -> i32 {
    let _ = ARMED.remove(current_tid());
    0
}

#[tracepoint(category = "sched", name = "sched_process_exec")]
pub fn sched_process_exec(ctx: TracePointContext) -> u32 {
    // A non-leader thread that execs takes over the thread group leader's pid.
    let tid = current_tid();
    let Ok(old) = (unsafe { ctx.read_at::<i32>(EXEC_OLD_PID_OFFSET.load() as usize) }) else {
        return 0;
    };
    let old = old as u32;
    if old == tid {
        return 0;
    }
    if let Some(slot) = (unsafe { ARMED.get(old) }).copied() {
        let _ = ARMED.remove(old);
        arm(&ctx, tid, slot, false);
    }
    0
}

#[tracepoint(category = "cgroup", name = "cgroup_mkdir")]
pub fn cgroup_mkdir(ctx: TracePointContext) -> u32 {
    if config(CONFIG_PENDING_NAMES) == 0 {
        return 0;
    }
    // Hierarchy 0 is the unified (v2) one, whose ids bpf_get_current_cgroup_id() returns.
    match unsafe { ctx.read_at::<i32>(MKDIR_ROOT_OFFSET.load() as usize) } {
        Ok(0) => {}
        _ => return 0,
    }
    let Ok(id) = (unsafe { ctx.read_at::<u64>(MKDIR_ID_OFFSET.load() as usize) }) else {
        return 0;
    };
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
    let src = unsafe { (ctx.as_ptr() as *const u8).add(offset) };
    if unsafe { bpf_probe_read_kernel_buf(src, &mut key.bytes) }.is_err() {
        return 0;
    }
    if let Some(watch) = unsafe { PENDING.get(key) } {
        let _ = WATCHED.insert(id, watch, 0);
    }
    0
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
