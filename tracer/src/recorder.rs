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
    ARG_DENIED, ARG_KINDS, ArgCounts, ArgKey, CGROUP_KEY_LEN, CONFIG_PENDING_NAMES, CgroupKey,
    FIRST_DENIED_BASE, FirstKey, FirstSeen, MAX_SLOTS, OUT_OF_RANGE, SlotStats, SyscallCounts,
    WATCH_ALL_SYSCALLS, WATCH_STRICT_ARGS, Watch,
};

use crate::{
    error::{Error, Result},
    kbtf,
    names::{Abi, SyscallId},
    privileges,
    seccomp::{ArgValues, Observation},
    tracefs,
};

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
}

impl Snapshot {
    /// Adds what `other` saw (a later run): counts add up, first programs stay the earliest.
    pub fn merge(&mut self, other: &Snapshot) {
        for (map, from) in [
            (&mut self.syscalls, &other.syscalls),
            (&mut self.denied, &other.denied),
        ] {
            for (id, obs) in from {
                map.entry(*id)
                    .or_insert_with(|| Observed {
                        count: 0,
                        first: obs.first.clone(),
                    })
                    .count += obs.count;
            }
        }
        self.out_of_range += other.out_of_range;
        self.out_of_range_denied += other.out_of_range_denied;
        self.dropped_first += other.dropped_first;
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

    /// What the profile is learned from.
    pub fn observation(&self) -> Observation {
        Observation {
            calls: self.syscalls.iter().map(|(id, o)| (*id, o.count)).collect(),
            args: self.args.clone(),
        }
    }

    pub fn total_calls(&self) -> u64 {
        self.syscalls.values().map(|o| o.count).sum::<u64>() + self.out_of_range
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
    denied: PerCpuArray<MapData, SyscallCounts>,
    first: HashMap<MapData, FirstKey, FirstSeen>,
    stats: PerCpuArray<MapData, SlotStats>,
    args: HashMap<MapData, ArgKey, u32>,
    arg_counts: PerCpuArray<MapData, ArgCounts>,
    config: Array<MapData, u32>,
    slots: [bool; MAX_SLOTS as usize],
    /// The programs; sys_exit is attached while a `Verify` recording is open.
    ebpf: Ebpf,
    exit_link: Option<RawTracePointLinkId>,
    verifying: u32,
}

/// The loaded and attached eBPF recorder.
pub struct Recorder {
    maps: Mutex<Maps>,
}

fn map_err(map: &'static str) -> impl FnOnce(aya::maps::MapError) -> Error {
    move |source| Error::Map { map, source }
}

fn take<T>(ebpf: &mut Ebpf, name: &'static str) -> Result<T>
where
    T: TryFrom<aya::maps::Map, Error = aya::maps::MapError>,
{
    let map = ebpf.take_map(name).ok_or(Error::Map {
        map: name,
        source: aya::maps::MapError::InvalidName {
            name: name.to_string(),
        },
    })?;
    T::try_from(map).map_err(map_err(name))
}

impl Recorder {
    /// What loading the recorder needs that a process with `creds` lacks: the BPF
    /// capabilities, and mounting and reading tracefs.
    pub fn missing_privileges(creds: &privileges::Creds) -> Vec<privileges::Missing> {
        let mut missing: Vec<_> = creds.missing_for_bpf().into_iter().collect();
        missing.extend(tracefs::missing_privileges(creds));
        missing
    }

    /// Checks privileges and tracefs, loads the programs and attaches them.
    pub fn load() -> Result<Self> {
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
        // The programs carry no CO-RE relocations (the kernel offsets they read come from the
        // small scan above), so the loader never reads the kernel's BTF.
        let mut ebpf = EbpfLoader::new()
            .override_global("SECCOMP_MODE_OFFSET", &task.seccomp_mode, true)
            .override_global("THREAD_STATUS_OFFSET", &task.thread_status, true)
            .override_global("MKDIR_ROOT_OFFSET", &mkdir_root, true)
            .override_global("MKDIR_ID_OFFSET", &mkdir_id, true)
            .override_global("MKDIR_PATH_OFFSET", &mkdir_path, true)
            .load(OBJECT)?;
        let mkdir: &mut TracePoint = program(&mut ebpf, "cgroup_mkdir")?;
        mkdir.load().map_err(prog_err("cgroup_mkdir"))?;
        mkdir
            .attach("cgroup", "cgroup_mkdir")
            .map_err(prog_err("cgroup_mkdir"))?;
        for name in ["sys_exit", "sys_enter"] {
            let prog: &mut RawTracePoint = program(&mut ebpf, name)?;
            prog.load().map_err(prog_err(name))?;
        }
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
            first: take(&mut ebpf, "FIRST")?,
            stats: take(&mut ebpf, "STATS")?,
            args: take(&mut ebpf, "ARGS")?,
            arg_counts: take(&mut ebpf, "ARG_COUNTS")?,
            config: take(&mut ebpf, "CONFIG")?,
            slots: [false; MAX_SLOTS as usize],
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
        if let Err(err) = maps.watched.insert(&cgroup_id, &watch, 0) {
            maps.close(&recording);
            return Err(map_err("WATCHED")(err));
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
        self.maps()
            .watched
            .insert(&cgroup_id, &watch_value(recording), 0)
            .map_err(map_err("WATCHED"))
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
        return Err(Error::Invalid(format!(
            "cgroup name {name:?} must be at least {CGROUP_KEY_LEN} bytes, without '/'"
        )));
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
    let prog = ebpf.program_mut(name).ok_or(Error::Program {
        program: name,
        message: "not found in the embedded object".into(),
    })?;
    prog.try_into().map_err(prog_err(name))
}

fn prog_err(program: &'static str) -> impl FnOnce(aya::programs::ProgramError) -> Error {
    move |source| Error::Program {
        program,
        message: shorten(&source.to_string()),
    }
}

/// Verifier logs run to thousands of lines; the first and the last few say what failed.
fn shorten(message: &str) -> String {
    let lines: Vec<&str> = message.lines().collect();
    if lines.len() <= 24 {
        return message.to_string();
    }
    let mut out = lines[..4].join("\n");
    out.push_str(&format!(
        "\n... ({} lines of verifier log left out) ...\n",
        lines.len() - 20
    ));
    out.push_str(&lines[lines.len() - 16..].join("\n"));
    out
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

impl Maps {
    fn open(&mut self, mode: Mode, strict_args: bool) -> Result<Recording> {
        let slot = self
            .slots
            .iter()
            .position(|used| !used)
            .ok_or(Error::SlotsExhausted(MAX_SLOTS))? as u32;
        self.reset_slot(slot)?;
        if mode == Mode::Verify {
            self.count_denials(true)?;
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
        for id in self.cgroups_of(slot) {
            let _ = self.watched.remove(&id);
        }
        if let Err(err) = self.reset_slot(slot) {
            log::warn!("could not clear recording slot {slot}: {err}");
        }
        self.slots[slot as usize] = false;
    }

    fn reset_slot(&mut self, slot: u32) -> Result<()> {
        let zero = SyscallCounts {
            counts: [0; tracer_common::TABLE_LEN],
        };
        self.counts
            .set(slot, per_cpu(zero)?, 0)
            .map_err(map_err("COUNTS"))?;
        self.denied
            .set(slot, per_cpu(zero)?, 0)
            .map_err(map_err("DENIED"))?;
        let stats = per_cpu(SlotStats::default())?;
        self.stats.set(slot, stats, 0).map_err(map_err("STATS"))?;
        let firsts: Vec<FirstKey> = self
            .first
            .keys()
            .filter_map(|k| k.ok())
            .filter(|k| k.slot == slot)
            .collect();
        for key in firsts {
            let _ = self.first.remove(&key);
        }
        let args: Vec<ArgKey> = self
            .args
            .keys()
            .filter_map(|k| k.ok())
            .filter(|k| k.slot == slot)
            .collect();
        for key in args {
            let _ = self.args.remove(&key);
        }
        self.arg_counts
            .set(slot, per_cpu(ArgCounts::default())?, 0)
            .map_err(map_err("ARG_COUNTS"))?;
        Ok(())
    }

    fn snapshot(&self, slot: u32) -> Result<Snapshot> {
        let mut snap = Snapshot::default();
        let counts = sum_tables(&self.counts.get(&slot, 0).map_err(map_err("COUNTS"))?);
        let denied = sum_tables(&self.denied.get(&slot, 0).map_err(map_err("DENIED"))?);
        let mut firsts = BTreeMap::new();
        for entry in self.first.iter() {
            let (key, seen) = entry.map_err(map_err("FIRST"))?;
            if key.slot == slot {
                firsts.insert(key.index as usize, seen);
            }
        }
        for (index, &count) in counts.iter().enumerate() {
            if count == 0 {
                continue;
            }
            let Some((abi, nr)) = Abi::from_index(index) else {
                snap.out_of_range += count;
                continue;
            };
            let first = firsts.get(&index).map(|seen| FirstProgram {
                comm: comm_string(&seen.comm),
                pid: seen.pid,
            });
            snap.syscalls
                .insert(SyscallId { abi, nr }, Observed { count, first });
        }
        for (index, &count) in denied.iter().enumerate() {
            if count == 0 {
                continue;
            }
            match Abi::from_index(index) {
                Some((abi, nr)) => {
                    let first = firsts
                        .get(&(FIRST_DENIED_BASE as usize + index))
                        .map(|seen| FirstProgram {
                            comm: comm_string(&seen.comm),
                            pid: seen.pid,
                        });
                    snap.denied
                        .insert(SyscallId { abi, nr }, Observed { count, first });
                }
                None if index == OUT_OF_RANGE => snap.out_of_range_denied += count,
                None => {}
            }
        }
        for stats in self.stats.get(&slot, 0).map_err(map_err("STATS"))?.iter() {
            snap.dropped_first += stats.dropped_first;
        }
        let mut overflowed = [false; 2 * ARG_KINDS];
        for counts in self
            .arg_counts
            .get(&slot, 0)
            .map_err(map_err("ARG_COUNTS"))?
            .iter()
        {
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
            if key.slot != slot {
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
        snap.cgroups = self.cgroups_of(slot);
        Ok(snap)
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

/// `value` on every possible CPU.
fn per_cpu<T: aya::Pod>(value: T) -> Result<PerCpuValues<T>> {
    let cpus =
        aya::util::nr_cpus().map_err(|(_, e)| Error::io("/sys/devices/system/cpu/possible", e))?;
    PerCpuValues::try_from(vec![value; cpus.get() as usize])
        .map_err(|e| Error::io("per-cpu values", e))
}

fn sum_tables(per_cpu: &PerCpuValues<SyscallCounts>) -> Vec<u64> {
    let mut total = vec![0u64; tracer_common::TABLE_LEN];
    for table in per_cpu.iter() {
        for (sum, n) in total.iter_mut().zip(table.counts.iter()) {
            *sum += n;
        }
    }
    total
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
    fn comm_stops_at_nul() {
        let mut comm = [0u8; 16];
        comm[..4].copy_from_slice(b"sh\0x");
        assert_eq!(comm_string(&comm), "sh");
    }
}
