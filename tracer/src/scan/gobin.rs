//! What a Go executable says about itself: its build info (Go version, main module) and its
//! function table (pclntab: every function's entry, name and argument area), which stripped
//! binaries keep too.
use serde::Serialize;

/// A Go executable's build info.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct GoInfo {
    /// `go1.19.8`, when the build info says.
    pub version: Option<String>,
    /// The main module's path (`github.com/caddyserver/caddy/v2`), when it was built from one.
    pub module: Option<String>,
}

const BUILDINFO_MAGIC: &[u8] = b"\xff Go buildinf:";

/// Reads `.go.buildinfo` (`section`, at address `addr`); `read` reads memory by address for
/// the old layout, which points at its strings.
pub fn build_info(section: &[u8], read: impl Fn(u64, usize) -> Option<Vec<u8>>) -> Option<GoInfo> {
    let at = memchr::memmem::find(section, BUILDINFO_MAGIC)?;
    let header = section.get(at..at + 32)?;
    let ptr_size = header[14] as usize;
    let flags = header[15];
    let (version, modinfo) = if flags & 2 != 0 {
        let mut rest = &section[at + 32..];
        let version = varint_string(&mut rest)?;
        let modinfo = varint_string(&mut rest).unwrap_or_default();
        (version, modinfo)
    } else {
        if ptr_size != 8 {
            return None;
        }
        let word = |b: &[u8]| {
            b.get(..8)
                .map(|w| u64::from_le_bytes(w.try_into().unwrap_or([0; 8])))
        };
        let string_at = |addr: u64| -> Option<String> {
            let head = read(addr, 16)?;
            let (ptr, len) = (word(&head[..8])?, word(&head[8..])?);
            let bytes = read(ptr, usize::try_from(len).ok().filter(|l| *l < 1 << 20)?)?;
            Some(String::from_utf8_lossy(&bytes).into_owned())
        };
        let version = string_at(word(&header[16..24])?).unwrap_or_default();
        let modinfo = string_at(word(&header[24..32])?).unwrap_or_default();
        (version, modinfo)
    };
    let module = modinfo.lines().find_map(|line| {
        let mut fields = line.split('\t');
        match (fields.next(), fields.next()) {
            (Some(kind), Some(path)) if kind.ends_with("mod") => Some(path.to_string()),
            _ => None,
        }
    });
    Some(GoInfo {
        version: (!version.is_empty()).then_some(version),
        module,
    })
}

fn varint_string(rest: &mut &[u8]) -> Option<String> {
    let mut len = 0usize;
    let mut shift = 0;
    loop {
        let (&b, tail) = rest.split_first()?;
        *rest = tail;
        len |= ((b & 0x7f) as usize) << shift;
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
        if shift > 35 {
            return None;
        }
    }
    let s = rest.get(..len)?;
    *rest = &rest[len..];
    Some(String::from_utf8_lossy(s).into_owned())
}

/// One function of the table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GoFunc {
    pub entry: u64,
    pub name: String,
    /// Bytes of arguments and results on the stack (ABI0), when known.
    pub args: Option<i64>,
}

/// The function table of a pclntab (Go 1.2 to 1.2x layouts); `text` is the address of
/// `.text`, for tables that count from it without saying where it is.
pub fn functions(tab: &[u8], text: u64) -> Option<Vec<GoFunc>> {
    let u32_at = |off: usize| {
        tab.get(off..off + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let u64_at = |off: usize| {
        tab.get(off..off + 8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
    };
    let magic = u32_at(0)?;
    if tab.get(7) != Some(&8) {
        return None;
    }
    let cstr = |off: usize| -> Option<String> {
        let s = tab.get(off..)?;
        let end = memchr::memchr(0, s)?;
        Some(String::from_utf8_lossy(&s[..end]).into_owned())
    };
    let args_of = |v: u32| (v as i32 >= 0).then_some(v as i64);
    let mut out = Vec::new();
    match magic {
        // Go 1.18 (0xfffffff0) and 1.20 and later (0xfffffff1).
        0xffff_fff0 | 0xffff_fff1 => {
            let nfunc = usize::try_from(u64_at(8)?).ok()?;
            let text_start = match u64_at(24)? {
                0 => text,
                t => t,
            };
            let funcnames = usize::try_from(u64_at(32)?).ok()?;
            let pcln = usize::try_from(u64_at(64)?).ok()?;
            for k in 0..nfunc {
                let funcoff = u32_at(pcln + k * 8 + 4)? as usize;
                let f = pcln + funcoff;
                let entry = text_start + u32_at(f)? as u64;
                let name = cstr(funcnames + u32_at(f + 4)? as usize)?;
                out.push(GoFunc {
                    entry,
                    name,
                    args: args_of(u32_at(f + 8)?),
                });
            }
        }
        // Go 1.16 and 1.17.
        0xffff_fffa => {
            let nfunc = usize::try_from(u64_at(8)?).ok()?;
            let funcnames = usize::try_from(u64_at(24)?).ok()?;
            let pcln = usize::try_from(u64_at(56)?).ok()?;
            for k in 0..nfunc {
                let funcoff = usize::try_from(u64_at(pcln + k * 16 + 8)?).ok()?;
                let f = pcln + funcoff;
                out.push(GoFunc {
                    entry: u64_at(f)?,
                    name: cstr(funcnames + u32_at(f + 8)? as usize)?,
                    args: args_of(u32_at(f + 12)?),
                });
            }
        }
        // Go 1.2 to 1.15.
        0xffff_fffb => {
            let nfunc = usize::try_from(u64_at(8)?).ok()?;
            for k in 0..nfunc {
                let funcoff = usize::try_from(u64_at(16 + k * 16 + 8)?).ok()?;
                out.push(GoFunc {
                    entry: u64_at(funcoff)?,
                    name: cstr(u32_at(funcoff + 8)? as usize)?,
                    args: args_of(u32_at(funcoff + 12)?),
                });
            }
        }
        _ => return None,
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_build_info() {
        let mut section = BUILDINFO_MAGIC.to_vec();
        section.extend([8, 2]);
        section.resize(32, 0);
        section.push(8);
        section.extend(b"go1.19.8");
        let modinfo = "0w\u{af}\u{c}\u{92}t\u{8}\u{2}A\u{e1}\u{c1}\u{7}\u{e6}\u{d6}\u{18}\u{e6}path\texample.com/gotest\nmod\texample.com/gotest\t(devel)\t\n";
        section.push(modinfo.len() as u8);
        section.extend(modinfo.as_bytes());
        let info = build_info(&section, |_, _| None).expect("build info");
        assert_eq!(info.version.as_deref(), Some("go1.19.8"));
        assert_eq!(info.module.as_deref(), Some("example.com/gotest"));
    }
}
