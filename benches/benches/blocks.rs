//! Forward + backward on burn-flex (CPU) of the blocks the issues name:
//! one ResConv and one ResAtt (256 channels, 14×14, batch 32) and one NATS block-0 path
//! (widths 64, 32×32, batch 256). Run: `cargo bench -p bossnas-benches`.

use bossnas_benches::*;
use criterion::{Criterion, criterion_group, criterion_main};

fn blocks(c: &mut Criterion) {
    let dev = device();
    let mut group = c.benchmark_group("flex_fwd_bwd");
    group.sample_size(10);

    let conv = res_conv(256, &dev);
    let x = input(32, 256, 14, &dev);
    group.bench_function("res_conv_256c_14x14_b32", |b| {
        b.iter(|| res_conv_step(&conv, x.clone()))
    });

    let att = res_att(256, &dev);
    group.bench_function("res_att_256c_14x14_b32", |b| {
        b.iter(|| res_att_step(&att, x.clone()))
    });

    let nats = nats_supernet(&dev);
    let images = input(256, 3, 32, &dev);
    group.bench_function("nats_block0_w64_32x32_b256", |b| {
        b.iter(|| nats_block0_step(&nats, images.clone(), &[7, 7]))
    });
    group.finish();
}

criterion_group!(benches, blocks);
criterion_main!(benches);
