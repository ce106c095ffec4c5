//! Keep freed memory in the process instead of returning it to the kernel (issue 7).
//!
//! Why: a CPU training step allocates and frees tensors of tens of MB each (a NATS block-0
//! activation at batch 256 is 64 MB). glibc serves every allocation above its mmap
//! threshold with a fresh `mmap` and unmaps it on free, so each new tensor page-faults and
//! the kernel zeroes every page again. In the profile of the NATS block-0 row that was
//! ~18 % of the samples (`clear_page_erms`, `exc_page_fault`, `unmap_page_range`, …) and
//! 11 of 39 CPU seconds were system time. With mmap off and trimming disabled the freed
//! blocks are reused from the heap: system time fell to under 1 s, peak RSS unchanged
//! (see `docs/performance.md`).
//!
//! Call [`keep_freed_memory`] once at the start of a binary that trains on the CPU. It is a
//! no-op outside Linux/glibc.

/// Tells glibc malloc never to use `mmap` for large blocks and never to trim the heap, so
/// freed tensor buffers are reused without page faults. Returns whether glibc accepted both
/// settings (always `false` on other platforms).
pub fn keep_freed_memory() -> bool {
    imp::keep_freed_memory()
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod imp {
    pub fn keep_freed_memory() -> bool {
        // SAFETY: `mallopt` only changes allocator parameters; it is safe to call at any
        // time, from any thread, and returns 0 when a value is rejected.
        unsafe {
            let no_mmap = libc::mallopt(libc::M_MMAP_MAX, 0) == 1;
            let no_trim = libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX) == 1;
            no_mmap && no_trim
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
mod imp {
    pub fn keep_freed_memory() -> bool {
        false
    }
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    use super::*;

    #[test]
    fn glibc_accepts_the_settings_and_large_blocks_still_work() {
        assert!(keep_freed_memory());
        // A block far above the default mmap threshold now comes from the heap.
        let v = vec![1.0f32; 16 << 20];
        assert_eq!(v.iter().map(|&x| x as f64).sum::<f64>(), (16 << 20) as f64);
    }
}
