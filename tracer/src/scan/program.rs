//! An ELF executable as the scanner needs it: how it is linked, its code, where its functions
//! start and what they are called (symbols, unwind tables, Go's pclntab, call targets), and
//! which function addresses are stored as data (called through a pointer).
use std::collections::{BTreeMap, BTreeSet, HashSet};

use iced_x86::{Decoder, DecoderOptions, FlowControl, Mnemonic, OpKind};
use object::{
    Object as _, ObjectSection as _, ObjectSymbol as _, SectionKind,
    read::elf::{Dyn as _, ElfFile64, FileHeader as _, ProgramHeader as _},
};

use super::{
    ScanError,
    gobin::{self, GoInfo},
};

/// How an executable gets its code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Linking {
    Static,
    /// Loaded by this interpreter (`/lib64/ld-linux-x86-64.so.2`), with the libraries it needs.
    Dynamic {
        interpreter: String,
    },
}

/// A parsed x86-64 ELF executable.
pub struct Program<'a> {
    pub linking: Linking,
    pub go: Option<GoInfo>,
    /// Executable sections: address and bytes.
    pub code: Vec<(u64, &'a [u8])>,
    /// Every function start, ascending, with its name when one is known.
    pub functions: BTreeMap<u64, Option<String>>,
    /// Go functions' argument areas (ABI0 results are written there).
    pub args_area: std::collections::HashMap<u64, i64>,
    /// The entries of Go's functions (they keep no register for their caller).
    pub go_functions: HashSet<u64>,
    /// Code addresses stored in data (8-byte words, or relocations' addends).
    pub stored_addresses: HashSet<u64>,
    /// The whole file, to look for strings in.
    pub bytes: &'a [u8],
    /// Sections with contents in the file: address and bytes.
    pub data: Vec<(u64, &'a [u8])>,
    /// Data objects the symbol table names: start and end.
    pub objects: BTreeMap<u64, u64>,
    /// Functions it takes from shared libraries, by name (`pthread_create`).
    pub imports: BTreeSet<String>,
}

pub fn is_elf(head: &[u8]) -> bool {
    head.starts_with(b"\x7fELF")
}

impl<'a> Program<'a> {
    /// Parses `bytes`; `Err(Other)` for ELF files that are not x86-64 executables.
    pub fn parse(bytes: &'a [u8]) -> Result<Program<'a>, ScanError> {
        let elf = ElfFile64::<object::Endianness>::parse(bytes)
            .map_err(|e| ScanError::NotExecutable(not_x86_64(bytes).unwrap_or(e.to_string())))?;
        if let Some(why) = not_x86_64(bytes) {
            return Err(ScanError::NotExecutable(why));
        }
        let endian = elf.endian();
        let header = elf.elf_header();
        let mut interpreter = None;
        let mut pie = false;
        let mut dynamic = false;
        for ph in elf.elf_program_headers() {
            if let Ok(Some(interp)) = ph.interpreter(endian, bytes) {
                interpreter = Some(String::from_utf8_lossy(interp).into_owned());
            }
            if let Ok(Some(entries)) = ph.dynamic(endian, bytes) {
                dynamic = true;
                for d in entries {
                    if d.d_tag(endian) == object::elf::DT_FLAGS_1
                        && d.d_val(endian) & object::elf::DF_1_PIE.0 != 0
                    {
                        pie = true;
                    }
                }
            }
        }
        let shared = header.e_type(endian) == object::elf::ET_DYN;
        if shared && interpreter.is_none() && !pie && dynamic {
            return Err(ScanError::NotExecutable("a shared library".into()));
        }
        let linking = match interpreter {
            Some(interpreter) => Linking::Dynamic { interpreter },
            None => Linking::Static,
        };
        let mut code = Vec::new();
        for s in elf.sections() {
            if s.kind() == SectionKind::Text
                && let Ok(data) = s.data()
                && !data.is_empty()
            {
                code.push((s.address(), data));
            }
        }
        code.sort_by_key(|(a, _)| *a);
        let in_code = |a: u64| {
            code.iter()
                .any(|(s, d)| (*s..*s + d.len() as u64).contains(&a))
        };
        let mut functions: BTreeMap<u64, Option<String>> = BTreeMap::new();
        let mut name_at = |addr: u64, name: Option<String>| {
            if !in_code(addr) {
                return;
            }
            let slot = functions.entry(addr).or_default();
            if slot.is_none() {
                *slot = name;
            }
        };
        let mut objects = BTreeMap::new();
        let imports = elf
            .dynamic_symbols()
            .filter(|s| s.is_undefined() && s.kind() == object::SymbolKind::Text)
            .filter_map(|s| s.name().ok().map(str::to_string))
            .collect();
        for sym in elf.symbols().chain(elf.dynamic_symbols()) {
            if sym.kind() == object::SymbolKind::Text && sym.address() != 0 {
                name_at(sym.address(), sym.name().ok().map(str::to_string));
            }
            if sym.kind() == object::SymbolKind::Data && sym.size() > 0 {
                objects.insert(sym.address(), sym.address() + sym.size());
            }
        }
        let mut args_area = std::collections::HashMap::new();
        let read = |addr: u64, len: usize| read_at(&elf, addr, len);
        let go = elf
            .section_by_name(".go.buildinfo")
            .and_then(|s| s.data().ok())
            .and_then(|d| gobin::build_info(d, read));
        let text = elf
            .section_by_name(".text")
            .map(|s| s.address())
            .unwrap_or(0);
        let go_functions = find_pclntab(&elf).and_then(|(addr, table)| {
            // A position-independent binary has the text start relocated, not written.
            let relocated = elf.dynamic_relocations().and_then(|mut relocs| {
                relocs.find_map(|(at, r)| (at == addr + 24).then(|| r.addend() as u64))
            });
            gobin::functions(table, relocated.unwrap_or(text))
        });
        let mut go_entries = HashSet::new();
        if let Some(funcs) = &go_functions {
            for f in funcs {
                go_entries.insert(f.entry);
                name_at(f.entry, Some(f.name.clone()));
                if let Some(a) = f.args {
                    args_area.insert(f.entry, a);
                }
            }
        }
        let go = go.or_else(|| go_functions.as_ref().map(|_| GoInfo::default()));
        if let Some(eh) = elf.section_by_name(".eh_frame") {
            for start in fde_starts(eh.address(), eh.data().unwrap_or_default(), text) {
                name_at(start, None);
            }
        }
        name_at(elf.entry(), None);
        for (addr, _) in &code {
            name_at(*addr, None);
        }
        for target in call_targets(&code) {
            name_at(target, None);
        }
        let mut stored_addresses = HashSet::new();
        for s in elf.sections() {
            if s.kind() == SectionKind::Text || s.address() == 0 {
                continue;
            }
            if let Ok(data) = s.data() {
                for w in data.as_chunks::<8>().0 {
                    let v = u64::from_le_bytes(*w);
                    if functions.contains_key(&v) {
                        stored_addresses.insert(v);
                    }
                }
            }
        }
        if let Some(relocs) = elf.dynamic_relocations() {
            for (_, r) in relocs {
                let v = r.addend() as u64;
                if functions.contains_key(&v) {
                    stored_addresses.insert(v);
                }
            }
        }
        let data = elf
            .sections()
            .filter(|s| s.address() != 0 && s.kind() != SectionKind::UninitializedData)
            .filter_map(|s| Some((s.address(), s.data().ok()?)))
            .collect();
        Ok(Program {
            objects,
            imports,
            go_functions: go_entries,
            data,
            linking,
            go,
            code,
            functions,
            args_area,
            stored_addresses,
            bytes,
        })
    }

    /// The code of the function starting at `start`: up to the next function or the end of
    /// its section.
    pub fn function_code(&self, start: u64) -> Option<(u64, &'a [u8])> {
        let (base, data) = self
            .code
            .iter()
            .find(|(s, d)| (*s..*s + d.len() as u64).contains(&start))?;
        let section_end = base + data.len() as u64;
        let end = self
            .functions
            .range(start + 1..)
            .next()
            .map_or(section_end, |(next, _)| (*next).min(section_end));
        let from = (start - base) as usize;
        Some((start, &data[from..(end - base) as usize]))
    }

    /// The little-endian value of `size` (4 or 8) bytes at `addr` as the file holds them.
    pub fn constant(&self, addr: u64, size: usize) -> Option<u64> {
        let (base, bytes) = self
            .data
            .iter()
            .find(|(s, d)| (*s..*s + d.len() as u64).contains(&addr))?;
        let from = (addr - base) as usize;
        let b = bytes.get(from..from + size)?;
        let mut word = [0u8; 8];
        word[..size].copy_from_slice(b);
        Some(u64::from_le_bytes(word))
    }

    /// The data object (start, end) the symbol table says `addr` is in.
    pub fn object_of(&self, addr: u64) -> Option<(u64, u64)> {
        let (start, end) = self.objects.range(..=addr).next_back()?;
        (addr < *end).then_some((*start, *end))
    }

    /// A function's name, or its address for functions without one.
    pub fn name(&self, start: u64) -> String {
        match self.functions.get(&start) {
            Some(Some(name)) => name.clone(),
            _ => format!("0x{start:x}"),
        }
    }

    /// The function an address is in.
    pub fn function_of(&self, addr: u64) -> Option<u64> {
        self.functions.range(..=addr).next_back().map(|(s, _)| *s)
    }
}

/// Why an ELF file is not an x86-64 one, from its header alone.
fn not_x86_64(bytes: &[u8]) -> Option<String> {
    let class = *bytes.get(4)?;
    let machine = u16::from_le_bytes([*bytes.get(18)?, *bytes.get(19)?]);
    match (class, machine) {
        (2, 62) => None,
        (1, 3) => Some("an i386 executable (only x86-64 code is scanned)".into()),
        (_, m) => Some(format!(
            "an executable for machine {m} (only x86-64 code is scanned)"
        )),
    }
}

/// `len` bytes at virtual address `addr`, from the section holding them.
fn read_at(elf: &ElfFile64<'_, object::Endianness>, addr: u64, len: usize) -> Option<Vec<u8>> {
    elf.sections().find_map(|s| {
        let start = s.address();
        if addr < start || addr + len as u64 > start + s.size() {
            return None;
        }
        let data = s.data().ok()?;
        let from = (addr - start) as usize;
        data.get(from..from + len).map(<[u8]>::to_vec)
    })
}

/// Go's function table and its address: its own section, or, in binaries linked by the
/// system linker (cgo, PIE), somewhere in read-only data, found by its header.
fn find_pclntab<'a>(elf: &ElfFile64<'a, object::Endianness>) -> Option<(u64, &'a [u8])> {
    if let Some(s) = elf.section_by_name(".gopclntab")
        && let Ok(data) = s.data()
    {
        return Some((s.address(), data));
    }
    for name in [".data.rel.ro", ".rodata"] {
        let Some(s) = elf.section_by_name(name) else {
            continue;
        };
        let Ok(data) = s.data() else { continue };
        for magic in [0xffff_fff1u32, 0xffff_fff0, 0xffff_fffa, 0xffff_fffb] {
            let mut header = magic.to_le_bytes().to_vec();
            // Two zero bytes, the instruction size quantum (1 on x86) and the pointer size.
            header.extend([0, 0, 1, 8]);
            for at in memchr::memmem::find_iter(data, &header) {
                let table = &data[at..];
                if gobin::functions(table, 0).is_some_and(|f| !f.is_empty()) {
                    return Some((s.address() + at as u64, table));
                }
            }
        }
    }
    None
}

/// Function starts from the unwind tables.
fn fde_starts(address: u64, data: &[u8], text: u64) -> Vec<u64> {
    use gimli::UnwindSection as _;
    let eh = gimli::EhFrame::new(data, gimli::LittleEndian);
    let bases = gimli::BaseAddresses::default()
        .set_eh_frame(address)
        .set_text(text);
    let mut starts = Vec::new();
    let mut entries = eh.entries(&bases);
    while let Ok(Some(entry)) = entries.next() {
        if let gimli::CieOrFde::Fde(partial) = entry
            && let Ok(fde) = partial.parse(|s, b, o| s.cie_from_offset(b, o))
        {
            starts.push(fde.initial_address());
        }
    }
    starts
}

/// Targets of direct calls and code addresses taken, found by decoding the code from start
/// to end.
fn call_targets(code: &[(u64, &[u8])]) -> HashSet<u64> {
    let in_code = |a: u64| {
        code.iter()
            .any(|(s, d)| (*s..*s + d.len() as u64).contains(&a))
    };
    let mut targets = HashSet::new();
    for (base, data) in code {
        let decoder = Decoder::with_ip(64, data, *base, DecoderOptions::NONE);
        for i in decoder {
            if i.flow_control() == FlowControl::Call
                && matches!(i.op0_kind(), OpKind::NearBranch64 | OpKind::NearBranch32)
            {
                targets.insert(i.near_branch_target());
            }
            // A code address taken (a signal restorer, a callback) is called through it.
            if i.mnemonic() == Mnemonic::Lea && i.is_ip_rel_memory_operand() {
                let target = i.ip_rel_memory_address();
                if in_code(target) {
                    targets.insert(target);
                }
            }
        }
    }
    targets
}
