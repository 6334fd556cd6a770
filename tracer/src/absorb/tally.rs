//! The records read from the logs, sorted into the workload's calls (per syscall, with counts,
//! first program and times) and everything else: other processes, other answers, other
//! architectures, duplicates, garbled lines and holes in the kernel's serial numbers.
use std::collections::{BTreeMap, HashSet};

use serde::Serialize;

use super::selection::{Attribution, Pick, Selection, Whereabouts};
use crate::{
    audit::{self, Answer, Call, Line, LogLine, Record, Serials, Stamp},
    names::SyscallId,
};

/// How many garbled lines the report quotes (all are counted).
const MAX_GARBLED_QUOTED: usize = 20;

/// The records of one syscall the workload made.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CallTally {
    pub count: u64,
    pub by_process: u64,
    pub by_program: u64,
    /// The earliest record's program (`comm`), `exe` and pid.
    pub first: Option<(String, String, Option<u32>)>,
    first_key: Option<(u64, u64, u64)>,
    pub first_time: Option<Stamp>,
    pub last_time: Option<Stamp>,
}

/// One log read: how much of it was usable.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SourceStats {
    pub name: String,
    pub lines: u64,
    pub seccomp_records: u64,
    pub garbled: u64,
    /// Audit records missing between the first and the last one read (holes in the kernel's
    /// serial numbers): lost before they reached this log.
    pub missing_records: u64,
    /// Kernel log records overwritten before they could be read.
    pub overwritten: u64,
    /// Times the kernel dropped records because the reader's buffer was full.
    pub overflowed: u64,
    /// The kernel log's rate limit was reached: a burst of [`PRINTK_BURST`] records within
    /// [`PRINTK_INTERVAL_MS`]; what came after it in that interval was dropped without a trace.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub rate_limited: bool,
    #[serde(skip)]
    serials: Serials,
    /// Stamps of the records the kernel printed to its log (rate-limited), in milliseconds.
    #[serde(skip)]
    printed: Vec<u64>,
}

/// The kernel prints at most this many audit records per interval to its log without an audit
/// daemon (`printk_ratelimit`: 10 per 5 s), and drops the rest silently.
pub const PRINTK_BURST: usize = 10;
pub const PRINTK_INTERVAL_MS: u64 = 5_000;

/// Whether `stamps` (sorted) hold a burst that reached the rate limit.
fn reached_limit(stamps: &[u64]) -> bool {
    stamps
        .windows(PRINTK_BURST)
        .any(|w| w[PRINTK_BURST - 1] - w[0] < PRINTK_INTERVAL_MS)
}

/// A line that looked like a seccomp record but couldn't be read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GarbledLine {
    pub source: String,
    pub line: u64,
    pub reason: String,
}

/// Everything read from the logs, sorted into what is absorbed and what is not.
#[derive(Clone, Debug, Default)]
pub struct Tally {
    pub sources: Vec<SourceStats>,
    /// The workload's calls the filter let through and logged (SCMP_ACT_LOG).
    pub calls: BTreeMap<SyscallId, CallTally>,
    /// The workload's records with another answer (denied, killed, ...): call, answer → count.
    pub answered: BTreeMap<(String, String), u64>,
    /// The workload's records of architectures without tables here.
    pub other_arches: BTreeMap<String, u64>,
    /// Records of other processes: (comm, exe) → count.
    pub not_attributed: BTreeMap<(String, String), u64>,
    pub early: u64,
    pub duplicates: u64,
    pub garbled: Vec<GarbledLine>,
    seen: HashSet<(Stamp, u64)>,
    order: u64,
}

impl Tally {
    /// Starts a new source; lines and records are then added to it.
    pub fn source(&mut self, name: impl Into<String>) -> usize {
        self.sources.push(SourceStats {
            name: name.into(),
            ..Default::default()
        });
        self.sources.len() - 1
    }

    /// Counts kernel log records overwritten before they were read.
    pub fn overwritten(&mut self, source: usize, records: u64) {
        if let Some(s) = self.sources.get_mut(source) {
            s.overwritten += records;
        }
    }

    /// Counts a time the kernel dropped records (or process events) of `source` because the
    /// reader's buffer was full.
    pub fn overflowed(&mut self, source: usize) {
        if let Some(s) = self.sources.get_mut(source) {
            s.overflowed += 1;
        }
    }

    /// Reads one line of `source`, its `number` (1-based).
    pub fn line(
        &mut self,
        source: usize,
        number: u64,
        line: &LogLine,
        selection: &Selection,
        whereabouts: &mut dyn FnMut(u32) -> Whereabouts,
    ) {
        if let Some(s) = self.sources.get_mut(source) {
            s.lines += 1;
        }
        let parsed = audit::parse_line(&line.text);
        match parsed {
            Line::Other => {}
            Line::Audit { serial } => {
                if let (Some(serial), Some(s)) = (serial, self.sources.get_mut(source)) {
                    s.serials.insert(serial);
                }
            }
            Line::Garbled { reason, serial } => {
                if let (Some(serial), Some(s)) = (serial, self.sources.get_mut(source)) {
                    s.serials.insert(serial);
                }
                self.garble(source, number, reason)
            }
            Line::Seccomp(_) if line.cut => self.garble(
                source,
                number,
                format!("longer than {} bytes", audit::MAX_LINE),
            ),
            Line::Seccomp(record) => {
                // As the kernel log has it (`audit: type=1326`), not as auditd writes it.
                if let (Some(stamp), Some(s)) = (record.stamp, self.sources.get_mut(source))
                    && line.text.contains("audit: type=1326")
                {
                    s.printed.push(stamp.0);
                }
                self.record(source, record, selection, whereabouts)
            }
        }
    }

    fn garble(&mut self, source: usize, number: u64, reason: String) {
        let Some(s) = self.sources.get_mut(source) else {
            return;
        };
        s.garbled += 1;
        if self.garbled.len() < MAX_GARBLED_QUOTED {
            self.garbled.push(GarbledLine {
                source: s.name.clone(),
                line: number,
                reason,
            });
        }
    }

    /// Adds one seccomp record of `source`.
    pub fn record(
        &mut self,
        source: usize,
        record: Record,
        selection: &Selection,
        whereabouts: &mut dyn FnMut(u32) -> Whereabouts,
    ) {
        if let Some(s) = self.sources.get_mut(source) {
            s.seccomp_records += 1;
            if let Some(serial) = record.serial {
                s.serials.insert(serial);
            }
        }
        if let (Some(stamp), Some(serial)) = (record.stamp, record.serial)
            && !self.seen.insert((stamp, serial))
        {
            self.duplicates += 1;
            return;
        }
        self.order += 1;
        let how = match selection.judge(&record, whereabouts) {
            Pick::Early => {
                self.early += 1;
                return;
            }
            Pick::NotTheWorkload => {
                let key = (
                    record.comm.unwrap_or_else(|| "?".into()),
                    record.exe.unwrap_or_else(|| "?".into()),
                );
                *self.not_attributed.entry(key).or_default() += 1;
                return;
            }
            Pick::Take(how) => how,
        };
        let id = match (&record.call, record.answer) {
            (Call::OtherArch { arch, .. }, _) => {
                *self.other_arches.entry(arch.clone()).or_default() += 1;
                return;
            }
            (Call::Known(id), Some(Answer::Log)) => *id,
            (Call::Known(id), answer) => {
                let answer = answer.map_or_else(
                    || "no code (a kernel before 4.14)".to_string(),
                    Answer::label,
                );
                *self.answered.entry((id.to_string(), answer)).or_default() += 1;
                return;
            }
        };
        let t = self.calls.entry(id).or_default();
        t.count += 1;
        match how {
            Attribution::Process => t.by_process += 1,
            Attribution::Program => t.by_program += 1,
            Attribution::Filter => {}
        }
        let key = (
            record.stamp.map_or(u64::MAX, |s| s.0),
            record.serial.unwrap_or(u64::MAX),
            self.order,
        );
        if t.first_key.is_none_or(|k| key < k) {
            t.first_key = Some(key);
            t.first = Some((
                record.comm.clone().unwrap_or_else(|| "?".into()),
                record.exe.clone().unwrap_or_else(|| "?".into()),
                record.pid,
            ));
        }
        if let Some(s) = record.stamp {
            t.first_time = Some(t.first_time.map_or(s, |f| f.min(s)));
            t.last_time = Some(t.last_time.map_or(s, |l| l.max(s)));
        }
    }

    /// Finishes the counts of missing records (serial holes) per source.
    pub fn finish(&mut self) {
        for s in &mut self.sources {
            s.missing_records = s.serials.missing();
            s.printed.sort_unstable();
            s.rate_limited = reached_limit(&s.printed);
        }
    }

    pub fn absorbed_records(&self) -> u64 {
        self.calls.values().map(|t| t.count).sum()
    }

    pub fn by_program(&self) -> u64 {
        self.calls.values().map(|t| t.by_program).sum()
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn ten_printed_records_within_5_s_reached_the_limit() {
        let burst: Vec<u64> = (0..10).map(|i| 1_000 + i * 400).collect();
        assert!(reached_limit(&burst), "10 within 3.6 s");
        assert!(!reached_limit(&burst[..9]), "9 are within the limit");
        let spread: Vec<u64> = (0..10).map(|i| i * 600).collect();
        assert!(!reached_limit(&spread), "10 over 5.4 s");
    }
    use crate::absorb::selection::Scope;
    use crate::names::Abi;

    const MKDIR: &str = r#"[ 2186.302780] audit: type=1326 audit(1795910689.168:7): auid=4294967295 uid=0 gid=0 ses=4294967295 pid=7840 comm="mkdir" exe="/bin/busybox" sig=0 arch=c000003e syscall=83 compat=0 ip=0x47b567 code=0x7ffc0000"#;

    /// Docker's default capabilities on the kernel the fixtures come from.
    pub(crate) fn ctx() -> crate::seccomp::Context {
        crate::seccomp::Context {
            kernel: (6, 18),
            ..crate::seccomp::Context::docker_default()
        }
    }

    /// The kernel log line of `mkdir` with another serial, pid, comm and exe.
    pub(crate) fn mkdir_line(serial: u64, pid: u32, comm: &str, exe: &str) -> String {
        MKDIR
            .replace(":7)", &format!(":{serial})"))
            .replace("pid=7840", &format!("pid={pid}"))
            .replace("comm=\"mkdir\"", &format!("comm=\"{comm}\""))
            .replace("exe=\"/bin/busybox\"", &format!("exe=\"{exe}\""))
    }

    fn feed(tally: &mut Tally, sel: &Selection, lines: &[String], wh: fn(u32) -> Whereabouts) {
        let src = tally.source("test");
        for (i, l) in lines.iter().enumerate() {
            let line = LogLine {
                text: l.clone(),
                cut: false,
            };
            tally.line(src, i as u64 + 1, &line, sel, &mut |p| wh(p));
        }
        tally.finish();
    }

    fn scope(programs: &[&str]) -> Scope {
        Scope {
            name: "web".into(),
            id: "abc".into(),
            programs: Some(programs.iter().map(|p| p.to_string()).collect()),
            created: Some(Stamp(1_795_910_599_000)),
            started: Some(Stamp(1_795_910_600_000)),
            finished: None,
        }
    }

    const MKDIR_ID: SyscallId = SyscallId {
        abi: Abi::X86_64,
        nr: 83,
    };

    #[test]
    fn processes_then_programs_pick_the_container() {
        let sel = Selection {
            containers: vec![scope(&["/bin/busybox"])],
            ..Default::default()
        };
        let lines = [
            mkdir_line(7, 100, "mkdir", "/bin/busybox"), // alive in the container
            mkdir_line(8, 200, "mkdir", "/bin/busybox"), // alive elsewhere
            mkdir_line(9, 300, "mkdir", "/bin/busybox"), // exited, same program
            mkdir_line(10, 301, "mkdir", "/usr/bin/other"), // exited, another program
        ];
        let mut t = Tally::default();
        feed(&mut t, &sel, &lines, |pid| match pid {
            100 => Whereabouts::In(0),
            200 => Whereabouts::Elsewhere,
            _ => Whereabouts::Gone,
        });
        let m = &t.calls[&MKDIR_ID];
        assert_eq!((m.count, m.by_process, m.by_program), (2, 1, 1));
        assert_eq!(
            m.first,
            Some(("mkdir".into(), "/bin/busybox".into(), Some(100)))
        );
        assert_eq!(t.not_attributed.values().sum::<u64>(), 2);
        assert_eq!(t.sources[0].missing_records, 0);
    }

    #[test]
    fn records_before_the_container_or_since_are_not_its() {
        let mut old = scope(&["/bin/busybox"]);
        old.started = Some(Stamp(1_795_910_800_000));
        let mut fresh = scope(&["/bin/busybox"]);
        fresh.created = Some(Stamp(1_795_910_689_169));
        fresh.started = Some(Stamp(1_795_910_689_500));
        let sel = Selection {
            containers: vec![fresh],
            ..Default::default()
        };
        let mut t = Tally::default();
        feed(&mut t, &sel, &[MKDIR.to_string()], |_| Whereabouts::Gone);
        assert!(t.calls.is_empty(), "made before the container was created");
        let sel = Selection {
            containers: vec![old],
            ..Default::default()
        };
        let mut t = Tally::default();
        feed(&mut t, &sel, &[MKDIR.to_string()], |_| Whereabouts::In(0));
        assert!(t.calls.is_empty(), "pid reused after the record");
        let sel = Selection {
            since: Some(Stamp(1_795_910_689_169)),
            ..Default::default()
        };
        let mut t = Tally::default();
        feed(&mut t, &sel, &[MKDIR.to_string()], |_| Whereabouts::Gone);
        assert_eq!((t.early, t.calls.len()), (1, 0));
    }

    #[test]
    fn exe_and_comm_narrow() {
        let sel = Selection {
            exes: BTreeSet::from(["/bin/busybox".to_string()]),
            comms: BTreeSet::from(["mkdir".to_string()]),
            ..Default::default()
        };
        let lines = [
            mkdir_line(1, 1, "mkdir", "/bin/busybox"),
            mkdir_line(2, 2, "sh", "/bin/busybox"),
            mkdir_line(3, 3, "mkdir", "/bin/mkdir"),
        ];
        let mut t = Tally::default();
        feed(&mut t, &sel, &lines, |_| Whereabouts::Gone);
        assert_eq!(t.calls[&MKDIR_ID].count, 1);
        assert_eq!(t.not_attributed.len(), 2);
    }

    #[test]
    fn answers_arches_duplicates_holes_and_garbage_are_counted() {
        let sel = Selection::default();
        let lines = [
            mkdir_line(40, 1, "mkdir", "/bin/busybox"),
            mkdir_line(40, 1, "mkdir", "/bin/busybox"), // read twice
            mkdir_line(41, 1, "mkdir", "/bin/busybox").replace("0x7ffc0000", "0x50001"),
            mkdir_line(42, 1, "mkdir", "/bin/busybox").replace("c000003e", "c00000b7"),
            mkdir_line(50, 1, "mkdir", "/bin/busybox"),
            MKDIR[..MKDIR.find(" syscall=").unwrap_or(0)].to_string(),
            "unrelated".to_string(),
        ];
        let mut t = Tally::default();
        feed(&mut t, &sel, &lines, |_| Whereabouts::Gone);
        assert_eq!(t.calls[&MKDIR_ID].count, 2);
        assert_eq!(t.duplicates, 1);
        assert_eq!(
            t.answered,
            BTreeMap::from([(("mkdir".into(), "SCMP_ACT_ERRNO(1)".into()), 1)])
        );
        assert_eq!(t.other_arches, BTreeMap::from([("c00000b7".into(), 1)]));
        let s = &t.sources[0];
        assert_eq!((s.lines, s.seccomp_records, s.garbled), (7, 5, 1));
        assert_eq!(s.missing_records, 32 + 7); // 8..=39 (the garbled line is 7), 43..=49
        assert_eq!(t.garbled[0].line, 6);
    }

    #[test]
    fn first_program_is_the_earliest_record() {
        let late = mkdir_line(9, 2, "late", "/bin/busybox").replace("689.168", "690.000");
        let early = mkdir_line(8, 1, "early", "/bin/busybox");
        let mut t = Tally::default();
        feed(&mut t, &Selection::default(), &[late, early], |_| {
            Whereabouts::Gone
        });
        let m = &t.calls[&MKDIR_ID];
        assert_eq!(m.first.as_ref().map(|f| f.0.as_str()), Some("early"));
        assert_eq!(m.first_time, Some(Stamp(1_795_910_689_168)));
        assert_eq!(m.last_time, Some(Stamp(1_795_910_690_000)));
    }
}
