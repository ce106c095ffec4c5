"""Golden fixtures for the MBConv and NATS-SSS Burn modules of `bossnas-blocks`.

Builds tiny PyTorch reference modules with the BossNAS / timm / NATS-Bench semantics,
fills every weight and BN buffer with deterministic random values, runs them in eval mode
(running statistics) and in train mode (batch statistics) on a fixed input, and writes one
small JSON file per case next to this script:

* ``mbconv_layer.json``: one MBConv layer (expansion 3, dw 5x5, stride 2, SE 0.25, SiLU)
  8 -> 16 channels with its projected shortcut (AvgPool(2, 2, ceil, no pad count) -> 1x1 ->
  BN) on a 7x7 input, so that ``ceil_mode`` matters;
* ``nats_cell.json``: the fixed-width NATS cell 4 -> 6 (xautodl: no ReLU in the skip);
* ``nats_slim.json``: the slimmable cell (max width 8, candidate widths 2, 4, 6, 8, one BN
  per width, BossNAS ReLU in the skip) run from width index 1 (4 ch) to 2 (6 ch), and the
  slimmable stride-2 residual block from width index 2 to 3.

Run from anywhere: ``python3 gen_mbconv_nats.py`` (needs ``torch``; the Rust tests only
read the JSON). Parameter names are PyTorch ``state_dict`` keys.
"""
import json
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
torch.manual_seed(20210323)


def bn(c):
    return nn.BatchNorm2d(c)


class SE(nn.Module):
    def __init__(self, ch, reduced):
        super().__init__()
        self.reduce = nn.Conv2d(ch, reduced, 1, bias=True)
        self.expand = nn.Conv2d(reduced, ch, 1, bias=True)

    def forward(self, x):
        s = x.mean((2, 3), keepdim=True)
        return x * torch.sigmoid(self.expand(F.silu(self.reduce(s))))


class MbLayer(nn.Module):
    """timm InvertedResidual (SiLU, SE on round(in*0.25)) plus the BossNAS downsample."""

    def __init__(self, cin, cout, k, s, e):
        super().__init__()
        mid = cin * e
        self.expand = nn.Conv2d(cin, mid, 1, bias=False)
        self.bn1 = bn(mid)
        self.depthwise = nn.Conv2d(mid, mid, k, s, k // 2, groups=mid, bias=False)
        self.bn2 = bn(mid)
        self.se = SE(mid, round(cin * 0.25))
        self.project = nn.Conv2d(mid, cout, 1, bias=False)
        self.bn3 = bn(cout)
        self.pool = nn.AvgPool2d(2, 2, ceil_mode=True, count_include_pad=False)
        self.sc_conv = nn.Conv2d(cin, cout, 1, bias=False)
        self.sc_bn = bn(cout)

    def forward(self, x):
        y = F.silu(self.bn1(self.expand(x)))
        y = F.silu(self.bn2(self.depthwise(y)))
        y = self.bn3(self.project(self.se(y)))
        return y + self.sc_bn(self.sc_conv(self.pool(x)))


class ReLUConvBN(nn.Module):
    def __init__(self, cin, cout, k=3, s=1):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, s, k // 2, bias=False)
        self.bn = bn(cout)

    def forward(self, x):
        return self.bn(self.conv(F.relu(x)))


class Cell(nn.Module):
    """|conv~0|+|conv~0|conv~1|+|skip~0|conv~1|conv~2| with fixed widths (xautodl)."""

    def __init__(self, cin, cout):
        super().__init__()
        self.n0_n1 = ReLUConvBN(cin, cout)
        self.n0_n2 = ReLUConvBN(cin, cout)
        self.n1_n2 = ReLUConvBN(cout, cout)
        self.n1_n3 = ReLUConvBN(cout, cout)
        self.n2_n3 = ReLUConvBN(cout, cout)
        self.skip_conv = nn.Conv2d(cin, cout, 1, bias=False)
        self.skip_bn = bn(cout)

    def forward(self, x):
        n1 = self.n0_n1(x)
        n2 = self.n0_n2(x) + self.n1_n2(n1)
        return self.skip_bn(self.skip_conv(x)) + self.n1_n3(n1) + self.n2_n3(n2)


WIDTHS = [2, 4, 6, 8]


class SlimConv(nn.Conv2d):
    def run(self, x, cout):
        w = self.weight[:cout, : x.shape[1]]
        return F.conv2d(x, w, None, self.stride, self.padding)


class SlimRCB(nn.Module):
    def __init__(self, k=3, s=1):
        super().__init__()
        self.conv = SlimConv(8, 8, k, s, k // 2, bias=False)
        self.bns = nn.ModuleList([bn(w) for w in WIDTHS])

    def forward(self, x, out_idx, relu=True):
        x = F.relu(x) if relu else x
        return self.bns[out_idx](self.conv.run(x, WIDTHS[out_idx]))


class SlimCell(nn.Module):
    def __init__(self):
        super().__init__()
        for name in ["n0_n1", "n0_n2", "n1_n2", "n1_n3", "n2_n3"]:
            setattr(self, name, SlimRCB())
        self.reduce = SlimRCB(k=1)

    def forward(self, x, i, o):
        n1 = self.n0_n1(x, o)
        n2 = self.n0_n2(x, o) + self.n1_n2(n1, o)
        skip = self.reduce(x, o, relu=True) if i != o else x
        return skip + self.n1_n3(n1, o) + self.n2_n3(n2, o)


class SlimRes(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv_a = SlimRCB(s=2)
        self.conv_b = SlimRCB()
        self.down = SlimConv(8, 8, 1, bias=False)

    def forward(self, x, o):
        b = self.conv_b(self.conv_a(x, o), o)
        return self.down.run(F.avg_pool2d(x, 2, 2), WIDTHS[o]) + b


def randomize(m):
    with torch.no_grad():
        for name, p in m.named_parameters():
            if name.endswith("bn.weight") or ".weight" in name and p.dim() == 1:
                p.copy_(torch.rand_like(p) * 1.0 + 0.5)
            else:
                p.copy_(torch.randn_like(p) * 0.3)
        for name, b in m.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(torch.randn_like(b) * 0.2)
            elif name.endswith("running_var"):
                b.copy_(torch.rand_like(b) * 1.5 + 0.5)


def tensor(t):
    t = t.detach().contiguous().float()
    return {"shape": list(t.shape), "data": [float(v) for v in t.flatten().tolist()]}


def dump(path, m, x, run):
    m.eval()
    with torch.no_grad():
        out_eval = run(m, x)
    state = {k: tensor(v) for k, v in m.state_dict().items() if not k.endswith("num_batches_tracked")}
    m.train()
    with torch.no_grad():
        out_train = run(m, x)
    doc = {"params": state, "input": tensor(x), "output_eval": tensor(out_eval), "output_train": tensor(out_train)}
    with open(os.path.join(HERE, path), "w") as f:
        json.dump(doc, f, separators=(",", ":"))


def main():
    mb = MbLayer(8, 16, k=5, s=2, e=3)
    randomize(mb)
    dump("mbconv_layer.json", mb, torch.randn(2, 8, 7, 7), lambda m, x: m(x))

    cell = Cell(4, 6)
    randomize(cell)
    dump("nats_cell.json", cell, torch.randn(2, 4, 8, 8), lambda m, x: m(x))

    class Slim(nn.Module):
        def __init__(self):
            super().__init__()
            self.cell = SlimCell()
            self.res = SlimRes()

        def forward(self, x):
            c = self.cell(x, 1, 2)  # 4 -> 6 channels
            return torch.cat([c.flatten(), self.res(c, 3).flatten()])

    slim = Slim()
    randomize(slim)
    dump("nats_slim.json", slim, torch.randn(2, 4, 8, 8), lambda m, x: m(x))


if __name__ == "__main__":
    main()
