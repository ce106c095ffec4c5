#!/usr/bin/env python3
"""Golden data for the HyTra blocks (crates/blocks/tests/hytra_golden.rs).

Builds tiny search-time ResConv / ResAtt (both attention orientations) and retraining
BossResConv / BossResAtt in PyTorch, functionally from a dict of named tensors whose names
are the Burn field paths, and writes weights, inputs and outputs (eval-mode BN with
non-trivial running statistics, and train-mode BN) as JSON. Requires only `torch`; the Rust
tests read the JSON and need no Python.

    python3 crates/blocks/tests/golden/gen_hytra.py   # rewrites hytra_*.json next to it
"""
import json
import math
import os

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
gen = torch.Generator().manual_seed(20210324)


def rnd(*shape, scale=1.0):
    return torch.randn(*shape, generator=gen) * scale


def conv_w(name, p, c_out, c_in, k):
    p[name] = rnd(c_out, c_in, k, k, scale=1.0 / math.sqrt(c_in * k * k))


def bn(name, p, c):
    # Non-trivial statistics and affine parameters (no zero-gamma: we want signal).
    p[name + ".gamma"] = 1.0 + 0.3 * rnd(c)
    p[name + ".beta"] = 0.2 * rnd(c)
    p[name + ".running_mean"] = 0.3 * rnd(c)
    p[name + ".running_var"] = 0.5 + torch.rand(c, generator=gen)


def apply_bn(x, p, name, train):
    if train:
        return F.batch_norm(x, None, None, p[name + ".gamma"], p[name + ".beta"], True, 0.0, 1e-5)
    return F.batch_norm(x, p[name + ".running_mean"], p[name + ".running_var"],
                        p[name + ".gamma"], p[name + ".beta"], False, 0.0, 1e-5)


def peg(name, p, c):
    p[name + ".conv.weight"] = rnd(c, 1, 3, 3, scale=1.0 / 3.0)
    p[name + ".conv.bias"] = 0.1 * rnd(c)


def apply_peg(x, p, name, stride):
    return F.conv2d(x, p[name + ".conv.weight"], p[name + ".conv.bias"], stride, 1, groups=x.shape[1])


def mhsa(x, p, name, heads, dim_head, orientation):
    b, _, h, w = x.shape
    n = h * w
    qkv = F.conv2d(x, p[name + ".to_qkv.weight"]).reshape(b, 3 * heads, dim_head, n)
    q, k, v = qkv[:, :heads], qkv[:, heads:2 * heads], qkv[:, 2 * heads:]
    logits = torch.einsum("bhdq,bhdk->bhqk", q * dim_head ** -0.5, k)
    a = logits.softmax(dim=-1)  # [b, h, n_q, n_k]
    if orientation == "Standard":
        out = torch.einsum("bhqk,bhdk->bhdq", a, v)
    else:  # SearchCode: out[:, :, j] = sum_i v[:, :, i] a[i, j]
        out = torch.einsum("bhij,bhdi->bhdj", a, v)
    return out.reshape(b, heads * dim_head, h, w)


# ---------------------------------------------------------------- search-time ResConv
def res_conv_params(c_in, planes, up):
    p = {}
    out = 4 * planes
    for entry, cin, stride in (("entry", c_in, 1), ("entry_down", up, 2)):
        conv_w(entry + ".conv1.weight", p, planes, cin, 1)
        peg(entry + ".peg", p, planes)
        bn(entry + ".bn1", p, planes)
        if stride == 2 or cin != out:
            k = 3 if stride == 2 else 1
            conv_w(entry + ".shortcut.conv.weight", p, out, cin, k)
            bn(entry + ".shortcut.bn", p, out)
    conv_w("conv2.weight", p, planes, planes, 3)
    bn("bn2", p, planes)
    conv_w("conv3.weight", p, out, planes, 1)
    bn("bn3", p, out)
    return p


def shortcut_search(x, p, entry, stride, train):
    key = entry + ".shortcut.conv.weight"
    if key not in p:
        return x
    pad = 1 if stride == 2 else 0
    return F.relu(apply_bn(F.conv2d(x, p[key], None, stride, pad), p, entry + ".shortcut.bn", train))


def res_conv(x, p, stride, train):
    e = "entry" if stride == 1 else "entry_down"
    r = shortcut_search(x, p, e, stride, train)
    h = apply_bn(apply_peg(F.conv2d(x, p[e + ".conv1.weight"]), p, e + ".peg", stride), p, e + ".bn1", train)
    h = F.relu(apply_bn(F.conv2d(F.relu(h), p["conv2.weight"], None, 1, 1), p, "bn2", train))
    h = apply_bn(F.conv2d(h, p["conv3.weight"]), p, "bn3", train)
    return F.relu(h + r)


# ---------------------------------------------------------------- search-time ResAtt
def res_att_params(c_in, out, heads, dim_head, up):
    p = {}
    attn_in = out // 4
    attn_out = heads * dim_head
    for entry, cin, stride in (("entry", c_in, 1), ("entry_down", up, 2)):
        conv_w(entry + ".conv.weight", p, attn_in, cin, 1)
        peg(entry + ".peg", p, attn_in)
        bn(entry + ".bn", p, attn_in)
        if stride == 2 or cin != out:
            k = 3 if stride == 2 else 1
            conv_w(entry + ".shortcut.conv.weight", p, out, cin, k)
            bn(entry + ".shortcut.bn", p, out)
    conv_w("mhsa.to_qkv.weight", p, 3 * attn_out, attn_in, 1)
    bn("bn_att", p, attn_out)
    conv_w("conv_out.weight", p, out, attn_out, 1)
    bn("bn_out", p, out)
    return p


def res_att(x, p, stride, train, heads, dim_head, orientation):
    e = "entry" if stride == 1 else "entry_down"
    r = shortcut_search(x, p, e, stride, train)
    h = apply_bn(apply_peg(F.conv2d(x, p[e + ".conv.weight"]), p, e + ".peg", stride), p, e + ".bn", train)
    h = mhsa(F.relu(h), p, "mhsa", heads, dim_head, orientation)
    h = F.relu(apply_bn(h, p, "bn_att", train))
    h = apply_bn(F.conv2d(h, p["conv_out.weight"]), p, "bn_out", train)
    return F.relu(h + r)


# ---------------------------------------------------------------- retraining blocks
def avg_down_params(p, c_in, out):
    conv_w("shortcut.conv.weight", p, out, c_in, 1)
    bn("shortcut.bn", p, out)


def avg_down(x, p, stride, train):
    if "shortcut.conv.weight" not in p:
        return x
    if stride == 2:
        x = F.avg_pool2d(x, 2, 2, ceil_mode=True, count_include_pad=False)
    return apply_bn(F.conv2d(x, p["shortcut.conv.weight"]), p, "shortcut.bn", train)


def boss_res_conv_params(c_in, planes, stride, se):
    p = {}
    out = 4 * planes
    conv_w("conv1.weight", p, planes, c_in, 1)
    peg("peg", p, planes)
    bn("bn1", p, planes)
    conv_w("conv2.weight", p, planes, planes, 3)
    bn("bn2", p, planes)
    conv_w("conv3.weight", p, out, planes, 1)
    bn("bn3", p, out)
    if se:
        r = max(out // 16, 8)
        conv_w("se.fc1.weight", p, r, out, 1)
        p["se.fc1.bias"] = 0.1 * rnd(r)
        conv_w("se.fc2.weight", p, out, r, 1)
        p["se.fc2.bias"] = 0.1 * rnd(out)
    if stride == 2 or c_in != out:
        avg_down_params(p, c_in, out)
    return p


def boss_res_conv(x, p, stride, train, act):
    r = avg_down(x, p, stride, train)
    h = act(apply_bn(apply_peg(F.conv2d(x, p["conv1.weight"]), p, "peg", stride), p, "bn1", train))
    h = act(apply_bn(F.conv2d(h, p["conv2.weight"], None, 1, 1), p, "bn2", train))
    h = apply_bn(F.conv2d(h, p["conv3.weight"]), p, "bn3", train)
    if "se.fc1.weight" in p:
        s = h.mean(dim=(2, 3), keepdim=True)
        s = F.conv2d(F.relu(F.conv2d(s, p["se.fc1.weight"], p["se.fc1.bias"])), p["se.fc2.weight"], p["se.fc2.bias"])
        h = h * torch.sigmoid(s)
    return act(h + r)


def boss_res_att_params(c_in, out, heads, dim_head, stride):
    p = {}
    attn = heads * dim_head
    conv_w("proj_conv.weight", p, attn, c_in, 1)
    peg("peg", p, attn)
    bn("proj_bn", p, attn)
    conv_w("mhsa.to_qkv.weight", p, 3 * attn, attn, 1)
    bn("bn_att", p, attn)
    conv_w("conv_out.weight", p, out, attn, 1)
    bn("bn_out", p, out)
    if stride == 2 or c_in != out:
        avg_down_params(p, c_in, out)
    return p


def boss_res_att(x, p, stride, train, act, heads, dim_head):
    r = avg_down(x, p, stride, train)
    h = apply_bn(apply_peg(F.conv2d(x, p["proj_conv.weight"]), p, "peg", stride), p, "proj_bn", train)
    h = mhsa(act(h), p, "mhsa", heads, dim_head, "Standard")
    h = act(apply_bn(h, p, "bn_att", train))
    h = apply_bn(F.conv2d(h, p["conv_out.weight"]), p, "bn_out", train)
    return act(h + r)


# ---------------------------------------------------------------- output
def t(x):
    return {"shape": list(x.shape), "data": [float("%.7g" % v) for v in x.flatten().tolist()]}


def dump(fname, config, params, cases):
    doc = {"config": config, "params": {k: t(v) for k, v in params.items()}, "cases": cases}
    with open(os.path.join(HERE, fname), "w") as f:
        json.dump(doc, f, separators=(",", ":"))
        f.write("\n")


def case(name, stride, train, x, y):
    return {"name": name, "stride": stride, "train": train, "input": t(x), "output": t(y)}


def main():
    torch.set_default_dtype(torch.float64)  # reference in f64; Burn runs f32
    # ResConv: stride-1 entry with identity shortcut (16 -> 16), stride-2 entry 8 -> 16.
    cfg = {"in_channels": 16, "planes": 4, "up_in_channels": 8}
    p = res_conv_params(16, 4, 8)
    x1, x2 = rnd(2, 16, 8, 8), rnd(2, 8, 8, 8)
    cases = [case(f"s{s}_{'train' if tr else 'eval'}", s, tr, x, res_conv(x, p, s, tr))
             for s, x in ((1, x1), (2, x2)) for tr in (False, True)]
    dump("hytra_res_conv.json", cfg, p, cases)

    # ResAtt: 1x1-conv shortcut at stride 1 (8 -> 16), 2 heads of 2 channels.
    for orient in ("Standard", "SearchCode"):
        cfg = {"in_channels": 8, "out_channels": 16, "heads": 2, "dim_head": 2, "up_in_channels": 8,
               "orientation": orient}
        p = res_att_params(8, 16, 2, 2, 8)
        x1, x2 = rnd(2, 8, 6, 6), rnd(2, 8, 8, 8)
        cases = [case(f"s{s}_{'train' if tr else 'eval'}", s, tr, x, res_att(x, p, s, tr, 2, 2, orient))
                 for s, x in ((1, x1), (2, x2)) for tr in (False, True)]
        dump(f"hytra_res_att_{orient.lower()}.json", cfg, p, cases)

    # Retraining ResConv, SiLU + SE, stride 2 on an odd 7x7 map (ceil-mode average pool).
    cfg = {"in_channels": 8, "planes": 4, "stride": 2, "act": "Silu", "se": True}
    p = boss_res_conv_params(8, 4, 2, True)
    x = rnd(2, 8, 7, 7)
    cases = [case(f"s2_{'train' if tr else 'eval'}", 2, tr, x, boss_res_conv(x, p, 2, tr, F.silu))
             for tr in (False, True)]
    dump("hytra_boss_res_conv.json", cfg, p, cases)

    # Retraining ResAtt, ReLU, stride 2 on 7x7.
    cfg = {"in_channels": 8, "out_channels": 16, "heads": 2, "dim_head": 2, "stride": 2, "act": "Relu"}
    p = boss_res_att_params(8, 16, 2, 2, 2)
    x = rnd(2, 8, 7, 7)
    cases = [case(f"s2_{'train' if tr else 'eval'}", 2, tr, x, boss_res_att(x, p, 2, tr, F.relu, 2, 2))
             for tr in (False, True)]
    dump("hytra_boss_res_att.json", cfg, p, cases)


if __name__ == "__main__":
    main()
