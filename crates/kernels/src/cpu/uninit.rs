//! Output buffers that a kernel overwrites entirely, allocated without zero-filling.
//!
//! With freed memory kept in the heap (`cpu_alloc`), every `vec![0.0; n]` of a step is a
//! `memset` of recycled memory: 3–6 % of the bench rows' time in the profiles
//! (`docs/performance.md`). The kernels whose every output element is written exactly once
//! (batch norm, the fused activations, the GEMM-written conv outputs) allocate through
//! [`vec_written_by`] instead.

use std::mem::MaybeUninit;

use rayon::prelude::*;

/// Allocates `n` floats, lets `init` write them, and returns them as a `Vec<f32>`.
///
/// # Safety
/// `init` must write every one of the `n` elements (through the `MaybeUninit` slice, or
/// through its pointer, e.g. as a GEMM destination that is not read), and must not read any
/// element before writing it.
pub(crate) unsafe fn vec_written_by(
    n: usize,
    init: impl FnOnce(&mut [MaybeUninit<f32>]),
) -> Vec<f32> {
    let mut v: Vec<f32> = Vec::with_capacity(n);
    init(&mut v.spare_capacity_mut()[..n]);
    // SAFETY: the caller guarantees `init` wrote all `n` elements.
    unsafe { v.set_len(n) };
    v
}

/// Elements per parallel task of [`zip_map`].
const CHUNK: usize = 1 << 14;

/// `out[i] = f(a[i], b[i])`, in parallel, into a buffer that is not zero-filled.
///
/// # Panics
/// If `a` and `b` differ in length.
pub(crate) fn zip_map(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32 + Sync) -> Vec<f32> {
    assert_eq!(a.len(), b.len(), "element-wise: lengths differ");
    let fill = |out: &mut [MaybeUninit<f32>]| {
        out.par_chunks_mut(CHUNK)
            .zip(a.par_chunks(CHUNK).zip(b.par_chunks(CHUNK)))
            .for_each(|(o, (a, b))| {
                for ((o, &x), &y) in o.iter_mut().zip(a).zip(b) {
                    o.write(f(x, y));
                }
            })
    };
    // SAFETY: equal-length chunks of `a`, `b` and the output: every element is written.
    unsafe { vec_written_by(a.len(), fill) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_what_init_wrote() {
        // SAFETY: the closure writes all 1000 elements.
        let v = unsafe {
            vec_written_by(1000, |s| {
                for (i, o) in s.iter_mut().enumerate() {
                    o.write(i as f32);
                }
            })
        };
        assert_eq!(v.len(), 1000);
        assert!(v.iter().enumerate().all(|(i, &x)| x == i as f32));
        // SAFETY: nothing to write.
        assert!(unsafe { vec_written_by(0, |_| {}) }.is_empty());
    }
}
