//! The recorder: loads and attaches the eBPF programs once, watches cgroups, takes snapshots.
//!
//! One [`Recorder`] serves many concurrent recordings; each gets a slot of its own in the
//! kernel's maps, so two watched cgroups never mix. Dropping the recorder detaches everything.
use std::{
    collections::BTreeMap,
    sync::{Mutex, MutexGuard},
};

use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, HashMap, MapData, PerCpuArray, PerCpuValues},
    programs::{RawTracePoint, TracePoint, raw_trace_point::RawTracePointLinkId},
};
use tracer_common::{
    ARG_DENIED, ARG_ENTRIES_PER_SLOT, ARG_KINDS, AdoptedTable, ArgCounts, ArgKey, CAP_DENIED,
    CAP_GRANTED, CAP_LOW_PORT, CAPS_PER_ADOPTED, CAPS_PER_SLOT, CGROUP_KEY_LEN, CONFIG_ADOPT,
    CONFIG_ADOPT_LOST, CONFIG_ALL_SYSCALLS, CONFIG_PENDING_NAMES, CONFIG_RUNTIME_LOST,
    CONFIG_WATCH_GEN, CapKey, CapSeen, CgroupKey, EXEC_GAINED, EXEC_PATH_LEN, EXEC_SETID_STOPPED,
    EXECS_PER_ADOPTED, EXECS_PER_SLOT, ExecKey, FIRST_DENIED_BASE, FIRST_PER_ADOPTED,
    FIRST_PER_SLOT, FIRST_RUNTIME_BASE, FirstKey, FirstSeen, LastCgroup, MAX_NOAUDIT_CALLERS,
    MAX_PENDING_NAMES, MAX_RUNTIME_TASKS, MAX_SLOTS, MAX_WATCHED_CGROUPS, NR_PER_ABI, OUT_OF_RANGE,
    PRIVILEGED_EXECS_PER_ADOPTED, PRIVILEGED_EXECS_PER_SLOT, READ_ONLY_WRITES_PER_SLOT,
    RUNTIME_BUCKETS, ReadOnlyWrite, RuntimeCounts, SlotStats, SyscallCounts, TABLE_LEN,
    WATCH_ADOPTED, WATCH_ALL_SYSCALLS, WATCH_BUCKETS, WATCH_STRICT_ARGS, Watch, adopted_slot,
    watch_bucket,
};

use crate::{
    kbtf,
    names::{Abi, SyscallId},
    privileges,
    seccomp::{ArgValues, Observation},
    tracefs,
};

/// Why the recorder could not load, attach, watch or read.
#[derive(Debug, thiserror::Error)]
pub enum RecorderError {
    #[error(transparent)]
    Privileges(#[from] privileges::MissingPrivileges),
    #[error(transparent)]
    Tracefs(#[from] tracefs::TracefsError),
    #[error(transparent)]
    KernelBtf(#[from] kbtf::KernelBtfError),
    #[error("loading the eBPF recorder failed: {0}")]
    Load(#[from] aya::EbpfError),
    #[error("eBPF program {program}")]
    Program {
        program: &'static str,
        source: aya::programs::ProgramError,
    },
    #[error("eBPF program {program} is not in the embedded object")]
    ProgramMissing { program: &'static str },
    #[error("eBPF map {map}: {source}")]
    Map {
        map: &'static str,
        source: aya::maps::MapError,
    },
    #[error("cgroup name {name:?} must be at least {min} bytes, without '/'")]
    CgroupName { name: String, min: usize },
    #[error(transparent)]
    Cgroup(#[from] crate::cgroup::CgroupError),
    #[error(
        "this kernel has no capability:cap_capable tracepoint (Linux 6.14 and later have it): the capabilities a workload uses can't be learned here"
    )]
    NoCapabilityEvent,
    #[error("all {0} recording slots are in use")]
    SlotsExhausted(u32),
    #[error("{what}: {source}")]
    Io {
        what: &'static str,
        source: std::io::Error,
    },
}

type Result<T, E = RecorderError> = std::result::Result<T, E>;

static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/tracer"));

/// Which syscalls of a watched cgroup count.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Mode {
    /// Only those a seccomp filter governs: from a successful filter install on.
    #[default]
    UnderFilter,
    /// Everything any task in the cgroup does, the runtime's own setup included.
    AllSyscalls,
    /// As `UnderFilter`, and calls that return the verification errno are counted as denials.
    Verify,
}

/// A recording in progress: the slot its results go to.
#[derive(Debug)]
pub struct Recording {
    slot: u32,
    mode: Mode,
    strict_args: bool,
    pending_names: Vec<CgroupKey>,
}

/// What a recording has seen so far.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub syscalls: BTreeMap<SyscallId, Observed>,
    /// Calls with numbers no table covers (negative, or beyond the table).
    pub out_of_range: u64,
    /// Syscalls denied with the verification errno, per syscall, with the first program denied.
    pub denied: BTreeMap<SyscallId, Observed>,
    pub out_of_range_denied: u64,
    /// First-program records that did not fit (counts are still exact).
    pub dropped_first: u64,
    /// cgroup ids the recording watches.
    pub cgroups: Vec<u64>,
    /// Argument values of the syscalls whose arguments are learned (x86_64 numbers).
    pub args: BTreeMap<SyscallId, ArgValues>,
    /// Argument values of the calls denied while verifying.
    pub denied_args: BTreeMap<SyscallId, ArgValues>,
    /// Native calls the container runtime made under the filter before it handed over to the
    /// workload (the exec of the container's process), by number: not the workload's.
    pub runtime: BTreeMap<u32, Observed>,
    /// The runtime's calls denied while verifying (they keep the container from starting).
    pub runtime_denied: BTreeMap<u32, Observed>,
    /// Runtime tasks the kernel could not mark (its table was full) while this recorded: their
    /// calls may be counted as the workload's.
    pub runtime_lost: u32,
    /// The programs the workload exec'd (paths as the exec named them), with how often.
    pub programs: BTreeMap<String, u64>,
    /// Execs whose program found no room in the kernel's map: `programs` misses some.
    pub programs_lost: u64,
    /// The workload's capability checks (against its own credentials, probes left out) and
    /// binds below port 1024, by capability, outcome and syscall.
    pub capabilities: BTreeMap<CapCheck, CapObserved>,
    /// The workload's execs that changed its credentials, or whose setuid or setgid bit
    /// no_new_privs ignored, by program.
    pub privileged_execs: BTreeMap<String, PrivilegedExec>,
    /// While verifying: writes refused by a read-only filesystem (EROFS), by path as the call
    /// named it (empty: a call that names none).
    pub read_only_writes: BTreeMap<String, RefusedWrite>,
}

/// One kind of capability check a workload made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CapCheck {
    /// The capability's number (`CAP_CHOWN` = 0).
    pub cap: u16,
    pub outcome: CapOutcome,
    /// The native syscall it happened in (`u32::MAX`: none); for [`CapOutcome::LowPort`],
    /// the port.
    pub nr: u32,
}

/// How often one kind of capability check happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CapObserved {
    pub count: u64,
    /// The program (comm) that made it first.
    pub program: String,
    /// The first such check came through a kernel function that only probes
    /// (CAP_OPT_NOAUDIT): not a need, whatever it found.
    pub probe: bool,
}

/// What a capability check found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CapOutcome {
    /// The capability was in the task's effective set.
    Granted,
    Denied,
    /// Not a check: a bind() to this port below 1024, which needs NET_BIND_SERVICE where the
    /// container's unprivileged ports start at 1024.
    LowPort,
}

/// What an exec of a privileged program did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PrivilegedExec {
    /// It changed the task's credentials (setuid, setgid, file capabilities).
    pub gained: bool,
    /// Its setuid or setgid bit was ignored under no_new_privs.
    pub setid_stopped: bool,
}

/// Writes to one path refused by a read-only filesystem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefusedWrite {
    pub count: u64,
    /// The native syscall of the first.
    pub nr: u32,
    pub program: String,
}

impl Snapshot {
    /// Adds what `other` saw (a later run): counts add up, first programs stay the earliest.
    pub fn merge(&mut self, other: &Snapshot) {
        for (map, from) in [
            (&mut self.syscalls, &other.syscalls),
            (&mut self.denied, &other.denied),
        ] {
            merge_observed(map, from);
        }
        for (map, from) in [
            (&mut self.runtime, &other.runtime),
            (&mut self.runtime_denied, &other.runtime_denied),
        ] {
            merge_observed(map, from);
        }
        self.runtime_lost = self.runtime_lost.max(other.runtime_lost);
        self.out_of_range += other.out_of_range;
        self.out_of_range_denied += other.out_of_range_denied;
        self.dropped_first += other.dropped_first;
        for (path, n) in &other.programs {
            *self.programs.entry(path.clone()).or_default() += n;
        }
        self.programs_lost += other.programs_lost;
        for (check, seen) in &other.capabilities {
            self.capabilities
                .entry(*check)
                .and_modify(|mine| {
                    mine.count += seen.count;
                    mine.probe &= seen.probe;
                })
                .or_insert_with(|| seen.clone());
        }
        for (path, exec) in &other.privileged_execs {
            let mine = self.privileged_execs.entry(path.clone()).or_default();
            mine.gained |= exec.gained;
            mine.setid_stopped |= exec.setid_stopped;
        }
        for (path, write) in &other.read_only_writes {
            self.read_only_writes
                .entry(path.clone())
                .and_modify(|w| w.count += write.count)
                .or_insert_with(|| write.clone());
        }
        self.cgroups.extend(other.cgroups.iter().copied());
        for (map, from) in [
            (&mut self.args, &other.args),
            (&mut self.denied_args, &other.denied_args),
        ] {
            for (id, values) in from {
                let mine = map.entry(*id).or_default();
                mine.tuples.extend(values.tuples.iter().copied());
                mine.overflowed |= values.overflowed;
            }
        }
    }

    /// What the profile is learned from: the workload's calls and the runtime's (the container
    /// can't start without the latter).
    pub fn observation(&self) -> Observation {
        let mut calls: BTreeMap<SyscallId, u64> =
            self.syscalls.iter().map(|(id, o)| (*id, o.count)).collect();
        for (nr, o) in &self.runtime {
            *calls
                .entry(SyscallId {
                    abi: Abi::X86_64,
                    nr: *nr,
                })
                .or_default() += o.count;
        }
        Observation {
            calls,
            args: self.args.clone(),
            required: Vec::new(),
            ceiling: Default::default(),
        }
    }

    /// Nothing was recorded: no task of the watched cgroups ran under a seccomp filter (or at
    /// all, with `Mode::AllSyscalls`).
    pub fn is_empty(&self) -> bool {
        self.syscalls.is_empty() && self.out_of_range == 0 && self.runtime.is_empty()
    }

    pub fn total_calls(&self) -> u64 {
        self.syscalls.values().map(|o| o.count).sum::<u64>() + self.out_of_range
    }
}

/// Adds the counts of `from` to `into`; a first program already there stays.
fn merge_observed<K: Ord + Copy>(into: &mut BTreeMap<K, Observed>, from: &BTreeMap<K, Observed>) {
    for (key, obs) in from {
        into.entry(*key)
            .or_insert_with(|| Observed {
                count: 0,
                first: obs.first.clone(),
            })
            .count += obs.count;
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    pub count: u64,
    /// The program (comm) that made this syscall first, with its pid.
    pub first: Option<FirstProgram>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FirstProgram {
    pub comm: String,
    pub pid: u32,
}

struct Maps {
    watched: HashMap<MapData, u64, Watch>,
    pending: HashMap<MapData, CgroupKey, Watch>,
    counts: PerCpuArray<MapData, SyscallCounts>,
    denied: Array<MapData, SyscallCounts>,
    runtime: Array<MapData, RuntimeCounts>,
    runtime_denied: Array<MapData, RuntimeCounts>,
    watch_bucket: Array<MapData, u32>,
    first: HashMap<MapData, FirstKey, FirstSeen>,
    stats: PerCpuArray<MapData, SlotStats>,
    args: HashMap<MapData, ArgKey, u32>,
    execs: HashMap<MapData, ExecKey, u64>,
    arg_counts: PerCpuArray<MapData, ArgCounts>,
    adopted: HashMap<MapData, u64, AdoptedTable>,
    adopted_names: HashMap<MapData, u64, CgroupKey>,
    config: Array<MapData, u32>,
    caps: HashMap<MapData, CapKey, CapSeen>,
    noaudit_callers: Array<MapData, [u64; 2]>,
    privileged_execs: HashMap<MapData, ExecKey, u32>,
    read_only_writes: HashMap<MapData, ExecKey, ReadOnlyWrite>,
    /// Whether the capability checks' program is attached (on demand: see
    /// [`Recorder::record_capabilities`]).
    capabilities_attached: bool,
    /// Which slots are in use; as many as the maps were sized for.
    slots: Vec<bool>,
    /// The programs; sys_exit is attached while a `Verify` recording is open.
    ebpf: Ebpf,
    exit_link: Option<RawTracePointLinkId>,
    verifying: u32,
}

/// The loaded and attached eBPF recorder.
pub struct Recorder {
    maps: Mutex<Maps>,
}

fn map_err(map: &'static str) -> impl FnOnce(aya::maps::MapError) -> RecorderError {
    move |source| RecorderError::Map { map, source }
}

fn take<T>(ebpf: &mut Ebpf, name: &'static str) -> Result<T>
where
    T: TryFrom<aya::maps::Map, Error = aya::maps::MapError>,
{
    let map = ebpf.take_map(name).ok_or(RecorderError::Map {
        map: name,
        source: aya::maps::MapError::InvalidName {
            name: name.to_string(),
        },
    })?;
    T::try_from(map).map_err(map_err(name))
}

/// Bytes of kernel memory the maps take when sized for `slots` recordings on `cpus` CPUs:
/// per-CPU arrays hold a copy per CPU, hash maps are preallocated with the kernel's element
/// header (struct htab_elem, 48 bytes on x86_64) before key and value, each rounded up to 8.
pub fn kernel_map_bytes(slots: u32, cpus: u32) -> u64 {
    let round = |n: usize| n.div_ceil(8) * 8;
    let hash = |entries: u32, key: usize, value: usize| {
        u64::from(entries) * (48 + round(key) + round(value)) as u64
    };
    let per_cpu =
        size_of::<SyscallCounts>() + size_of::<SlotStats>() + size_of::<tracer_common::ArgCounts>();
    let shared = size_of::<SyscallCounts>() + 2 * size_of::<RuntimeCounts>();
    u64::from(slots) * (u64::from(cpus) * per_cpu as u64 + shared as u64)
        + hash(
            first_entries(slots),
            size_of::<FirstKey>(),
            size_of::<FirstSeen>(),
        )
        + hash(slots * ARG_ENTRIES_PER_SLOT, size_of::<ArgKey>(), 4)
        + hash(slots * EXECS_PER_SLOT, size_of::<ExecKey>(), 8)
        + hash(MAX_WATCHED_CGROUPS, 8, size_of::<Watch>())
        + hash(
            MAX_PENDING_NAMES,
            size_of::<CgroupKey>(),
            size_of::<Watch>(),
        )
        + hash(MAX_RUNTIME_TASKS, 4, 8)
        // Array elements are rounded up to 8 bytes each.
        + u64::from(WATCH_BUCKETS) * 8
        + u64::from(RUNTIME_BUCKETS) * 8
        + u64::from(cpus) * size_of::<LastCgroup>() as u64
        // Without adoption: one entry each of the adopted-cgroup maps, and the zeroed table.
        + hash(1, 8, size_of::<AdoptedTable>())
        + hash(1, 8, size_of::<CgroupKey>())
        + size_of::<AdoptedTable>() as u64
}

/// First-program entries: every index of a slot, observed and denied.
fn first_entries(slots: u32) -> u32 {
    FIRST_PER_SLOT * slots
}

impl Recorder {
    /// What loading the recorder needs that a process with `creds` lacks: the BPF
    /// capabilities, and mounting and reading tracefs.
    pub fn missing_privileges(creds: &privileges::Creds) -> Vec<privileges::Missing> {
        let mut missing: Vec<_> = creds.missing_for_bpf().into_iter().collect();
        missing.extend(tracefs::missing_privileges(creds));
        missing
    }

    /// Checks, before anything is loaded or created, that this process has what loading the
    /// recorder needs and `more` (the Docker socket, say): everything missing is named at once.
    pub fn require_privileges(more: Option<privileges::Missing>) -> Result<()> {
        if let Some(creds) = privileges::Creds::current() {
            let mut missing = Self::missing_privileges(&creds);
            missing.extend(more);
            privileges::require(Some(creds), missing)?;
        }
        Ok(())
    }

    /// Checks privileges and tracefs, loads the programs and attaches them, with room for one
    /// recording at a time (what every command needs).
    pub fn load() -> Result<Self> {
        Self::load_for(1)
    }

    /// As [`Recorder::load`], with room for `slots` recordings at once (at most
    /// [`MAX_SLOTS`]): the per-recording maps are sized for exactly that.
    pub fn load_for(slots: u32) -> Result<Self> {
        Self::load_with(slots, 0)
    }

    /// As [`Recorder::load_for`], with room for `adopted` container cgroups adopted by the
    /// kernel side on creation (see [`Recorder::adopt_containers`]).
    pub fn load_with(slots: u32, adopted: u32) -> Result<Self> {
        let slots = slots.clamp(1, MAX_SLOTS);
        let adopted = adopted.min(tracer_common::MAX_ADOPTED);
        let creds = privileges::Creds::current();
        privileges::require(
            creds,
            creds
                .map(|c| Self::missing_privileges(&c))
                .unwrap_or_default(),
        )?;
        tracefs::ensure_mounted()?;
        let mkdir_root = tracefs::field_offset("cgroup", "cgroup_mkdir", "root")?;
        let mkdir_id = tracefs::field_offset("cgroup", "cgroup_mkdir", "id")?;
        let mkdir_path = tracefs::field_offset("cgroup", "cgroup_mkdir", "path")?;
        let task = kbtf::task_offsets()?;
        let attach_root = tracefs::field_offset("cgroup", "cgroup_attach_task", "dst_root")?;
        let attach_id = tracefs::field_offset("cgroup", "cgroup_attach_task", "dst_id")?;
        let attach_pid = tracefs::field_offset("cgroup", "cgroup_attach_task", "pid")?;
        let fork_child = tracefs::field_offset("sched", "sched_process_fork", "child_pid")?;
        let exec_old_pid = tracefs::field_offset("sched", "sched_process_exec", "old_pid")?;
        let exec_filename = tracefs::field_offset("sched", "sched_process_exec", "filename")?;
        // The programs carry no CO-RE relocations (the kernel offsets they read come from the
        // small scan above), so the loader never reads the kernel's BTF.
        let mut ebpf = EbpfLoader::new()
            .map_max_entries("COUNTS", slots)
            .map_max_entries("DENIED", slots)
            .map_max_entries("RUNTIME", slots)
            .map_max_entries("RUNTIME_DENIED", slots)
            .map_max_entries("STATS", slots)
            .map_max_entries("ARG_COUNTS", slots)
            .map_max_entries("FIRST", first_entries(slots) + adopted * FIRST_PER_ADOPTED)
            .map_max_entries("ARGS", (slots + adopted) * ARG_ENTRIES_PER_SLOT)
            .map_max_entries(
                "EXECS",
                slots * EXECS_PER_SLOT + adopted * EXECS_PER_ADOPTED,
            )
            .map_max_entries("ADOPTED", adopted.max(1))
            .map_max_entries("ADOPTED_NAMES", adopted.max(1))
            .override_global("SECCOMP_MODE_OFFSET", &task.seccomp_mode, true)
            .override_global("THREAD_STATUS_OFFSET", &task.thread_status, true)
            .override_global("TASK_PID_OFFSET", &task.pid, true)
            .override_global("TASK_TGID_OFFSET", &task.tgid, true)
            .override_global("TASK_CGROUPS_OFFSET", &task.cgroups, true)
            .override_global("CSS_SET_DFL_CGRP_OFFSET", &task.dfl_cgrp, true)
            .override_global("CGROUP_KN_OFFSET", &task.kn, true)
            .override_global("KERNFS_NODE_ID_OFFSET", &task.kn_id, true)
            .override_global("TASK_NSPROXY_OFFSET", &task.nsproxy, true)
            .override_global("NSPROXY_MNT_NS_OFFSET", &task.mnt_ns, true)
            .override_global("MNT_NS_INUM_OFFSET", &task.mnt_ns_inum, true)
            .override_global("ATTACH_ROOT_OFFSET", &attach_root, true)
            .override_global("ATTACH_ID_OFFSET", &attach_id, true)
            .override_global("ATTACH_PID_OFFSET", &attach_pid, true)
            .override_global("FORK_CHILD_OFFSET", &fork_child, true)
            .override_global("EXEC_OLD_PID_OFFSET", &exec_old_pid, true)
            .override_global("EXEC_FILENAME_OFFSET", &exec_filename, true)
            .override_global("MKDIR_ROOT_OFFSET", &mkdir_root, true)
            .override_global("MKDIR_ID_OFFSET", &mkdir_id, true)
            .override_global("MKDIR_PATH_OFFSET", &mkdir_path, true)
            .override_global("TASK_REAL_CRED_OFFSET", &task.real_cred, true)
            .override_global("TASK_ATOMIC_FLAGS_OFFSET", &task.atomic_flags, true)
            .override_global("CRED_CAP_BSET_OFFSET", &task.cap_bset, true)
            .override_global("CRED_EUID_OFFSET", &task.euid, true)
            .override_global("CRED_EGID_OFFSET", &task.egid, true)
            .override_global("BPRM_FILE_OFFSET", &task.bprm_file, true)
            .override_global("BPRM_FILENAME_OFFSET", &task.bprm_filename, true)
            .override_global("BPRM_SECUREEXEC_BIT", &task.bprm_secureexec_bit, true)
            .override_global("FILE_INODE_OFFSET", &task.f_inode, true)
            .override_global("INODE_MODE_OFFSET", &task.i_mode, true)
            .override_global("INODE_UID_OFFSET", &task.i_uid, true)
            .override_global("INODE_GID_OFFSET", &task.i_gid, true)
            .map_max_entries("CAPS", slots * CAPS_PER_SLOT + adopted * CAPS_PER_ADOPTED)
            .map_max_entries(
                "PRIVILEGED_EXECS",
                slots * PRIVILEGED_EXECS_PER_SLOT + adopted * PRIVILEGED_EXECS_PER_ADOPTED,
            )
            .map_max_entries("READ_ONLY_WRITES", slots * READ_ONLY_WRITES_PER_SLOT)
            .load(OBJECT)?;
        // The runtime's tasks are marked before any of them can enter a watched cgroup.
        for (category, name) in [
            ("sched", "sched_process_exit"),
            ("sched", "sched_process_exec"),
            ("sched", "sched_process_fork"),
            ("cgroup", "cgroup_attach_task"),
            ("cgroup", "cgroup_mkdir"),
        ] {
            let prog: &mut TracePoint = program(&mut ebpf, name)?;
            prog.load().map_err(prog_err(name))?;
            prog.attach(category, name).map_err(prog_err(name))?;
        }
        for name in ["sys_exit", "sys_enter", "privileged_exec"] {
            let prog: &mut RawTracePoint = program(&mut ebpf, name)?;
            prog.load().map_err(prog_err(name))?;
        }
        let exec: &mut RawTracePoint = program(&mut ebpf, "privileged_exec")?;
        exec.attach("sched_process_exec")
            .map_err(prog_err("privileged_exec"))?;
        let enter: &mut RawTracePoint = program(&mut ebpf, "sys_enter")?;
        enter.attach("sys_enter").map_err(prog_err("sys_enter"))?;
        // After the programs are loaded: the logger takes the log map out of `ebpf`.
        if let Err(err) = aya_log::EbpfLogger::init(&mut ebpf).map(spawn_log_reader) {
            log::debug!("kernel-side log unavailable: {err}");
        }
        let maps = Maps {
            watched: take(&mut ebpf, "WATCHED")?,
            pending: take(&mut ebpf, "PENDING")?,
            counts: take(&mut ebpf, "COUNTS")?,
            denied: take(&mut ebpf, "DENIED")?,
            runtime: take(&mut ebpf, "RUNTIME")?,
            runtime_denied: take(&mut ebpf, "RUNTIME_DENIED")?,
            watch_bucket: take(&mut ebpf, "WATCH_BUCKET")?,
            first: take(&mut ebpf, "FIRST")?,
            stats: take(&mut ebpf, "STATS")?,
            args: take(&mut ebpf, "ARGS")?,
            execs: take(&mut ebpf, "EXECS")?,
            arg_counts: take(&mut ebpf, "ARG_COUNTS")?,
            adopted: take(&mut ebpf, "ADOPTED")?,
            adopted_names: take(&mut ebpf, "ADOPTED_NAMES")?,
            config: take(&mut ebpf, "CONFIG")?,
            caps: take(&mut ebpf, "CAPS")?,
            noaudit_callers: take(&mut ebpf, "NOAUDIT_CALLERS")?,
            privileged_execs: take(&mut ebpf, "PRIVILEGED_EXECS")?,
            read_only_writes: take(&mut ebpf, "READ_ONLY_WRITES")?,
            capabilities_attached: false,
            slots: vec![false; slots as usize],
            ebpf,
            exit_link: None,
            verifying: 0,
        };
        Ok(Recorder {
            maps: Mutex::new(maps),
        })
    }

    fn maps(&self) -> MutexGuard<'_, Maps> {
        // A panic elsewhere while holding the lock leaves the maps usable.
        self.maps.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts a recording of the cgroup with v2 id `cgroup_id`.
    pub fn watch_cgroup(&self, cgroup_id: u64, mode: Mode, strict_args: bool) -> Result<Recording> {
        let mut maps = self.maps();
        let recording = maps.open(mode, strict_args)?;
        let watch = watch_value(&recording);
        if let Err(err) = maps.watch(cgroup_id, &watch) {
            maps.close(&recording);
            return Err(err);
        }
        Ok(recording)
    }

    /// Starts a recording of the cgroup whose directory will be created with one of `names`
    /// (the last path component, at least 64 bytes: a container id is): watched by the kernel
    /// the moment it appears, before any process can enter it.
    pub fn watch_cgroup_named(
        &self,
        names: &[&str],
        mode: Mode,
        strict_args: bool,
    ) -> Result<Recording> {
        let mut maps = self.maps();
        let mut recording = maps.open(mode, strict_args)?;
        let watch = watch_value(&recording);
        for name in names {
            let key = cgroup_key(name)?;
            if let Err(err) = maps.pending.insert(&key, &watch, 0) {
                maps.close(&recording);
                return Err(map_err("PENDING")(err));
            }
            recording.pending_names.push(key);
            maps.bump(CONFIG_PENDING_NAMES, 1);
        }
        Ok(recording)
    }

    /// Adds the cgroup with v2 id `cgroup_id` to a recording in progress.
    pub fn watch_more(&self, recording: &Recording, cgroup_id: u64) -> Result<()> {
        self.maps().watch(cgroup_id, &watch_value(recording))
    }

    /// Has the kernel side adopt every container cgroup created from now on (one named by a
    /// 64-hex-digit container id), each counted on its own from its creation, until called
    /// with `false`. Userspace then keeps or forgets each one.
    pub fn adopt_containers(&self, on: bool) {
        self.maps().bump(CONFIG_ADOPT, if on { 1 } else { -1 });
    }

    /// The cgroups adopted so far: id and name (the last 64 bytes of the cgroup's name, a
    /// container's id).
    pub fn adopted(&self) -> Vec<(u64, String)> {
        let maps = self.maps();
        maps.watched
            .iter()
            .filter_map(|e| e.ok())
            .filter(|(_, w)| w.flags & WATCH_ADOPTED != 0)
            .map(|(id, _)| {
                let name = maps
                    .adopted_names
                    .get(&id, 0)
                    .map(|k| String::from_utf8_lossy(&k.bytes).into_owned())
                    .unwrap_or_default();
                (id, name)
            })
            .collect()
    }

    /// Adopts the cgroup of running container `name` (its id) as the kernel side adopts a new
    /// container's (its calls count from now on, all as the workload's); returns its id.
    pub fn adopt_running(&self, name: &str) -> Result<u64> {
        let id = crate::cgroup::id_of(&crate::cgroup::of_container(name)?)?;
        let mut key = CgroupKey {
            bytes: [0; CGROUP_KEY_LEN],
        };
        let tail = &name.as_bytes()[name.len().saturating_sub(CGROUP_KEY_LEN)..];
        key.bytes[..tail.len()].copy_from_slice(tail);
        // SAFETY: AdoptedTable is plain counters (integers only), for which all zeroes is valid.
        let zero: Box<AdoptedTable> = unsafe { Box::new(std::mem::zeroed()) };
        let mut maps = self.maps();
        maps.adopted
            .insert(&id, &*zero, 0)
            .map_err(map_err("ADOPTED"))?;
        maps.adopted_names
            .insert(&id, &key, 0)
            .map_err(map_err("ADOPTED_NAMES"))?;
        maps.watch(
            id,
            &Watch {
                slot: adopted_slot(id),
                flags: WATCH_ADOPTED,
            },
        )?;
        Ok(id)
    }

    /// Records the capability checks of every recording's workload from now on (the
    /// `capability:cap_capable` tracepoint, Linux 6.14 and later; attached only by the
    /// commands that learn capabilities, since every check on the host then runs it).
    pub fn record_capabilities(&self) -> Result<()> {
        let mut maps = self.maps();
        if maps.capabilities_attached {
            return Ok(());
        }
        if !tracefs::has_event("capability", "cap_capable") {
            return Err(RecorderError::NoCapabilityEvent);
        }
        for (i, range) in crate::kallsyms::noaudit_callers()
            .into_iter()
            .take(MAX_NOAUDIT_CALLERS as usize)
            .enumerate()
        {
            maps.noaudit_callers
                .set(i as u32, &range, 0)
                .map_err(map_err("NOAUDIT_CALLERS"))?;
        }
        let prog: &mut RawTracePoint = program(&mut maps.ebpf, "cap_capable")?;
        prog.load().map_err(prog_err("cap_capable"))?;
        prog.attach("cap_capable")
            .map_err(prog_err("cap_capable"))?;
        maps.capabilities_attached = true;
        Ok(())
    }

    /// Container cgroups the kernel side could not adopt since loading (its maps were full):
    /// their containers went unrecorded.
    pub fn adoptions_lost(&self) -> u32 {
        self.maps().config.get(&CONFIG_ADOPT_LOST, 0).unwrap_or(0)
    }

    /// What the adopted cgroup `id` has recorded so far.
    pub fn snapshot_adopted(&self, id: u64) -> Result<Snapshot> {
        let maps = self.maps();
        let table = maps.adopted.get(&id, 0).map_err(map_err("ADOPTED"))?;
        let mut snap = maps.assemble(
            adopted_slot(id),
            Tables::of_adopted(&table),
            std::iter::once(&table.args),
        )?;
        snap.cgroups = vec![id];
        Ok(snap)
    }

    /// Stops recording the adopted cgroup `id` and frees what it used.
    pub fn forget_adopted(&self, id: u64) {
        let mut maps = self.maps();
        let _ = maps.watched.remove(&id);
        maps.bump_generation();
        if let Ok(table) = maps.adopted.get(&id, 0) {
            maps.clear_tagged(adopted_slot(id), &Tables::of_adopted(&table));
        }
        let _ = maps.adopted.remove(&id);
        let _ = maps.adopted_names.remove(&id);
    }

    /// The cgroup ids the recording watches so far.
    pub fn cgroups(&self, recording: &Recording) -> Vec<u64> {
        self.maps().cgroups_of(recording.slot)
    }

    /// Everything the recording has seen so far.
    pub fn snapshot(&self, recording: &Recording) -> Result<Snapshot> {
        self.maps().snapshot(recording.slot)
    }

    /// Ends a recording, frees its slot and returns what it saw.
    pub fn finish(&self, recording: Recording) -> Result<Snapshot> {
        let mut maps = self.maps();
        let snapshot = maps.snapshot(recording.slot);
        maps.close(&recording);
        snapshot
    }
}

fn watch_value(recording: &Recording) -> Watch {
    let strict = if recording.strict_args {
        WATCH_STRICT_ARGS
    } else {
        0
    };
    Watch {
        slot: recording.slot,
        flags: strict
            | match recording.mode {
                Mode::AllSyscalls => WATCH_ALL_SYSCALLS,
                Mode::UnderFilter | Mode::Verify => 0,
            },
    }
}

/// The kernel-side key of a cgroup name: its last [`CGROUP_KEY_LEN`] bytes.
fn cgroup_key(name: &str) -> Result<CgroupKey> {
    let bytes = name.as_bytes();
    if bytes.len() < CGROUP_KEY_LEN || bytes.contains(&b'/') {
        return Err(RecorderError::CgroupName {
            name: name.to_string(),
            min: CGROUP_KEY_LEN,
        });
    }
    let mut key = CgroupKey {
        bytes: [0; CGROUP_KEY_LEN],
    };
    key.bytes
        .copy_from_slice(&bytes[bytes.len() - CGROUP_KEY_LEN..]);
    Ok(key)
}

fn program<'a, T>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut T>
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program, Error = aya::programs::ProgramError>,
{
    let prog = ebpf
        .program_mut(name)
        .ok_or(RecorderError::ProgramMissing { program: name })?;
    prog.try_into().map_err(prog_err(name))
}

fn prog_err(program: &'static str) -> impl FnOnce(aya::programs::ProgramError) -> RecorderError {
    move |source| RecorderError::Program { program, source }
}

fn spawn_log_reader(logger: aya_log::EbpfLogger<&'static dyn log::Log>) {
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        return;
    };
    handle.spawn(async move {
        // SAFETY: the logger owns its fd, and the AsyncFd owns the logger until both drop.
        let registered = unsafe {
            tokio::io::unix::AsyncFd::register_with_interest(logger, tokio::io::Interest::READABLE)
        };
        let Ok(mut fd) = registered else {
            return;
        };
        while let Ok(mut guard) = fd.readable_mut().await {
            guard.get_inner_mut().flush();
            guard.clear_ready();
        }
    });
}

/// The counters a snapshot is assembled from.
struct Tables<'a> {
    counts: &'a [u64],
    denied: &'a [u64],
    runtime: &'a [u64],
    runtime_denied: &'a [u64],
}

/// An adopted cgroup never verifies: no denials.
const NO_DENIALS: [u64; TABLE_LEN] = [0; TABLE_LEN];

impl<'a> Tables<'a> {
    fn of_adopted(table: &'a AdoptedTable) -> Self {
        Tables {
            counts: &table.counts.counts,
            denied: &NO_DENIALS,
            runtime: &table.runtime.counts,
            runtime_denied: &NO_DENIALS[..NR_PER_ABI],
        }
    }

    /// The first-program indexes (see [`FirstKey`]) these counters can have entries under:
    /// the kernel side remembers a first program only for what it counts, so these are looked
    /// up directly instead of walking the whole map for every snapshot.
    fn first_indexes(&self) -> impl Iterator<Item = u32> + '_ {
        let counted = |from: &'a [u64], base: u32| {
            from.iter()
                .enumerate()
                .filter(|(_, count)| **count > 0)
                .map(move |(i, _)| base + i as u32)
        };
        counted(self.counts, 0)
            .chain(counted(self.denied, FIRST_DENIED_BASE))
            .chain(counted(self.runtime, FIRST_RUNTIME_BASE))
            .chain(counted(
                self.runtime_denied,
                FIRST_DENIED_BASE + FIRST_RUNTIME_BASE,
            ))
    }
}

/// A slot's counters, summed over the CPUs.
struct SlotTables {
    counts: Vec<u64>,
    denied: SyscallCounts,
    runtime: RuntimeCounts,
    runtime_denied: RuntimeCounts,
}

impl SlotTables {
    fn tables(&self) -> Tables<'_> {
        Tables {
            counts: &self.counts,
            denied: &self.denied.counts,
            runtime: &self.runtime.counts,
            runtime_denied: &self.runtime_denied.counts,
        }
    }
}

impl Maps {
    /// Watches cgroup `id`: its filter bucket first, so the kernel side never skips it, and
    /// then a new generation, so that no CPU keeps an answer found before.
    fn watch(&mut self, id: u64, watch: &Watch) -> Result<()> {
        self.watch_bucket
            .set(watch_bucket(id), &1, 0)
            .map_err(map_err("WATCH_BUCKET"))?;
        self.watched
            .insert(&id, watch, 0)
            .map_err(map_err("WATCHED"))?;
        self.bump_generation();
        Ok(())
    }

    /// A new generation of the watched set, after a change to it (see [`CONFIG_WATCH_GEN`]
    /// for why a read and a write beside the kernel's atomic adds are enough).
    fn bump_generation(&mut self) {
        let generation = self.config.get(&CONFIG_WATCH_GEN, 0).unwrap_or(0);
        if let Err(err) = self
            .config
            .set(CONFIG_WATCH_GEN, &generation.wrapping_add(1), 0)
        {
            log::warn!("could not bump the watched set's generation: {err}");
        }
    }

    fn open(&mut self, mode: Mode, strict_args: bool) -> Result<Recording> {
        let slot =
            self.slots
                .iter()
                .position(|used| !used)
                .ok_or(RecorderError::SlotsExhausted(self.slots.len() as u32))? as u32;
        self.reset_slot(slot)?;
        if mode == Mode::Verify {
            self.count_denials(true)?;
        }
        if mode == Mode::AllSyscalls {
            self.bump(CONFIG_ALL_SYSCALLS, 1);
        }
        self.slots[slot as usize] = true;
        Ok(Recording {
            slot,
            mode,
            strict_args,
            pending_names: Vec::new(),
        })
    }

    /// Attaches sys_exit for the first verification and detaches it after the last: it runs
    /// on every syscall of the machine, so it is attached only while needed.
    fn count_denials(&mut self, on: bool) -> Result<()> {
        let exit: &mut RawTracePoint = program(&mut self.ebpf, "sys_exit")?;
        if on {
            if self.verifying == 0 {
                self.exit_link = Some(exit.attach("sys_exit").map_err(prog_err("sys_exit"))?);
            }
            self.verifying += 1;
        } else {
            self.verifying = self.verifying.saturating_sub(1);
            if self.verifying == 0
                && let Some(link) = self.exit_link.take()
            {
                exit.detach(link).map_err(prog_err("sys_exit"))?;
            }
        }
        Ok(())
    }

    fn bump(&mut self, index: u32, delta: i32) {
        let value = self.config.get(&index, 0).unwrap_or(0);
        let _ = self
            .config
            .set(index, &value.saturating_add_signed(delta), 0);
    }

    fn close(&mut self, recording: &Recording) {
        let slot = recording.slot;
        for key in &recording.pending_names {
            let _ = self.pending.remove(key);
            self.bump(CONFIG_PENDING_NAMES, -1);
        }
        if recording.mode == Mode::Verify
            && let Err(err) = self.count_denials(false)
        {
            log::warn!("could not detach sys_exit: {err}");
        }
        if recording.mode == Mode::AllSyscalls {
            self.bump(CONFIG_ALL_SYSCALLS, -1);
        }
        for id in self.cgroups_of(slot) {
            let _ = self.watched.remove(&id);
        }
        self.bump_generation();
        if let Err(err) = self.reset_slot(slot) {
            log::warn!("could not clear recording slot {slot}: {err}");
        }
        self.slots[slot as usize] = false;
    }

    fn reset_slot(&mut self, slot: u32) -> Result<()> {
        // What the slot counted names its first-program entries; read before it is zeroed.
        let old = self.slot_tables(slot)?;
        self.clear_tagged(slot, &old.tables());
        let zero = SyscallCounts {
            counts: [0; tracer_common::TABLE_LEN],
        };
        self.counts
            .set(slot, per_cpu(zero)?, 0)
            .map_err(map_err("COUNTS"))?;
        self.denied.set(slot, &zero, 0).map_err(map_err("DENIED"))?;
        let none = RuntimeCounts {
            counts: [0; NR_PER_ABI],
        };
        self.runtime
            .set(slot, &none, 0)
            .map_err(map_err("RUNTIME"))?;
        self.runtime_denied
            .set(slot, &none, 0)
            .map_err(map_err("RUNTIME_DENIED"))?;
        let stats = per_cpu(SlotStats::default())?;
        self.stats.set(slot, stats, 0).map_err(map_err("STATS"))?;
        self.arg_counts
            .set(slot, per_cpu(ArgCounts::default())?, 0)
            .map_err(map_err("ARG_COUNTS"))?;
        Ok(())
    }

    fn slot_tables(&self, slot: u32) -> Result<SlotTables> {
        Ok(SlotTables {
            counts: sum_tables(
                self.counts
                    .get(&slot, 0)
                    .map_err(map_err("COUNTS"))?
                    .iter()
                    .map(|t| &t.counts),
            ),
            denied: self.denied.get(&slot, 0).map_err(map_err("DENIED"))?,
            runtime: self.runtime.get(&slot, 0).map_err(map_err("RUNTIME"))?,
            runtime_denied: self
                .runtime_denied
                .get(&slot, 0)
                .map_err(map_err("RUNTIME_DENIED"))?,
        })
    }

    fn snapshot(&self, slot: u32) -> Result<Snapshot> {
        let tables = self.slot_tables(slot)?;
        let stats = self.stats.get(&slot, 0).map_err(map_err("STATS"))?;
        let dropped = stats.iter().map(|s| s.dropped_first).sum();
        let lost_programs: u64 = stats.iter().map(|s| s.lost_programs).sum();
        let arg_counts = self
            .arg_counts
            .get(&slot, 0)
            .map_err(map_err("ARG_COUNTS"))?;
        let mut snap = self.assemble(slot, tables.tables(), arg_counts.iter())?;
        snap.dropped_first = dropped;
        snap.programs_lost = lost_programs;
        snap.cgroups = self.cgroups_of(slot);
        Ok(snap)
    }

    /// A snapshot from summed counters; first programs and argument values are those whose
    /// keys carry `tag` (a slot, or an adopted cgroup's tag).
    fn assemble<'a>(
        &self,
        tag: u32,
        tables: Tables<'_>,
        arg_counts: impl Iterator<Item = &'a ArgCounts>,
    ) -> Result<Snapshot> {
        let mut firsts = BTreeMap::new();
        for index in tables.first_indexes() {
            let key = FirstKey { slot: tag, index };
            match self.first.get(&key, 0) {
                Ok(seen) => {
                    firsts.insert(index as usize, seen);
                }
                // Counted without a first program: the map was full (the snapshot says so).
                Err(aya::maps::MapError::KeyNotFound) => {}
                Err(err) => return Err(map_err("FIRST")(err)),
            }
        }
        let Tables {
            counts,
            denied,
            runtime,
            runtime_denied,
        } = tables;
        let mut snap = Snapshot {
            runtime_lost: self.config.get(&CONFIG_RUNTIME_LOST, 0).unwrap_or(0),
            ..Snapshot::default()
        };
        let first_at = |index: usize| {
            firsts.get(&index).map(|seen: &FirstSeen| FirstProgram {
                comm: comm_string(&seen.comm),
                pid: seen.pid,
            })
        };
        for (index, &count) in counts.iter().enumerate() {
            if count == 0 {
                continue;
            }
            let Some((abi, nr)) = Abi::from_index(index) else {
                snap.out_of_range += count;
                continue;
            };
            let first = first_at(index);
            snap.syscalls
                .insert(SyscallId { abi, nr }, Observed { count, first });
        }
        for (index, &count) in denied.iter().enumerate() {
            if count == 0 {
                continue;
            }
            match Abi::from_index(index) {
                Some((abi, nr)) => {
                    let first = first_at(FIRST_DENIED_BASE as usize + index);
                    snap.denied
                        .insert(SyscallId { abi, nr }, Observed { count, first });
                }
                None if index == OUT_OF_RANGE => snap.out_of_range_denied += count,
                None => {}
            }
        }
        for (map, from, base) in [
            (&mut snap.runtime, runtime, 0),
            (&mut snap.runtime_denied, runtime_denied, FIRST_DENIED_BASE),
        ] {
            for (nr, &count) in from.iter().enumerate() {
                if count > 0 {
                    let first = first_at((base + FIRST_RUNTIME_BASE) as usize + nr);
                    map.insert(nr as u32, Observed { count, first });
                }
            }
        }
        for entry in self.execs.iter() {
            let (key, count) = entry.map_err(map_err("EXECS"))?;
            if key.slot == tag {
                *snap.programs.entry(exec_path(&key.path)).or_default() += count;
            }
        }
        for entry in self.caps.iter() {
            let (key, seen) = entry.map_err(map_err("CAPS"))?;
            if key.slot != tag {
                continue;
            }
            let outcome = match key.how {
                CAP_GRANTED => CapOutcome::Granted,
                CAP_DENIED => CapOutcome::Denied,
                CAP_LOW_PORT => CapOutcome::LowPort,
                _ => continue,
            };
            let check = CapCheck {
                cap: key.cap,
                outcome,
                nr: key.nr,
            };
            snap.capabilities.insert(
                check,
                CapObserved {
                    count: seen.count,
                    program: comm_string(&seen.comm),
                    probe: seen.probe != 0,
                },
            );
        }
        for entry in self.privileged_execs.iter() {
            let (key, flags) = entry.map_err(map_err("PRIVILEGED_EXECS"))?;
            if key.slot == tag {
                let seen = snap
                    .privileged_execs
                    .entry(exec_path(&key.path))
                    .or_default();
                seen.gained |= flags & EXEC_GAINED != 0;
                seen.setid_stopped |= flags & EXEC_SETID_STOPPED != 0;
            }
        }
        for entry in self.read_only_writes.iter() {
            let (key, seen) = entry.map_err(map_err("READ_ONLY_WRITES"))?;
            if key.slot == tag {
                snap.read_only_writes.insert(
                    exec_path(&key.path),
                    RefusedWrite {
                        count: u64::from(seen.count),
                        nr: seen.nr,
                        program: comm_string(&seen.comm),
                    },
                );
            }
        }
        let mut overflowed = [false; 2 * ARG_KINDS];
        for counts in arg_counts {
            for (o, c) in overflowed.iter_mut().zip(counts.overflowed.iter()) {
                *o |= *c != 0;
            }
        }
        let specs = crate::seccomp::learn::ARG_SPECS;
        for (kind, spec) in specs.iter().enumerate() {
            for (map, k) in [
                (&mut snap.args, kind as u32),
                (&mut snap.denied_args, kind as u32 + ARG_DENIED),
            ] {
                if overflowed[k as usize] {
                    map.entry(spec.syscall_id()).or_default().overflowed = true;
                }
            }
        }
        for entry in self.args.iter() {
            let (key, _) = entry.map_err(map_err("ARGS"))?;
            if key.slot != tag {
                continue;
            }
            let (map, kind) = if key.kind >= ARG_DENIED {
                (&mut snap.denied_args, key.kind - ARG_DENIED)
            } else {
                (&mut snap.args, key.kind)
            };
            if let Some(spec) = specs.get(kind as usize) {
                map.entry(spec.syscall_id())
                    .or_default()
                    .tuples
                    .insert(key.values);
            }
        }
        Ok(snap)
    }

    /// Removes the first-program entries of what `tables` counted under `tag`, and the
    /// argument and program entries whose keys carry `tag`.
    fn clear_tagged(&mut self, tag: u32, tables: &Tables<'_>) {
        for index in tables.first_indexes() {
            let _ = self.first.remove(&FirstKey { slot: tag, index });
        }
        remove_tagged(&mut self.args, |k| k.slot == tag);
        remove_tagged(&mut self.caps, |k| k.slot == tag);
        remove_tagged(&mut self.privileged_execs, |k| k.slot == tag);
        remove_tagged(&mut self.read_only_writes, |k| k.slot == tag);
        remove_tagged(&mut self.execs, |k| k.slot == tag);
    }

    /// The cgroup ids watched for `slot`.
    fn cgroups_of(&self, slot: u32) -> Vec<u64> {
        self.watched
            .iter()
            .filter_map(|e| e.ok())
            .filter(|(_, w)| w.slot == slot)
            .map(|(k, _)| k)
            .collect()
    }
}

/// Removes the entries of `map` whose keys `tagged` picks.
fn remove_tagged<K: aya::Pod, V: aya::Pod>(
    map: &mut HashMap<MapData, K, V>,
    tagged: impl Fn(&K) -> bool,
) {
    let keys: Vec<K> = map
        .keys()
        .filter_map(|k| k.ok())
        .filter(|k| tagged(k))
        .collect();
    for key in keys {
        let _ = map.remove(&key);
    }
}

/// `value` on every possible CPU.
fn per_cpu<T: aya::Pod>(value: T) -> Result<PerCpuValues<T>> {
    let cpus = aya::util::nr_cpus().map_err(|(_, e)| RecorderError::Io {
        what: "/sys/devices/system/cpu/possible",
        source: e,
    })?;
    PerCpuValues::try_from(vec![value; cpus.get() as usize]).map_err(|e| RecorderError::Io {
        what: "per-cpu values",
        source: e,
    })
}

fn sum_tables<'a>(per_cpu: impl Iterator<Item = &'a [u64; TABLE_LEN]>) -> Vec<u64> {
    let mut total = vec![0u64; TABLE_LEN];
    for table in per_cpu {
        for (sum, n) in total.iter_mut().zip(table.iter()) {
            *sum += n;
        }
    }
    total
}

/// An executed program's path from its key; one that filled the key was cut, and says so.
fn exec_path(path: &[u8; EXEC_PATH_LEN]) -> String {
    let end = path.iter().position(|&b| b == 0).unwrap_or(path.len());
    let mut s = String::from_utf8_lossy(&path[..end]).into_owned();
    if end >= EXEC_PATH_LEN - 1 {
        s.push('…');
    }
    s
}

fn comm_string(comm: &[u8; 16]) -> String {
    let end = comm.iter().position(|&b| b == 0).unwrap_or(comm.len());
    String::from_utf8_lossy(&comm[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_keys() {
        let id = "0123456789abcdef".repeat(4);
        assert_eq!(&cgroup_key(&id).unwrap().bytes, id.as_bytes());
        let scope = format!("docker-{id}.scope");
        let key = cgroup_key(&scope).unwrap();
        assert_eq!(&key.bytes[..], &scope.as_bytes()[scope.len() - 64..]);
        assert!(key.bytes.ends_with(b"cdef.scope"));
        assert!(cgroup_key("short").is_err());
        assert!(cgroup_key(&format!("a/{id}")).is_err());
    }

    #[test]
    fn one_recording_fits_in_4_mib_on_192_cpus() {
        let bytes = kernel_map_bytes(1, 192);
        assert!(bytes <= 4 << 20, "{bytes}");
        // What one recording costs grows with the CPUs only through the per-CPU counters and
        // the cgroup each CPU last looked up.
        let per_cpu = kernel_map_bytes(1, 2) - kernel_map_bytes(1, 1);
        let last = size_of::<LastCgroup>();
        assert_eq!(per_cpu, (TABLE_LEN * 8 + 16 + 64 + last) as u64);
        assert!(kernel_map_bytes(MAX_SLOTS, 192) > 32 * kernel_map_bytes(1, 192) / 2);
    }

    #[test]
    fn comm_stops_at_nul() {
        let mut comm = [0u8; 16];
        comm[..4].copy_from_slice(b"sh\0x");
        assert_eq!(comm_string(&comm), "sh");
    }
}
