//! The smallest program that exits 0: a static ELF of one `PT_LOAD` segment, for the runtime
//! probe, which needs a binary that runs in an empty root filesystem on any host.

/// Where the segment is loaded.
const BASE: u64 = 0x40_0000;
const EHDR_SIZE: u16 = 64;
const PHDR_SIZE: u16 = 56;

/// `exit(0)` for the host architecture, and its ELF machine number.
fn exit_zero() -> Option<(u16, &'static [u8])> {
    if cfg!(target_arch = "x86_64") {
        // mov edi, 0; mov eax, 60 (exit); syscall
        Some((62, &[0xbf, 0, 0, 0, 0, 0xb8, 60, 0, 0, 0, 0x0f, 0x05]))
    } else if cfg!(target_arch = "aarch64") {
        // mov x0, #0; mov x8, #93 (exit); svc #0
        Some((
            183,
            &[
                0x00, 0x00, 0x80, 0xd2, 0xa8, 0x0b, 0x80, 0xd2, 0x01, 0x00, 0x00, 0xd4,
            ],
        ))
    } else {
        None
    }
}

/// The program's bytes, or `None` on an architecture it is not written for.
pub(crate) fn true_binary() -> Option<Vec<u8>> {
    let (machine, code) = exit_zero()?;
    let header_len = u64::from(EHDR_SIZE + PHDR_SIZE);
    let total = header_len + code.len() as u64;
    let mut elf = Vec::with_capacity(total as usize);
    // e_ident: magic, 64-bit, little-endian, version 1, System V ABI, padding.
    elf.extend_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    elf.extend_from_slice(&2u16.to_le_bytes()); // e_type: executable
    elf.extend_from_slice(&machine.to_le_bytes());
    elf.extend_from_slice(&1u32.to_le_bytes()); // e_version
    elf.extend_from_slice(&(BASE + header_len).to_le_bytes()); // e_entry
    elf.extend_from_slice(&u64::from(EHDR_SIZE).to_le_bytes()); // e_phoff
    elf.extend_from_slice(&0u64.to_le_bytes()); // e_shoff
    elf.extend_from_slice(&0u32.to_le_bytes()); // e_flags
    elf.extend_from_slice(&EHDR_SIZE.to_le_bytes());
    elf.extend_from_slice(&PHDR_SIZE.to_le_bytes());
    elf.extend_from_slice(&1u16.to_le_bytes()); // e_phnum
    elf.extend_from_slice(&[0; 6]); // e_shentsize, e_shnum, e_shstrndx
    elf.extend_from_slice(&1u32.to_le_bytes()); // p_type: PT_LOAD
    elf.extend_from_slice(&5u32.to_le_bytes()); // p_flags: R + X
    elf.extend_from_slice(&0u64.to_le_bytes()); // p_offset
    elf.extend_from_slice(&BASE.to_le_bytes()); // p_vaddr
    elf.extend_from_slice(&BASE.to_le_bytes()); // p_paddr
    elf.extend_from_slice(&total.to_le_bytes()); // p_filesz
    elf.extend_from_slice(&total.to_le_bytes()); // p_memsz
    elf.extend_from_slice(&0x1000u64.to_le_bytes()); // p_align
    elf.extend_from_slice(code);
    Some(elf)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_tiny_program_runs_and_exits_zero() {
        use std::os::unix::fs::PermissionsExt;
        let Some(bytes) = super::true_binary() else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("true");
        std::fs::write(&path, bytes).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        let status = std::process::Command::new(&path).status().unwrap();
        assert!(status.success());
    }
}
