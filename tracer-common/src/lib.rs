//! The contract between the eBPF recorder and userspace: map layouts, limits and constants.
#![no_std]

/// How many recordings one loaded recorder can keep apart at once. The maps are compiled for
/// this many and sized down at load time to what the invocation needs (usually one).
pub const MAX_SLOTS: u32 = 32;
/// Syscall numbers kept per ABI (x86_64 and i386 end at 469 in Linux 6.18, x32's own entry
/// points at 547); larger numbers land in [`OUT_OF_RANGE`], counted but not named.
pub const NR_PER_ABI: usize = 576;
/// ABIs a task on x86_64 can enter the kernel with.
pub const ABI_COUNT: usize = 3;
pub const ABI_NATIVE: usize = 0;
pub const ABI_X32: usize = 1;
pub const ABI_IA32: usize = 2;
/// Index of the bucket for numbers no table knows (negative, or beyond [`NR_PER_ABI`]).
pub const OUT_OF_RANGE: usize = ABI_COUNT * NR_PER_ABI;
/// Length of a [`SyscallCounts`] table.
pub const TABLE_LEN: usize = OUT_OF_RANGE + 1;
/// Bit the kernel sets in x32 syscall numbers.
pub const X32_SYSCALL_BIT: u64 = 0x4000_0000;

/// Capacity of the map of watched cgroups.
pub const MAX_WATCHED_CGROUPS: u32 = 1_024;
/// Buckets of the watched-cgroup filter: a cgroup id whose bucket is clear is not watched, so
/// tasks of other cgroups are turned away by one inlined array load, before the hash lookup.
pub const WATCH_BUCKETS: u32 = 16_384;
const _: () = assert!(WATCH_BUCKETS.is_power_of_two());
/// Tasks of the runtime (entered a watched cgroup, not yet exec'd) kept at once: a container
/// start holds a handful (runc init's threads), so this covers hundreds of starts at once.
pub const MAX_RUNTIME_TASKS: u32 = 8_192;
/// Capacity of the map of cgroup names awaited by `cgroup_mkdir`.
pub const MAX_PENDING_NAMES: u32 = 256;
/// First-program keys of a slot: every table index, then every native number the runtime made
/// (from [`FIRST_RUNTIME_BASE`]); the denied ones again from [`FIRST_DENIED_BASE`].
pub const FIRST_PER_SLOT: u32 = 2 * (TABLE_LEN + NR_PER_ABI) as u32;
/// Capacity of the map that remembers which program made each syscall first: every index,
/// observed and denied, of every slot.
pub const MAX_FIRST_SEEN: u32 = FIRST_PER_SLOT * MAX_SLOTS;
/// How many trailing bytes of a new cgroup's path identify it (a container id's length).
pub const CGROUP_KEY_LEN: usize = 64;

/// Errno the verifier substitutes for a profile's `defaultErrnoRet`, so that denials can be told
/// apart from the workload's own errors: no Linux syscall returns it (the kernel's errnos stop
/// below 600), and it still fits the 12-bit range seccomp and userspace treat as an error.
pub const DENY_ERRNO: u32 = 3_797;

/// `FirstKey::index` of the runtime's first native call `nr` is `FIRST_RUNTIME_BASE + nr`.
pub const FIRST_RUNTIME_BASE: u32 = TABLE_LEN as u32;
/// `FirstKey::index` of the first denial of index `i` (as above) is `FIRST_DENIED_BASE + i`.
pub const FIRST_DENIED_BASE: u32 = (TABLE_LEN + NR_PER_ABI) as u32;

/// Watch flags.
pub const WATCH_ALL_SYSCALLS: u32 = 1;
/// Also learn ioctl's request and prctl's option (`--learn-args strict`).
pub const WATCH_STRICT_ARGS: u32 = 2;
/// A container cgroup the kernel side adopted when it was created (`profile watch`): its
/// counts live in the adopted-cgroup map under its id, not in a slot.
pub const WATCH_ADOPTED: u32 = 4;
/// Tag in the `slot` field of first-program and argument keys of an adopted cgroup: this bit
/// and the low 31 bits of the cgroup's id.
pub const ADOPTED_SLOT_BIT: u32 = 0x8000_0000;
/// How many adopted cgroups are kept at once (entries are freed as their containers end).
pub const MAX_ADOPTED: u32 = 256;
/// First-program entries kept per adopted cgroup (the syscalls one container makes).
pub const FIRST_PER_ADOPTED: u32 = 512;

/// The key tag of the adopted cgroup with id `id`.
#[inline(always)]
pub fn adopted_slot(id: u64) -> u32 {
    ADOPTED_SLOT_BIT | (id as u32 & !ADOPTED_SLOT_BIT)
}

/// Syscalls whose arguments are learned, by kind: socket, personality, ioctl, prctl (x86_64
/// numbers; the userspace table `ARG_SPECS` lists them in this order).
pub const ARG_KINDS: usize = 4;
pub const ARG_SOCKET: u32 = 0;
pub const ARG_PERSONALITY: u32 = 1;
pub const ARG_IOCTL: u32 = 2;
pub const ARG_PRCTL: u32 = 3;
/// Their x86_64 numbers, by kind.
pub const NR_SOCKET: u64 = 41;
pub const NR_PERSONALITY: u64 = 135;
pub const NR_IOCTL: u64 = 16;
pub const NR_PRCTL: u64 = 157;
/// Added to a kind for the argument values of denied calls (while verifying).
pub const ARG_DENIED: u32 = ARG_KINDS as u32;
/// Distinct value tuples kept per syscall and recording; beyond it the set is marked
/// overflowed and the profile keeps the base's rule for that syscall.
pub const MAX_ARG_VALUES: u32 = 64;
/// Capacity of the argument-value map per recording slot (learned and denied, every kind).
pub const ARG_ENTRIES_PER_SLOT: u32 = 2 * ARG_KINDS as u32 * MAX_ARG_VALUES;
/// Capacity of the argument-value map, shared by all recordings.
pub const MAX_ARG_ENTRIES: u32 = ARG_ENTRIES_PER_SLOT * MAX_SLOTS;
/// socket's type carries SOCK_NONBLOCK and SOCK_CLOEXEC above the type proper.
pub const SOCK_TYPE_MASK: u64 = 0xf;

/// One distinct tuple of argument values of a learned syscall in a recording.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ArgKey {
    pub slot: u32,
    /// The syscall's kind, plus [`ARG_DENIED`] for denied calls.
    pub kind: u32,
    pub values: [u64; 2],
}

/// Per recording: distinct tuples per kind (learned, then denied), and overflow marks.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ArgCounts {
    pub distinct: [u32; 2 * ARG_KINDS],
    pub overflowed: [u32; 2 * ARG_KINDS],
}

/// Index of the `CONFIG` array entries.
pub const CONFIG_PENDING_NAMES: u32 = 0;
/// Recordings open with [`WATCH_ALL_SYSCALLS`]: while there are none, a task without a
/// seccomp filter is never counted, so that is checked before its cgroup.
pub const CONFIG_ALL_SYSCALLS: u32 = 1;
/// Non-zero while new container cgroups (named by a 64-hex-digit id) are adopted on creation.
pub const CONFIG_ADOPT: u32 = 2;
/// Runtime tasks that could not be marked because the map was full (their calls then count as
/// the workload's): userspace says so.
pub const CONFIG_RUNTIME_LOST: u32 = 3;
/// The generation of the watched set, bumped after every change to it: by userspace after it
/// watches or unwatches a cgroup, by the kernel side after it watches a new one (a pending
/// name, an adoption). What a CPU remembers of a cgroup (see [`LastCgroup`]) holds only while
/// the generation it was found under is current. Userspace bumps with a read and a write, the
/// kernel side with an atomic add, so one bump may overwrite the other; that is harmless: the
/// value still changes after each change, and every answer found under the new value was
/// looked up after both changes were made.
pub const CONFIG_WATCH_GEN: u32 = 4;
/// Container cgroups that could not be adopted because the adopted-cgroup map was full: their
/// containers are not recorded, and userspace says so.
pub const CONFIG_ADOPT_LOST: u32 = 5;
pub const CONFIG_LEN: u32 = 6;

/// Buckets of the runtime-task filter: a count per bucket of the marked runtime tasks whose
/// thread id falls in it ([`runtime_bucket`]). A thread whose bucket counts none is not the
/// runtime's, which an inlined array load tells without the hash lookup; the map and its
/// filter are keyed alike, so the filter never turns a runtime task away.
pub const RUNTIME_BUCKETS: u32 = 4_096;
const _: () = assert!(RUNTIME_BUCKETS.is_power_of_two());

/// The bucket of thread `tid` in the runtime-task filter.
#[inline(always)]
pub fn runtime_bucket(tid: u32) -> u32 {
    tid & (RUNTIME_BUCKETS - 1)
}

/// What a CPU found last about a cgroup: whether it is watched, and if so where its calls go,
/// with the generation of the watched set it was found under ([`CONFIG_WATCH_GEN`]). While the
/// generation is current, a task of that cgroup is answered by comparing its cgroup's address
/// (and, for a watched one, its id: the address of a cgroup that ended may come back as
/// another's), without the hash lookup. A cgroup made later at the address of one remembered
/// as unwatched is either unwatched too or watched, and watching it bumps the generation.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct LastCgroup {
    /// The `struct cgroup`'s address.
    pub cgroup: u64,
    /// Its v2 id, when watched.
    pub id: u64,
    pub generation: u32,
    pub watched: u32,
    pub watch: Watch,
}

/// What a watched cgroup records into.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Watch {
    pub slot: u32,
    pub flags: u32,
}

/// Key of the map naming the first program that made a syscall in a slot.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FirstKey {
    pub slot: u32,
    pub index: u32,
}

/// The task that made a syscall first (as seen by one CPU; the first CPU to report wins).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct FirstSeen {
    pub comm: [u8; 16],
    pub tgid: u32,
    pub pid: u32,
}

/// Per-slot syscall counts, indexed by `abi * NR_PER_ABI + nr`; one copy per CPU.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct SyscallCounts {
    pub counts: [u64; TABLE_LEN],
}

/// The runtime's native calls under the filter before it hands over to the workload (the exec
/// of the container's process), per slot, indexed by number: counted apart, so that what the
/// runtime needs and what the workload did are never mixed up. Rare, so one copy shared by all
/// CPUs (atomic adds), not one per CPU.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct RuntimeCounts {
    pub counts: [u64; NR_PER_ABI],
}

/// What an adopted cgroup records: its counts, the runtime's and its argument bookkeeping; one
/// copy shared by all CPUs.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct AdoptedTable {
    pub counts: SyscallCounts,
    pub runtime: RuntimeCounts,
    pub args: ArgCounts,
}

/// Per-slot bookkeeping; one copy per CPU.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct SlotStats {
    /// First-program entries that did not fit.
    pub dropped_first: u64,
    /// Programs the workload exec'd that did not fit in the map of executed programs.
    pub lost_programs: u64,
}

/// Bytes of an executed program's path kept (with its NUL); longer paths are cut.
pub const EXEC_PATH_LEN: usize = 252;
/// Executed programs kept per recording slot, and per adopted cgroup.
pub const EXECS_PER_SLOT: u32 = 256;
pub const EXECS_PER_ADOPTED: u32 = 16;

/// A program the workload of a recording exec'd: the path itself is the key (no hash to
/// collide), as the exec named it; the value counts its execs.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ExecKey {
    pub slot: u32,
    pub path: [u8; EXEC_PATH_LEN],
}

/// A capability check of a recording's workload (or a bind below port 1024), kept per
/// capability, outcome and syscall.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CapKey {
    pub slot: u32,
    /// The capability's number (`CAP_CHOWN` = 0, …).
    pub cap: u16,
    /// [`CAP_GRANTED`], [`CAP_DENIED`] or [`CAP_LOW_PORT`].
    pub how: u16,
    /// The native syscall the check happened in; for [`CAP_LOW_PORT`], the port.
    pub nr: u32,
}

/// A check that found the capability in the task's effective set.
pub const CAP_GRANTED: u16 = 0;
/// A check that did not.
pub const CAP_DENIED: u16 = 1;
/// A bind() to a port below 1024 (which needs NET_BIND_SERVICE where the container's
/// `net.ipv4.ip_unprivileged_port_start` is not 0: Docker sets it to 0, not every CRI runtime).
pub const CAP_LOW_PORT: u16 = 2;
/// `CAP_NET_BIND_SERVICE`.
pub const CAP_NET_BIND_SERVICE: u16 = 10;
/// Kernel functions whose capability checks only probe (they pass CAP_OPT_NOAUDIT), kept by
/// address range.
pub const MAX_NOAUDIT_CALLERS: u32 = 16;
/// bind's x86_64 number.
pub const NR_BIND: u64 = 49;

/// How often a [`CapKey`] happened, the program that made it first, and whether that first
/// check only probed (CAP_OPT_NOAUDIT): such checks are not needs.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct CapSeen {
    pub count: u64,
    pub comm: [u8; 16],
    pub probe: u32,
    pub _pad: u32,
}

/// Capability entries kept per recording slot, and per adopted cgroup.
pub const CAPS_PER_SLOT: u32 = 512;
pub const CAPS_PER_ADOPTED: u32 = 64;

/// `PrivilegedExec` flags: the exec changed the task's credentials (the kernel's secure-exec
/// flag: a setuid or setgid program, file capabilities, an LSM transition).
pub const EXEC_GAINED: u32 = 1;
/// The program is setuid or setgid, and no_new_privs kept the exec from changing the task's
/// ids.
pub const EXEC_SETID_STOPPED: u32 = 2;
/// Privilege-gaining execs kept per recording slot, and per adopted cgroup.
pub const PRIVILEGED_EXECS_PER_SLOT: u32 = 64;
pub const PRIVILEGED_EXECS_PER_ADOPTED: u32 = 8;

/// A write refused because the filesystem is read-only (EROFS), while verifying: by path (as
/// the call named it; empty when the call takes no path).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ReadOnlyWrite {
    pub count: u32,
    /// The native syscall of the first such write.
    pub nr: u32,
    pub comm: [u8; 16],
}

/// EROFS entries kept per recording slot.
pub const READ_ONLY_WRITES_PER_SLOT: u32 = 64;
/// The kernel's EROFS.
pub const EROFS: u32 = 30;

/// The last [`CGROUP_KEY_LEN`] bytes of a cgroup's path, as matched when the cgroup is created.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CgroupKey {
    pub bytes: [u8; CGROUP_KEY_LEN],
}

/// The bucket of cgroup `id` in the watched-cgroup filter.
#[inline(always)]
pub fn watch_bucket(id: u64) -> u32 {
    (id as u32) & (WATCH_BUCKETS - 1)
}

/// Index of a syscall number of an ABI in a [`SyscallCounts`] table.
#[inline(always)]
pub fn table_index(abi: usize, nr: u64) -> usize {
    if nr < NR_PER_ABI as u64 && abi < ABI_COUNT {
        abi * NR_PER_ABI + nr as usize
    } else {
        OUT_OF_RANGE
    }
}

/// Checks that a type both sides share is exactly its fields laid end to end (so both agree
/// on its size and no padding byte carries garbage across), and lets userspace read it from maps.
macro_rules! shared {
    ($ty:ty: $($field:ty),+) => {
        const _: () = assert!(size_of::<$ty>() == 0 $(+ size_of::<$field>())+);
        // SAFETY: #[repr(C)], integer and integer-array fields only, no padding (asserted just
        // above): every byte pattern of its size is a valid value.
        #[cfg(feature = "user")]
        unsafe impl aya::Pod for $ty {}
    };
}
shared!(Watch: u32, u32);
shared!(LastCgroup: u64, u64, u32, u32, Watch);
shared!(FirstKey: u32, u32);
shared!(FirstSeen: [u8; 16], u32, u32);
shared!(SyscallCounts: [u64; TABLE_LEN]);
shared!(SlotStats: u64, u64);
shared!(ExecKey: u32, [u8; EXEC_PATH_LEN]);
shared!(CgroupKey: [u8; CGROUP_KEY_LEN]);
shared!(CapKey: u32, u16, u16, u32);
shared!(CapSeen: u64, [u8; 16], u32, u32);
shared!(ReadOnlyWrite: u32, u32, [u8; 16]);
shared!(ArgKey: u32, u32, [u64; 2]);
shared!(ArgCounts: [u32; 2 * ARG_KINDS], [u32; 2 * ARG_KINDS]);
shared!(RuntimeCounts: [u64; NR_PER_ABI]);
shared!(AdoptedTable: SyscallCounts, RuntimeCounts, ArgCounts);
