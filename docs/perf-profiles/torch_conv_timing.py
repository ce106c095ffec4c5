#!/usr/bin/env python3
"""PyTorch side of the per-conv timings in docs/performance.md (fifth pass): forward + backward
(input and weight gradients) of single convs, 2 threads, median of 9 after 3 warm-up steps.
Ours: `cargo test --release -p bossnas-blocks --lib -- --ignored --nocapture dense_conv_timing`."""
import torch, time
torch.set_num_threads(2)
for xd, wd, s in [((8,1024,14,14),(256,1024,1,1),1), ((8,256,14,14),(256,256,3,3),1), ((8,256,14,14),(1024,256,1,1),1), ((8,512,28,28),(1024,512,3,3),2)]:
    x0 = torch.randn(*xd); w0 = torch.randn(*wd)
    pad = wd[2]//2
    def step():
        x = x0.clone().requires_grad_(); w = w0.clone().requires_grad_()
        y = torch.nn.functional.conv2d(x, w, None, s, pad)
        y.sum().backward()
    for _ in range(3): step()
    ts=[]
    for _ in range(9):
        t=time.perf_counter(); step(); ts.append((time.perf_counter()-t)*1e3)
    ts.sort()
    print(xd, wd, s, f"torch fwd+bwd {ts[4]:.1f} ms")
