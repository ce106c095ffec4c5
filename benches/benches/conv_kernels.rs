//! The dense convolution forward on plain buffers: the direct kernel that `cpu::conv::forward`
//! takes for few input channels against the im2col + GEMM path it replaced, on the 3×3 layers
//! of the main job's quarter-width NATS supernet (batch 64 = the two views of 32 images).
//! Both give the same bits (`cpu::conv` tests). Run:
//! `cargo bench -p bossnas-benches --bench conv_kernels`.

use bossnas_kernels::cpu::conv::{Geometry, forward, forward_im2col};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn geometry(c_in: usize, hw: usize, c_out: usize, stride: usize) -> Geometry {
    let out = (hw + 2 - 3) / stride + 1;
    Geometry {
        batch: 64,
        c_in,
        h: hw,
        w: hw,
        c_out,
        kh: 3,
        kw: 3,
        stride: [stride, stride],
        pad_top_left: [1, 1],
        h_out: out,
        w_out: out,
    }
}

fn conv_forward(c: &mut Criterion) {
    let mut group = c.benchmark_group("conv3x3_forward_b64");
    group.sample_size(20);
    for (c_in, hw, c_out, stride) in [
        (32, 32, 32, 1),
        (32, 16, 32, 1),
        (16, 32, 16, 1),
        (8, 32, 8, 1),
        (4, 32, 6, 1),
        (2, 32, 2, 1),
        (16, 16, 16, 1),
        (16, 32, 16, 2),
        (8, 16, 8, 2),
    ] {
        let g = geometry(c_in, hw, c_out, stride);
        let x: Vec<f32> = (0..g.batch * c_in * hw * hw)
            .map(|i| (i % 97) as f32 / 97.0 - 0.5)
            .collect();
        let w: Vec<f32> = (0..c_out * c_in * 9)
            .map(|i| (i % 13) as f32 / 13.0 - 0.5)
            .collect();
        let flops = 2 * g.batch * c_out * g.h_out * g.w_out * c_in * 9;
        group.throughput(Throughput::Elements(flops as u64));
        let name = format!("{c_in}to{c_out}_{hw}x{hw}_s{stride}");
        group.bench_function(format!("direct/{name}"), |b| b.iter(|| forward(&x, &w, &g)));
        group.bench_function(format!("im2col_gemm/{name}"), |b| {
            b.iter(|| forward_im2col(&x, &w, &g))
        });
    }
    group.finish();
}

criterion_group!(benches, conv_forward);
criterion_main!(benches);
