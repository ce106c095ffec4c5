#!/usr/bin/env python3
"""PyTorch mirror of the rows of `cargo xtask bench` (xtask/src/bench/rows.rs).

Written for this project from our Rust modules (crates/blocks, crates/supernet,
crates/ensemble-bootstrap): same layers, same order, same shapes, same training-mode
BatchNorm, same loss and optimizer maths. Not needed by any build or test; the Rust harness
runs it when `BENCH_PYTHON` is set, one process per row:

    python3 benches/torch_reference.py --row resconv_s1_16 --reps 7

prints one JSON line {"row", "median_ms", "times_ms", "peak_rss_mb", "threads"}.
`peak_rss_mb` is the process's ru_maxrss, which includes the torch import (~0.3 GB).

On a GPU (the GPU bundle's run.sh, docs/gpu.md), the NATS training step at the
`nats-c10-paper` shapes (batch 256, 8 fair paths, 2 views, heads 2048→4096→256):

    python3 benches/torch_reference.py --row train_step_nats --device cuda --batch 256 \
        --head 2048,4096,256 --reps 20 [--compile]

adds "device", "first_step_s" (the first call: cuDNN autotune, torch.compile), "images_per_s"
(batch / median step) and "peak_gpu_mb" (torch.cuda.max_memory_allocated) to the line.
"""

import argparse
import contextlib
import copy
import json
import math
import resource
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

HYTRA_BATCH = 8


def conv(c_in, c_out, k, stride=1, pad=0, groups=1, bias=False):
    return nn.Conv2d(c_in, c_out, k, stride=stride, padding=pad, groups=groups, bias=bias)


class ConvBnAct(nn.Module):
    """crates/blocks/src/hytra_layers.rs ConvBnAct (search-time shortcut)."""

    def __init__(self, c_in, c_out, k=1, stride=1, pad=0):
        super().__init__()
        self.conv = conv(c_in, c_out, k, stride, pad)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


class SearchEntry(nn.Module):
    """crates/blocks/src/search_entry.rs: 1×1 conv → PEG (dw 3×3 + bias, stride s) → BN,
    plus the shortcut."""

    def __init__(self, c_in, mid, out, stride):
        super().__init__()
        if stride == 2:
            self.shortcut = ConvBnAct(c_in, out, 3, 2, 1)
        elif c_in != out:
            self.shortcut = ConvBnAct(c_in, out)
        else:
            self.shortcut = None
        self.conv = conv(c_in, mid, 1)
        self.peg = conv(mid, mid, 3, stride, 1, groups=mid, bias=True)
        self.bn = nn.BatchNorm2d(mid)

    def forward(self, x):
        res = x if self.shortcut is None else self.shortcut(x)
        return self.bn(self.peg(self.conv(x))), res


def bn_zero_gamma(c):
    bn = nn.BatchNorm2d(c)
    nn.init.zeros_(bn.weight)
    return bn


class ResConv(nn.Module):
    """crates/blocks/src/res_conv.rs."""

    def __init__(self, c_in, planes, up):
        super().__init__()
        self.entry = SearchEntry(c_in, planes, 4 * planes, 1)
        self.entry_down = SearchEntry(up, planes, 4 * planes, 2)
        self.conv2 = conv(planes, planes, 3, 1, 1)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv(planes, 4 * planes, 1)
        self.bn3 = bn_zero_gamma(4 * planes)

    def forward(self, x, stride):
        h, res = (self.entry if stride == 1 else self.entry_down)(x)
        h = F.relu(self.bn2(self.conv2(F.relu(h))))
        h = self.bn3(self.conv3(h))
        return F.relu(h + res)


class Mhsa(nn.Module):
    """crates/blocks/src/attention.rs (standard orientation)."""

    def __init__(self, c, heads, dim_head):
        super().__init__()
        self.to_qkv = conv(c, 3 * heads * dim_head, 1)
        self.heads, self.d = heads, dim_head

    def forward(self, x):
        b, _, h, w = x.shape
        heads, d, n = self.heads, self.d, h * w
        qkv = self.to_qkv(x).reshape(b, 3 * heads, d, n)
        q, k, v = qkv[:, :heads], qkv[:, heads:2 * heads], qkv[:, 2 * heads:]
        q = q * d ** -0.5
        attn = torch.softmax(q.transpose(2, 3) @ k, dim=3)
        out = v @ attn.transpose(2, 3)
        return out.reshape(b, heads * d, h, w)


class ResAtt(nn.Module):
    """crates/blocks/src/res_att.rs (proj_factor 4)."""

    def __init__(self, c_in, out, heads, dim_head, up):
        super().__init__()
        attn_in, attn_out = out // 4, heads * dim_head
        self.entry = SearchEntry(c_in, attn_in, out, 1)
        self.entry_down = SearchEntry(up, attn_in, out, 2)
        self.mhsa = Mhsa(attn_in, heads, dim_head)
        self.bn_att = nn.BatchNorm2d(attn_out)
        self.conv_out = conv(attn_out, out, 1)
        self.bn_out = bn_zero_gamma(out)

    def forward(self, x, stride):
        h, res = (self.entry if stride == 1 else self.entry_down)(x)
        h = self.mhsa(F.relu(h))
        h = F.relu(self.bn_att(h))
        h = self.bn_out(self.conv_out(h))
        return F.relu(h + res)


class MbconvLayer(nn.Module):
    """crates/blocks/src/mbconv.rs MbconvLayer with in == out, stride 1 (identity shortcut)."""

    def __init__(self, c, expansion, k):
        super().__init__()
        mid = int(c * expansion + 4) // 8 * 8  # make_divisible(·, 8) for these sizes
        red = max(1, int(c * 0.25 + 0.5))
        self.expand, self.bn1 = conv(c, mid, 1), nn.BatchNorm2d(mid)
        self.dw, self.bn2 = conv(mid, mid, k, 1, k // 2, groups=mid), nn.BatchNorm2d(mid)
        self.se_reduce, self.se_expand = conv(mid, red, 1, bias=True), conv(red, mid, 1, bias=True)
        self.project, self.bn3 = conv(mid, c, 1), nn.BatchNorm2d(c)

    def forward(self, x):
        h = F.silu(self.bn1(self.expand(x)))
        h = F.silu(self.bn2(self.dw(h)))
        s = h.mean((2, 3), keepdim=True)
        h = h * torch.sigmoid(self.se_expand(F.silu(self.se_reduce(s))))
        return self.bn3(self.project(h)) + x


# ---- NATS (crates/blocks/src/nats.rs, crates/supernet/src/nats.rs) -----------------------

WIDTHS = [8, 16, 24, 32, 40, 48, 56, 64]
# The `nats-c10-cpu` preset's quarter widths (candidate i = 2·(i+1)): row train_step_nats_cpu.
CPU_WIDTHS = [2 * (i + 1) for i in range(8)]


def widest():
    """The largest candidate width: the slimmable weights' full size (read at construction)."""
    return max(WIDTHS)


class SlimConv(nn.Module):
    """One weight at the largest width, sliced to [:c_out, :c_in] on every call."""

    def __init__(self, c_in, c_out, k, stride=1):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(c_out, c_in, k, k))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        self.stride, self.pad = stride, k // 2

    def forward(self, x, c_out):
        w = self.weight[:c_out, : x.shape[1]]
        return F.conv2d(x, w, None, self.stride, self.pad)


class SlimRcb(nn.Module):
    def __init__(self, k=3, stride=1):
        super().__init__()
        self.conv = SlimConv(widest(), widest(), k, stride)
        self.bns = nn.ModuleList(nn.BatchNorm2d(w) for w in WIDTHS)

    def forward(self, x, idx):
        return self.bns[idx](self.conv(F.relu(x), WIDTHS[idx]))


class SlimCell(nn.Module):
    def __init__(self):
        super().__init__()
        self.n0_n1, self.n0_n2, self.n1_n2, self.n1_n3, self.n2_n3 = (SlimRcb() for _ in range(5))
        self.reduce_conv = SlimConv(widest(), widest(), 1)
        self.reduce_bns = nn.ModuleList(nn.BatchNorm2d(w) for w in WIDTHS)

    def forward(self, n0, i, o):
        n1 = self.n0_n1(n0, o)
        n2 = self.n0_n2(n0, o) + self.n1_n2(n1, o)
        skip = self.reduce_bns[o](self.reduce_conv(F.relu(n0), WIDTHS[o])) if i != o else n0
        return skip + self.n1_n3(n1, o) + self.n2_n3(n2, o)


class SlimResBlock(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv_a, self.conv_b = SlimRcb(3, 2), SlimRcb()
        self.down = SlimConv(widest(), widest(), 1)

    def forward(self, x, o):
        branch = self.conv_b(self.conv_a(x, o), o)
        return self.down(F.avg_pool2d(x, 2, 2), WIDTHS[o]) + branch


class NatsBlock0(nn.Module):
    """Stem + cell0 + res1 of the slimmable supernet (block 0 of the C10 split)."""

    def __init__(self):
        super().__init__()
        self.stem = SlimConv(3, widest(), 3)
        self.stem_bns = nn.ModuleList(nn.BatchNorm2d(w) for w in WIDTHS)
        self.cell0, self.res1 = SlimCell(), SlimResBlock()

    def forward(self, x, path):
        a, b = path
        x = self.stem_bns[a](self.stem(x, WIDTHS[a]))
        x = self.cell0(x, a, a)
        return self.res1(x, b)


# ---- ensemble-bootstrap step (crates/ensemble-bootstrap) -------------------------------


class Mlp(nn.Module):
    def __init__(self, i, h, o):
        super().__init__()
        self.fc0, self.bn0, self.fc1 = nn.Linear(i, h), nn.BatchNorm1d(h), nn.Linear(h, o)

    def forward(self, x):
        return self.fc1(F.relu(self.bn0(self.fc0(x))))


class Head(nn.Module):
    """Adapters (1×1 conv + BN per non-64 width) + pooled projector MLP."""

    def __init__(self, n=64, hidden=128, out=64):
        super().__init__()
        self.adapters = nn.ModuleDict(
            {str(c): nn.Sequential(conv(c, n, 1), nn.BatchNorm2d(n)) for c in WIDTHS if c != n}
        )
        self.projector = Mlp(n, hidden, out)

    def forward(self, f):
        c = f.shape[1]
        if str(c) in self.adapters:
            f = self.adapters[str(c)](f)
        return self.projector(f.mean((2, 3)))


def l2n(x):
    return x / x.pow(2).sum(1, keepdim=True).sqrt().clamp_min(1e-12)


def regression(p, t):
    return (l2n(p) * l2n(t)).sum(1).mean() * -2.0


class TrainStep:
    """One optimizer step of `ensemble_forward` + backward + drop-zero-grads + LARS + EMA."""

    def __init__(self, batch=32, head=(64, 128, 64), compile=False):
        self.paths = [(i, 7 - i) for i in range(8)]
        n, hidden, out = head
        self.backbone, self.head = NatsBlock0(), Head(n, hidden, out)
        self.predictor = Mlp(out, hidden, out)
        self.t_backbone, self.t_head = copy.deepcopy(self.backbone), copy.deepcopy(self.head)
        for p in list(self.t_backbone.parameters()) + list(self.t_head.parameters()):
            p.requires_grad_(False)
        self.online = nn.ModuleList([self.backbone, self.head, self.predictor])
        self.v1 = torch.randn(batch, 3, 32, 32)
        self.v2 = torch.randn(batch, 3, 32, 32)
        self.bufs = {}
        self.phases = Phases()
        self.lr, self.m, self.wd, self.tc, self.ema = 0.05 * batch / 256, 0.9, 1e-6, 1e-3, 0.99
        # torch.compile: the networks' forwards (one graph per path width; the optimizer and EMA
        # stay eager). The modules keep their parameters, so the update below is unchanged.
        self.net, self.t_net = self.backbone, self.t_backbone
        self.hd, self.t_hd, self.pred = self.head, self.t_head, self.predictor
        if compile:
            # `import torch._dynamo` here would make `torch` a local name of the whole method.
            import torch._dynamo as dynamo

            dynamo.config.cache_size_limit = 64
            self.net, self.t_net = torch.compile(self.backbone), torch.compile(self.t_backbone)
            self.hd, self.t_hd = torch.compile(self.head), torch.compile(self.t_head)
            self.pred = torch.compile(self.predictor)

    def __call__(self):
        ph = self.phases
        with torch.no_grad():
            t1, t2 = [], []
            for p in self.paths:
                with ph("target block"):
                    b1, b2 = self.t_net(self.v1, p), self.t_net(self.v2, p)
                with ph("target head"):
                    t1.append(l2n(self.t_hd(b1)))
                    t2.append(l2n(self.t_hd(b2)))
            with ph("target head"):
                t1, t2 = sum(t1) / len(t1), sum(t2) / len(t2)
        total, per_path = None, []
        for p in self.paths:
            with ph("online block"):
                b1, b2 = self.net(self.v1, p), self.net(self.v2, p)
            with ph("online head"):
                z1, z2 = self.hd(b1), self.hd(b2)
            with ph("predictor + loss"):
                loss = regression(self.pred(z1), t2) + regression(self.pred(z2), t1)
            per_path.append(loss.detach())
            total = loss if total is None else total + loss
        torch.stack(per_path).tolist()
        with ph("backward"):
            for p in self.online.parameters():
                p.grad = None
            total.backward()
        with torch.no_grad():
            with ph("drop zero grads"):
                params = [
                    p
                    for p in self.online.parameters()
                    if p.grad is not None and bool(p.grad.abs().sum() > 0)
                ]
            with ph("optimizer"):
                for p in params:
                    g = p.grad
                    if p.dim() <= 1:
                        d = g * self.lr
                    else:
                        wn, gn = p.norm(), g.norm()
                        trust = self.tc * wn / (gn + self.wd * wn)
                        trust = torch.where((wn == 0) | (gn == 0), torch.ones_like(trust), trust)
                        d = (g + self.wd * p) * (trust * self.lr)
                    buf = self.bufs.get(p)
                    buf = d if buf is None else buf.mul_(self.m).add_(d)
                    self.bufs[p] = buf
                    p.sub_(buf)
            with ph("ema"):
                for src, dst in (
                    (self.backbone, self.t_backbone),
                    (self.head, self.t_head),
                ):
                    for o, t in zip(src.parameters(), dst.parameters()):
                        t.mul_(self.ema).add_(o, alpha=1 - self.ema)


class Phases:
    """Wall and process CPU seconds (all threads) per named phase; off until `enabled`.

    The names are those of the Rust step (`ensemble_bootstrap::phase`), so `cargo xtask bench
    --phases` can set the two side by side. On CUDA a phase is the time to queue its kernels
    unless the caller synchronises."""

    def __init__(self):
        self.enabled = False
        self.totals = {}

    @contextlib.contextmanager
    def __call__(self, name):
        if not self.enabled:
            yield
            return
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            w, c = self.totals.get(name, (0.0, 0.0))
            self.totals[name] = (
                w + time.perf_counter() - wall,
                c + time.process_time() - cpu,
            )


# ---- rows -----------------------------------------------------------------------------


def fwd_bwd(module, make_out):
    def step():
        for p in module.parameters():
            p.grad = None
        make_out().pow(2).mean().backward()

    return step


def res_conv(out, up, stride, side):
    m = ResConv(out, out // 4, up)
    x = torch.randn(HYTRA_BATCH, out if stride == 1 else up, side, side)
    return fwd_bwd(m, lambda: m(x, stride))


def res_att(out, up, heads, stride, side):
    m = ResAtt(out, out, heads, 64, up)
    x = torch.randn(HYTRA_BATCH, out if stride == 1 else up, side, side)
    return fwd_bwd(m, lambda: m(x, stride))


def mbconv():
    m = MbconvLayer(40, 6, 5)
    x = torch.randn(32, 40, 28, 28)
    return fwd_bwd(m, lambda: m(x))


def nats_block0():
    m = NatsBlock0()
    x = torch.randn(256, 3, 32, 32)
    return fwd_bwd(m, lambda: m(x, (7, 3)))


def conv_backward_flops(
    grad_out_shape, x_shape, w_shape, _bias, _stride, _padding, _dilation, transposed,
    _output_padding, _groups, output_mask, out_shape=None, **kwargs
):
    """FLOPs of a convolution's backward: each of the input and weight gradients costs what
    the forward costs. torch's own formula (torch 2.15) counts the weight gradient of a
    grouped convolution as if it were dense, `groups` times too much: 240× for the MBConv
    row's depthwise 5×5."""
    from torch.utils.flop_counter import conv_flop_count

    forward = conv_flop_count(x_shape, w_shape, grad_out_shape, transposed)
    return forward * (int(bool(output_mask[0])) + int(bool(output_mask[1])))


def gemm(n):
    """The machine's GEMM peak as PyTorch reaches it: one n×n×n float32 matmul, no autograd."""
    a = torch.randn(n, n)
    b = torch.randn(n, n)

    def step():
        torch.mm(a, b)

    return step


ROWS = {
    "gemm_2048": lambda: gemm(2048),
    "resconv_s1_16": lambda: res_conv(1024, 512, 1, 14),
    "resconv_s2_16": lambda: res_conv(1024, 512, 2, 28),
    "resatt_s1_16": lambda: res_att(1024, 512, 4, 1, 14),
    "resatt_s2_16": lambda: res_att(1024, 512, 4, 2, 28),
    "resconv_s1_32": lambda: res_conv(2048, 1024, 1, 7),
    "resconv_s2_32": lambda: res_conv(2048, 1024, 2, 14),
    "resatt_s1_32": lambda: res_att(2048, 1024, 8, 1, 7),
    "resatt_s2_32": lambda: res_att(2048, 1024, 8, 2, 14),
    "mbconv_mb6k5": mbconv,
    "nats_block0": nats_block0,
    "train_step_nats": TrainStep,
    "train_step_nats_cpu": lambda: train_step_cpu(),
}


def train_step_cpu():
    """The training step of the `nats-c10-cpu` main job: the same step at quarter widths."""
    global WIDTHS
    WIDTHS = CPU_WIDTHS
    return TrainStep()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--row", required=True, choices=sorted(ROWS))
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    ap.add_argument("--batch", type=int, default=32, help="train_step_nats only")
    ap.add_argument(
        "--head", default="64,128,64", help="train_step_nats: projector in,hidden,out"
    )
    ap.add_argument("--compile", action="store_true", help="train_step_nats: torch.compile")
    ap.add_argument(
        "--phases", action="store_true", help="train_step_nats: time per phase of the step"
    )
    ap.add_argument(
        "--flops",
        action="store_true",
        help="after timing, count the FLOPs of one more step (torch.utils.flop_counter: "
        "matmuls and convolutions, forward and backward; element-wise ops not counted)",
    )
    args = ap.parse_args()
    torch.manual_seed(0)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cudnn.benchmark = True
    # Every tensor and parameter below is created on the device.
    torch.set_default_device(device)

    def sync():
        if cuda:
            torch.cuda.synchronize(device)

    if args.row == "train_step_nats":
        head = tuple(int(v) for v in args.head.split(","))
        step = TrainStep(args.batch, head, args.compile)
    else:
        if args.compile or args.batch != 32:
            ap.error("--compile and --batch apply to --row train_step_nats only")
        step = ROWS[args.row]()
    t = time.perf_counter()
    step()
    sync()
    first_s = time.perf_counter() - t
    phases = getattr(step, "phases", None)
    if phases is not None:
        phases.enabled = args.phases
    times = []
    for _ in range(max(1, args.reps)):
        t = time.perf_counter()
        step()
        sync()
        times.append((time.perf_counter() - t) * 1e3)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    flops = None
    if args.flops:
        from torch.utils.flop_counter import FlopCounterMode

        FLOP_FIXES = {torch.ops.aten.convolution_backward: conv_backward_flops}

        if phases is not None:
            phases.enabled = False
        with FlopCounterMode(display=False, custom_mapping=FLOP_FIXES) as counter:
            step()
        flops = counter.get_total_flops()
    out = {
        "row": args.row,
        "median_ms": statistics.median(times),
        "times_ms": times,
        "peak_rss_mb": rss_mb,
        "threads": torch.get_num_threads(),
        "device": torch.cuda.get_device_name(device) if cuda else "cpu",
        "first_step_s": first_s,
        "compiled": bool(args.compile),
    }
    if flops is not None:
        out["flops_per_step"] = flops
    if args.row == "train_step_nats":
        out["batch"] = args.batch
        out["images_per_s"] = args.batch / (statistics.median(times) / 1e3)
    if phases is not None and phases.enabled:
        n = max(1, args.reps)
        out["phases"] = [
            {"phase": k, "wall_ms": w * 1e3 / n, "cpu_ms": c * 1e3 / n}
            for k, (w, c) in phases.totals.items()
        ]
    if cuda:
        out["peak_gpu_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    print(json.dumps(out))


if __name__ == "__main__":
    main()
