//! The process's own memory, as the operating system counts it: resident set size now and at
//! its peak. On the software Vulkan driver (and on unified-memory devices, where the OS counts
//! GPU allocations in the app's footprint) this includes GPU buffers; everywhere it includes the
//! driver's own structures and compiled pipelines, which no wgpu API reports.
//!
//! Linux (and Android) read `/proc/self/status`; other platforms report nothing, and the memory
//! plan falls back to its estimates there (docs/MEMORY.md).

/// Resident bytes now and at the peak so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessMemory {
    pub resident: u64,
    pub peak: u64,
}

/// The process's memory now, when the platform says.
pub fn now() -> Option<ProcessMemory> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let field = |name: &str| -> Option<u64> {
            let line = status.lines().find(|l| l.starts_with(name))?;
            let kb: u64 = line[name.len()..].split_whitespace().next()?.parse().ok()?;
            Some(kb * 1024)
        };
        Some(ProcessMemory {
            resident: field("VmRSS:")?,
            peak: field("VmHWM:")?,
        })
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        None
    }
}

/// Gives the heap's free pages back to the operating system. glibc keeps freed small blocks
/// in its heap, so the transient allocations of loading (building the tokenizer, staging
/// uploads) would otherwise stay resident for the life of the process. Elsewhere a no-op.
pub fn return_free_heap() {
    #[cfg(all(any(target_os = "linux", target_os = "android"), target_env = "gnu"))]
    // SAFETY: malloc_trim only releases memory the allocator already considers free.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    #[cfg(target_os = "linux")]
    fn reads_this_process() {
        let m = super::now().unwrap();
        assert!(m.resident > 1 << 20 && m.peak >= m.resident, "{m:?}");
        // Touching 64 MiB raises both.
        let v = vec![1u8; 64 << 20];
        let after = super::now().unwrap();
        assert!(
            after.resident >= m.resident + (60 << 20),
            "{m:?} -> {after:?}"
        );
        assert!(v.iter().map(|&b| u64::from(b)).sum::<u64>() > 0);
    }
}
