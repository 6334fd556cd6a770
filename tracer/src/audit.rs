//! Seccomp audit records (type 1326, `SECCOMP`) as the kernel log, `dmesg`, `journalctl` and
//! auditd's `audit.log` carry them, read one line at a time; a bad line is reported, never fatal.
use std::{
    collections::BTreeMap,
    io::BufRead,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use tracer_common::X32_SYSCALL_BIT;

use crate::names::{Abi, SyscallId};

/// The audit record type of seccomp's logs (`AUDIT_SECCOMP`).
pub const AUDIT_SECCOMP: u16 = 1326;
/// `AUDIT_ARCH_X86_64` (EM_X86_64, 64-bit, little-endian); x32 calls carry it too.
pub const ARCH_X86_64: u32 = 0xc000_003e;
/// `AUDIT_ARCH_I386` (EM_386, little-endian).
pub const ARCH_I386: u32 = 0x4000_0003;
/// The longest line read; the rest of a longer one is skipped and the line counts as garbled.
pub const MAX_LINE: usize = 64 * 1024;

/// When the kernel stamped a record: milliseconds since the epoch (`audit(SECONDS.MS:SERIAL)`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Stamp(pub u64);

impl Stamp {
    pub fn from_system_time(t: SystemTime) -> Option<Stamp> {
        let d = t.duration_since(UNIX_EPOCH).ok()?;
        u64::try_from(d.as_millis()).ok().map(Stamp)
    }

    pub fn system_time(self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.0)
    }

    /// RFC 3339 in UTC, to the millisecond.
    pub fn rfc3339(self) -> String {
        humantime::format_rfc3339_millis(self.system_time()).to_string()
    }

    /// `SECONDS.MS` as the kernel writes it (fewer or more fraction digits are read too).
    fn parse(text: &str) -> Option<Stamp> {
        let (secs, frac) = text.split_once('.').unwrap_or((text, ""));
        let secs: u64 = secs.parse().ok()?;
        if !frac.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let mut millis = 0u64;
        for i in 0..3 {
            millis = millis * 10 + frac.as_bytes().get(i).map_or(0, |b| u64::from(b - b'0'));
        }
        secs.checked_mul(1000)?.checked_add(millis).map(Stamp)
    }
}

/// What the filter answered, from the record's `code` (`SECCOMP_RET_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Answer {
    /// `SECCOMP_RET_LOG`: the call ran, and was logged (complain mode).
    Log,
    Allow,
    Errno(u32),
    Trap,
    Trace,
    Notify,
    KillThread,
    KillProcess,
    Unknown(u32),
}

impl Answer {
    pub fn from_code(code: u32) -> Answer {
        match code & 0xffff_0000 {
            0x7ffc_0000 => Answer::Log,
            0x7fff_0000 => Answer::Allow,
            0x0005_0000 => Answer::Errno(code & 0xffff),
            0x0003_0000 => Answer::Trap,
            0x7ff0_0000 => Answer::Trace,
            0x7fc0_0000 => Answer::Notify,
            0x8000_0000 => Answer::KillProcess,
            // SECCOMP_RET_KILL_THREAD is 0; other values with no action bits are cut short.
            0 if code == 0 => Answer::KillThread,
            _ => Answer::Unknown(code),
        }
    }

    /// `ausearch -i`'s words for the code (`log`, `errno`, `kill`, ...).
    fn from_word(word: &str) -> Option<Answer> {
        let (name, detail) = word.split_once('(').unwrap_or((word, ""));
        Some(match name {
            "log" => Answer::Log,
            "allow" => Answer::Allow,
            "errno" => Answer::Errno(detail.trim_end_matches(')').parse().unwrap_or(0)),
            "trap" => Answer::Trap,
            "trace" => Answer::Trace,
            "user-notif" | "notify" => Answer::Notify,
            "kill" | "kill-thread" => Answer::KillThread,
            "kill-process" => Answer::KillProcess,
            _ => return None,
        })
    }

    /// The profile action that answers this way (`SCMP_ACT_ERRNO(1)`).
    pub fn label(self) -> String {
        match self {
            Answer::Log => "SCMP_ACT_LOG".into(),
            Answer::Allow => "SCMP_ACT_ALLOW".into(),
            Answer::Errno(e) => format!("SCMP_ACT_ERRNO({e})"),
            Answer::Trap => "SCMP_ACT_TRAP".into(),
            Answer::Trace => "SCMP_ACT_TRACE".into(),
            Answer::Notify => "SCMP_ACT_NOTIFY".into(),
            Answer::KillThread => "SCMP_ACT_KILL_THREAD".into(),
            Answer::KillProcess => "SCMP_ACT_KILL_PROCESS".into(),
            Answer::Unknown(code) => format!("code 0x{code:x}"),
        }
    }
}

/// The syscall a record names.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Call {
    /// One of the x86 ABIs.
    Known(SyscallId),
    /// An architecture this tool has no tables for (`arch` as written).
    OtherArch { arch: String, nr: u64 },
}

/// One seccomp audit record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub stamp: Option<Stamp>,
    pub serial: Option<u64>,
    /// The thread group id of the caller, as the host sees it.
    pub pid: Option<u32>,
    pub comm: Option<String>,
    /// The caller's program, as a path in its own mount namespace (`/bin/busybox`).
    pub exe: Option<String>,
    pub call: Call,
    /// Absent on kernels before 4.14, which logged only kills.
    pub answer: Option<Answer>,
}

/// What one line of a log is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Line {
    /// Not an audit record.
    Other,
    /// An audit record of another type: only its serial counts (to find missing records).
    Audit {
        serial: Option<u64>,
    },
    Seccomp(Record),
    /// A seccomp record that can't be read (truncated, garbled), and why; its serial counts
    /// when the stamp could be read.
    Garbled {
        reason: String,
        serial: Option<u64>,
    },
}

/// Reads one line of any of the formats: the kernel's (`audit: type=1326 audit(S.MS:N): …`, as
/// `dmesg`, `/dev/kmsg` and `journalctl -k` show it), auditd's (`[node=… ]type=SECCOMP
/// msg=audit(S.MS:N): …`, raw or enriched, or `ausearch -i`'s interpreted fields) and
/// journald's (`audit[PID]: SECCOMP …`).
pub fn parse_line(line: &str) -> Line {
    // auditd's enriched format appends interpreted fields after a GS (0x1d) separator.
    let line = line.split('\x1d').next().unwrap_or_default();
    let Some((after_type, seccomp)) = record_type(line) else {
        return Line::Other;
    };
    let rest = &line[after_type..];
    let (stamp_text, fields_text) = match rest.find("audit(") {
        Some(open) => match rest[open..].find(')') {
            Some(close) => (
                Some(&rest[open + "audit(".len()..open + close]),
                &rest[open + close + 1..],
            ),
            None if seccomp => return garbled("unterminated audit(…) stamp", None),
            None => return Line::Audit { serial: None },
        },
        None => (None, rest),
    };
    let (stamp, serial) = match stamp_text {
        Some(text) => {
            let Some((time, serial)) = text.rsplit_once(':') else {
                return garbled_or_audit(seccomp, "audit(…) stamp without a serial");
            };
            let Ok(serial) = serial.trim().parse::<u64>() else {
                return garbled_or_audit(seccomp, "audit(…) stamp with a bad serial");
            };
            // `ausearch -i` writes local time (`11/29/2026 00:04:37.168`): no stamp then.
            (Stamp::parse(time.trim()), Some(serial))
        }
        None => (None, None),
    };
    if !seccomp {
        return Line::Audit { serial };
    }
    let fields = fields(fields_text);
    match record(&fields, stamp, serial) {
        Ok(record) => Line::Seccomp(record),
        Err(why) => garbled(&why, serial),
    }
}

fn garbled(reason: &str, serial: Option<u64>) -> Line {
    Line::Garbled {
        reason: reason.to_string(),
        serial,
    }
}

fn garbled_or_audit(seccomp: bool, why: &str) -> Line {
    if seccomp {
        garbled(why, None)
    } else {
        Line::Audit { serial: None }
    }
}

/// The byte offset just past the record type and whether it is seccomp's: `type=1326` or
/// `type=SECCOMP` (kernel, auditd), or `audit[PID]: SECCOMP` (journald); `None` when the line
/// is not an audit record.
fn record_type(line: &str) -> Option<(usize, bool)> {
    let mut previous = "";
    for (at, token) in tokens(line) {
        let end = at + token.len();
        if let Some(kind) = token.strip_prefix("type=") {
            let known = !kind.is_empty()
                && kind
                    .bytes()
                    .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase() || b == b'_');
            if known {
                return Some((end, kind == "1326" || kind == "SECCOMP"));
            }
        }
        if previous.starts_with("audit[") && previous.ends_with("]:") {
            return Some((end, token == "SECCOMP"));
        }
        previous = token;
    }
    None
}

/// The whitespace-separated tokens of `text` with their byte offsets.
fn tokens(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.split_ascii_whitespace()
        .map(move |t| (t.as_ptr() as usize - text.as_ptr() as usize, t))
}

/// `key=value` fields, the first of each key; tokens without `=` (AppArmor's `(enforce)`
/// after `subj=…`) are skipped.
fn fields(text: &str) -> BTreeMap<&str, &str> {
    let mut out = BTreeMap::new();
    for (_, token) in tokens(text) {
        let Some((key, value)) = token.split_once('=') else {
            continue;
        };
        if !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            out.entry(key).or_insert(value);
        }
    }
    out
}

fn record(
    fields: &BTreeMap<&str, &str>,
    stamp: Option<Stamp>,
    serial: Option<u64>,
) -> Result<Record, String> {
    let arch = fields
        .get("arch")
        .ok_or("no arch= field (cut short?)")?
        .trim();
    let syscall = fields
        .get("syscall")
        .ok_or("no syscall= field (cut short?)")?
        .trim();
    // Raw records write the arch in hex; `ausearch -i` writes its name.
    let raw_arch = u32::from_str_radix(arch, 16).ok();
    let arch_code = match (raw_arch, arch) {
        (Some(code), _) => code,
        (None, "x86_64") => ARCH_X86_64,
        (None, "i386") => ARCH_I386,
        (None, _)
            if !arch.is_empty() && arch.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') =>
        {
            return Ok(other_arch(fields, arch, syscall, stamp, serial));
        }
        (None, _) => return Err(format!("arch={arch} is not an architecture")),
    };
    let abi = match arch_code {
        ARCH_X86_64 => Abi::X86_64,
        ARCH_I386 => Abi::I386,
        _ => return Ok(other_arch(fields, arch, syscall, stamp, serial)),
    };
    let nr = match syscall.parse::<u64>() {
        Ok(nr) => nr,
        Err(_) if raw_arch.is_none() => number_of(abi, syscall)
            .ok_or_else(|| format!("syscall={syscall} is not an {abi} syscall"))?,
        Err(_) => return Err(format!("syscall={syscall} is not a number")),
    };
    let (abi, nr) = if abi == Abi::X86_64 && nr & X32_SYSCALL_BIT != 0 {
        (Abi::X32, nr & !X32_SYSCALL_BIT)
    } else {
        (abi, nr)
    };
    let nr = u32::try_from(nr)
        .ok()
        .filter(|n| *n < MAX_SYSCALL_NR)
        .ok_or_else(|| format!("syscall={syscall} is out of range"))?;
    let answer = match fields.get("code") {
        None => None,
        Some(code) => Some(match code.strip_prefix("0x") {
            Some(hex) => {
                Answer::from_code(u32::from_str_radix(hex, 16).map_err(|_| bad("code", code))?)
            }
            None => Answer::from_word(code).ok_or_else(|| bad("code", code))?,
        }),
    };
    let raw = raw_arch.is_some();
    Ok(Record {
        stamp,
        serial,
        pid: pid(fields)?,
        comm: fields.get("comm").map(|v| text_value(v, raw)),
        exe: fields.get("exe").map(|v| text_value(v, raw)),
        call: Call::Known(SyscallId { abi, nr }),
        answer,
    })
}

fn other_arch(
    fields: &BTreeMap<&str, &str>,
    arch: &str,
    syscall: &str,
    stamp: Option<Stamp>,
    serial: Option<u64>,
) -> Record {
    Record {
        stamp,
        serial,
        pid: pid(fields).ok().flatten(),
        comm: fields.get("comm").map(|v| text_value(v, true)),
        exe: fields.get("exe").map(|v| text_value(v, true)),
        call: Call::OtherArch {
            arch: arch.to_string(),
            nr: syscall.parse().unwrap_or(u64::MAX),
        },
        answer: fields.get("code").and_then(|c| {
            c.strip_prefix("0x")
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .map(Answer::from_code)
        }),
    }
}

fn bad(key: &str, value: &str) -> String {
    format!("{key}={value} can't be read")
}

fn pid(fields: &BTreeMap<&str, &str>) -> Result<Option<u32>, String> {
    fields
        .get("pid")
        .map(|p| p.parse::<u32>().map_err(|_| bad("pid", p)))
        .transpose()
}

/// Syscall numbers beyond this are no syscall of any ABI: a garbled record.
const MAX_SYSCALL_NR: u32 = 4096;

/// The number `name` has in `abi`'s table (`ausearch -i` names syscalls).
fn number_of(abi: Abi, name: &str) -> Option<u64> {
    (0..tracer_common::NR_PER_ABI as u32)
        .find(|nr| abi.name(*nr) == Some(name))
        .map(u64::from)
}

/// A `comm`/`exe` value: quoted as is, or, when the kernel found characters it doesn't print
/// (spaces, quotes, control characters), hex-encoded without quotes.
fn text_value(value: &str, raw: bool) -> String {
    if let Some(inner) = value.strip_prefix('"') {
        return inner.strip_suffix('"').unwrap_or(inner).to_string();
    }
    if raw && value.len().is_multiple_of(2) && value.bytes().all(|b| b.is_ascii_hexdigit()) {
        let bytes: Option<Vec<u8>> = (0..value.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&value[i..i + 2], 16).ok())
            .collect();
        if let Some(bytes) = bytes {
            return String::from_utf8_lossy(&bytes).into_owned();
        }
    }
    value.to_string()
}

/// Audit serial numbers seen, as ranges: the kernel numbers every record it emits, so a hole
/// between the first and the last is a record this log doesn't have.
#[derive(Clone, Debug, Default)]
pub struct Serials {
    /// start → end (inclusive), disjoint and not adjacent.
    ranges: BTreeMap<u64, u64>,
}

impl Serials {
    /// Adds `serial`; false when it was there already (the same record read twice).
    pub fn insert(&mut self, serial: u64) -> bool {
        let below = self
            .ranges
            .range(..=serial)
            .next_back()
            .map(|(s, e)| (*s, *e));
        if let Some((_, end)) = below
            && serial <= end
        {
            return false;
        }
        let above = serial
            .checked_add(1)
            .and_then(|next| self.ranges.get(&next).map(|end| (next, *end)));
        let start = match below {
            Some((start, end)) if end.checked_add(1) == Some(serial) => start,
            _ => serial,
        };
        let end = match above {
            Some((next, end)) => {
                self.ranges.remove(&next);
                end
            }
            None => serial,
        };
        self.ranges.insert(start, end);
        true
    }

    pub fn contains(&self, serial: u64) -> bool {
        self.ranges
            .range(..=serial)
            .next_back()
            .is_some_and(|(_, end)| serial <= *end)
    }

    /// How many serials between the lowest and the highest seen are missing.
    pub fn missing(&self) -> u64 {
        let mut missing = 0;
        let mut previous_end: Option<u64> = None;
        for (start, end) in &self.ranges {
            if let Some(prev) = previous_end {
                missing += start - prev - 1;
            }
            previous_end = Some(*end);
        }
        missing
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }
}

/// Lines of a log, each at most [`MAX_LINE`] bytes (the rest of a longer one is skipped), with
/// bytes that aren't UTF-8 replaced: a log is never refused for its contents.
pub struct Lines<R> {
    reader: R,
    buf: Vec<u8>,
}

/// One line read by [`Lines`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogLine {
    pub text: String,
    /// The line was longer than [`MAX_LINE`] and was cut there.
    pub cut: bool,
}

impl<R: BufRead> Lines<R> {
    pub fn new(reader: R) -> Self {
        Lines {
            reader,
            buf: Vec::new(),
        }
    }

    /// The next line, `None` at the end.
    pub fn next_line(&mut self) -> std::io::Result<Option<LogLine>> {
        self.buf.clear();
        let mut cut = false;
        let mut any = false;
        loop {
            let available = match self.reader.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if available.is_empty() {
                if !any {
                    return Ok(None);
                }
                break;
            }
            any = true;
            let (take, used, done) = match available.iter().position(|b| *b == b'\n') {
                Some(i) => (i, i + 1, true),
                None => (available.len(), available.len(), false),
            };
            let room = MAX_LINE.saturating_sub(self.buf.len());
            if take > room {
                cut = true;
            }
            self.buf.extend_from_slice(&available[..take.min(room)]);
            self.reader.consume(used);
            if done {
                break;
            }
        }
        if self.buf.last() == Some(&b'\r') {
            self.buf.pop();
        }
        Ok(Some(LogLine {
            text: String::from_utf8_lossy(&self.buf).into_owned(),
            cut,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seccomp(line: &str) -> Record {
        match parse_line(line) {
            Line::Seccomp(r) => r,
            other => panic!("{line}: {other:?}"),
        }
    }

    fn id(abi: Abi, nr: u32) -> Call {
        Call::Known(SyscallId { abi, nr })
    }

    // Lines as this machine's kernel (6.18) wrote them for a busybox `mkdir` under
    // SCMP_ACT_LOG: dmesg, /dev/kmsg, the netlink payload prefixed with its type.
    const DMESG: &str = r#"[ 2186.302780] audit: type=1326 audit(1795910689.168:7): auid=4294967295 uid=0 gid=0 ses=4294967295 pid=7840 comm="mkdir" exe="/bin/busybox" sig=0 arch=c000003e syscall=83 compat=0 ip=0x47b567 code=0x7ffc0000"#;

    #[test]
    fn kernel_log_record() {
        let r = seccomp(DMESG);
        assert_eq!(r.stamp, Some(Stamp(1_795_910_689_168)));
        assert_eq!(r.serial, Some(7));
        assert_eq!(r.pid, Some(7840));
        assert_eq!(r.comm.as_deref(), Some("mkdir"));
        assert_eq!(r.exe.as_deref(), Some("/bin/busybox"));
        assert_eq!(r.call, id(Abi::X86_64, 83));
        assert_eq!(r.answer, Some(Answer::Log));
        assert_eq!(r.stamp.unwrap().rfc3339(), "2026-11-29T00:04:49.168Z");
        let kmsg = DMESG.replacen("[ 2186.302780] ", "5,1234,2186302780,-;", 1);
        assert_eq!(seccomp(&kmsg), r);
        let netlink = DMESG.replacen("[ 2186.302780] audit: ", "", 1);
        assert_eq!(seccomp(&netlink), r);
    }

    #[test]
    fn journal_and_syslog_prefixes() {
        let journal = DMESG.replacen("[ 2186.302780] ", "Nov 29 00:04:49 host kernel: ", 1);
        assert_eq!(seccomp(&journal).serial, Some(7));
        // journald's own audit reader: no stamp, the type by name.
        let journald = r#"Nov 29 00:04:49 host audit[7840]: SECCOMP auid=4294967295 uid=0 gid=0 ses=4294967295 subj=docker-default (enforce) pid=7840 comm="mkdir" exe="/bin/busybox" sig=0 arch=c000003e syscall=83 compat=0 ip=0x47b567 code=0x7ffc0000"#;
        let r = seccomp(journald);
        assert_eq!((r.stamp, r.serial, r.pid), (None, None, Some(7840)));
        assert_eq!(r.call, id(Abi::X86_64, 83));
        assert_eq!(
            parse_line("Nov 29 00:04:49 host audit[7840]: AVC apparmor=\"DENIED\""),
            Line::Audit { serial: None }
        );
    }

    #[test]
    fn auditd_records() {
        let raw = "node=web-1 type=SECCOMP msg=audit(1795910689.168:7): auid=4294967295 uid=0 gid=0 ses=4294967295 subj=docker-default (enforce) pid=7840 comm=\"mkdir\" exe=\"/bin/busybox\" sig=0 arch=c000003e syscall=83 compat=0 ip=0x47b567 code=0x7ffc0000\x1dAUID=\"unset\" UID=\"root\" GID=\"root\" ARCH=x86_64 SYSCALL=mkdir";
        let r = seccomp(raw);
        assert_eq!((r.serial, r.pid), (Some(7), Some(7840)));
        assert_eq!(r.call, id(Abi::X86_64, 83));
        assert_eq!(r.answer, Some(Answer::Log));
        // ausearch -i: local time, names instead of numbers.
        let interpreted = "type=SECCOMP msg=audit(11/29/2026 00:04:49.168:7) : auid=unset uid=root gid=root ses=unset pid=7840 comm=mkdir exe=/bin/busybox sig=SIG0 arch=x86_64 syscall=mkdir compat=0 ip=0x47b567 code=log";
        let r = seccomp(interpreted);
        assert_eq!((r.stamp, r.serial), (None, Some(7)));
        assert_eq!(r.call, id(Abi::X86_64, 83));
        assert_eq!(r.answer, Some(Answer::Log));
        assert_eq!(r.comm.as_deref(), Some("mkdir"));
        // Other record types count only for their serials.
        let syscall =
            "type=SYSCALL msg=audit(1795910689.170:8): arch=c000003e syscall=59 success=yes exit=0";
        assert_eq!(parse_line(syscall), Line::Audit { serial: Some(8) });
    }

    #[test]
    fn i386_and_x32() {
        let i386 = DMESG.replace(
            "arch=c000003e syscall=83 compat=0",
            "arch=40000003 syscall=39 compat=1",
        );
        assert_eq!(seccomp(&i386).call, id(Abi::I386, 39));
        // x32: x86_64's arch, the number with bit 30 set (0x40000000 + 83).
        let x32 = DMESG.replace("syscall=83 compat=0", "syscall=1073741907 compat=1");
        assert_eq!(seccomp(&x32).call, id(Abi::X32, 83));
        let aarch64 = DMESG.replace("arch=c000003e", "arch=c00000b7");
        assert_eq!(
            seccomp(&aarch64).call,
            Call::OtherArch {
                arch: "c00000b7".into(),
                nr: 83
            }
        );
    }

    #[test]
    fn answers() {
        let errno = DMESG.replace("code=0x7ffc0000", "code=0x50001");
        assert_eq!(seccomp(&errno).answer, Some(Answer::Errno(1)));
        let kill = DMESG.replace("code=0x7ffc0000", "code=0x80000000");
        assert_eq!(seccomp(&kill).answer, Some(Answer::KillProcess));
        let thread = DMESG.replace("code=0x7ffc0000", "code=0x0");
        assert_eq!(seccomp(&thread).answer, Some(Answer::KillThread));
        // A code cut short is not mistaken for a kill.
        let cut = DMESG.replace("code=0x7ffc0000", "code=0x7ffc");
        assert_eq!(seccomp(&cut).answer, Some(Answer::Unknown(0x7ffc)));
        let old = DMESG.replace(" code=0x7ffc0000", "");
        assert_eq!(seccomp(&old).answer, None);
        assert_eq!(Answer::Errno(38).label(), "SCMP_ACT_ERRNO(38)");
    }

    #[test]
    fn hex_encoded_names() {
        // The kernel hex-encodes values with spaces or quotes.
        let line = DMESG
            .replace("comm=\"mkdir\"", "comm=6D79206D6B646972")
            .replace("exe=\"/bin/busybox\"", "exe=2F746D702F6D7920626F78");
        let r = seccomp(&line);
        assert_eq!(r.comm.as_deref(), Some("my mkdir"));
        assert_eq!(r.exe.as_deref(), Some("/tmp/my box"));
    }

    #[test]
    fn garbled_lines_are_named_not_fatal() {
        let cut = &DMESG[..DMESG.find(" syscall=").unwrap()];
        assert_eq!(
            parse_line(cut),
            garbled("no syscall= field (cut short?)", Some(7))
        );
        let before_arch = &DMESG[..DMESG.find("sig=").unwrap()];
        assert!(matches!(parse_line(before_arch), Line::Garbled { .. }));
        let empty = DMESG.replace("arch=c000003e", "arch=");
        assert!(matches!(parse_line(&empty), Line::Garbled { .. }));
        let stamp = DMESG.replace("audit(1795910689.168:7)", "audit(1795910689.168");
        assert!(matches!(parse_line(&stamp), Line::Garbled { .. }));
        let nr = DMESG.replace("syscall=83", "syscall=8x3");
        assert_eq!(
            parse_line(&nr),
            garbled("syscall=8x3 is not a number", Some(7))
        );
        let huge = DMESG.replace("syscall=83", "syscall=99999999");
        assert!(matches!(parse_line(&huge), Line::Garbled { .. }));
        let pid = DMESG.replace("pid=7840", "pid=-1");
        assert!(matches!(parse_line(&pid), Line::Garbled { .. }));
        for other in [
            "",
            "[ 2124.069256] docker0: port 1(veth03b400a) entered disabled state",
            "random text with type= inside",
            "\u{fffd}\u{fffd} binary",
        ] {
            assert_eq!(parse_line(other), Line::Other, "{other}");
        }
    }

    #[test]
    fn serial_holes_are_counted() {
        let mut s = Serials::default();
        for n in [40, 41, 43, 42, 49, 50, 45] {
            assert!(s.insert(n));
        }
        assert!(!s.insert(41));
        assert!(s.contains(45) && !s.contains(44) && !s.contains(51));
        assert_eq!(s.missing(), 4); // 44, 46, 47, 48
        assert_eq!(Serials::default().missing(), 0);
    }

    #[test]
    fn lines_are_bounded_and_lossy() {
        let mut input = b"first\r\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', MAX_LINE + 10));
        input.extend(b"\nbad \xff byte\nlast");
        let mut lines = Lines::new(&input[..]);
        let first = lines.next_line().unwrap().unwrap();
        assert_eq!((first.text.as_str(), first.cut), ("first", false));
        let long = lines.next_line().unwrap().unwrap();
        assert!(long.cut);
        assert_eq!(long.text.len(), MAX_LINE);
        assert_eq!(
            lines.next_line().unwrap().unwrap().text,
            "bad \u{fffd} byte"
        );
        assert_eq!(lines.next_line().unwrap().unwrap().text, "last");
        assert_eq!(lines.next_line().unwrap(), None);
    }
}
