#!/usr/bin/env python3
"""Summarise `perf script` output (DWARF call graphs) of one bench child into a short text.

Usage:
    perf record -e cpu-clock -F 250 --call-graph dwarf,16384 -o row.data -- \
        target/release/xtask bench --child <row> --reps 3
    perf script -i row.data -F comm,tid,ip,sym,dso 2>/dev/null | \
        python3 docs/perf-profiles/summarise.py <row> > docs/perf-profiles/<row>.txt

Each sample is given to the first category (in the order below) whose pattern matches any
frame of its call stack, so a GEMM inside a convolution's weight gradient counts as that
weight gradient, not as "matmul". Categories are inclusive shares of all samples. Top
self-time functions are the leaf frames. "Allocation / page faults" is cross-cutting (leaf
in the kernel's fault/zeroing path or in malloc/free/memcpy/memset), so it overlaps.
"""
import re
import sys
from collections import Counter

# (label, regex on a frame's symbol). Order matters: first match over the whole stack wins.
CATEGORIES = [
    # Not per-step work: the child process's lazy parameter initialisation (first visit).
    ("one-time setup: lazy parameter init (random), module build", r"Uninitialized.*initialize|TensorData::random|ElementRandom|Distribution::sampler"),
    ("dense conv weight-grad (opt-in dense_conv node)", r"nodes::conv::weight_grad"),
    ("dense conv input-grad (opt-in dense_conv node)", r"nodes::conv::input_grad"),
    ("dense conv forward (opt-in dense_conv node)", r"dense_conv2d"),
    ("batch-norm, training mode (fwd + bwd)", r"batch_norm"),
        ("conv weight-grad (Burn generic: a conv with grad as kernel)", r"conv2d_weight_grad|conv2d_weight_backward"),
    ("conv input-grad (Burn generic: conv_transpose)", r"conv2d_x_backward|conv_transpose"),
        ("conv forward (flex conv3d_f32: im2col + GEMM / depthwise kernel)", r"conv3d_impl|conv3d_f32|im2col|depthwise|(?<!ops::conv::)(?<!_)conv2d|conv3d"),
    ("softmax", r"softmax"),
    ("matmul (1x1 convs, attention, linear)", r"matmul|gemm"),
    ("pooling", r"pool"),
    ("gradient collection, LARS, EMA (burn_optim)", r"burn_optim|[Ll]ars|ema_update|ModuleOptimizer"),
    ("element-wise / reductions / copies (flex)", r"burn_flex|burn_backend|macerator"),
    ("autodiff bookkeeping", r"burn_autodiff"),
]
ALLOC = re.compile(
    r"page_fault|clear_page|exc_page|do_anonymous|handle_mm_fault|alloc_pages|"
    r"^_?_?(malloc|free|cfree|realloc|calloc)|_int_malloc|_int_free|memcpy|memset|memmove|"
    r"munmap|mmap|__rust_alloc|__rust_dealloc|do_user_addr_fault|asm_exc"
)


def samples(stream):
    stack = []
    for line in stream:
        line = line.rstrip("\n")
        if not line.strip():
            if stack:
                yield stack
            stack = []
            continue
        if line.startswith((" ", "\t")):
            parts = line.strip().split(None, 1)
            if len(parts) == 2:
                sym = parts[1]
                sym = re.sub(r"\s+\([^)]*\)$", "", sym)  # drop "(dso)"
                sym = re.sub(r"\+0x[0-9a-f]+$", "", sym)
                stack.append(sym)
        # header lines (comm tid ...) start a sample; nothing to keep
    if stack:
        yield stack


def short(sym, width=90):
    sym = re.sub(r"::h[0-9a-f]{16}$", "", sym)
    return sym if len(sym) <= width else sym[: width - 1] + "…"


def main():
    row = sys.argv[1] if len(sys.argv) > 1 else "?"
    convs = sys.argv[2] if len(sys.argv) > 2 else ""
    pats = [(label, re.compile(rx)) for label, rx in CATEGORIES]
    cat = Counter()
    leaf = Counter()
    alloc = 0
    n = 0
    for st in samples(sys.stdin):
        n += 1
        leaf[short(st[0])] += 1
        if ALLOC.search(st[0]):
            alloc += 1
        for label, rx in pats:
            if any(rx.search(f) for f in st):
                cat[label] += 1
                break
        else:
            cat["other (driver, data setup, unknown frames)"] += 1
    if n == 0:
        print("no samples")
        return
    print(f"row: {row}   samples: {n} (cpu-clock, DWARF call graphs)")
    if convs:
        print(f"convs in this row (non-1x1; 1x1 convs are matmuls): {convs}")
    print()
    print("Inclusive shares (each sample to the first matching category):")
    for label, _ in CATEGORIES + [("other (driver, data setup, unknown frames)", None)]:
        if cat[label]:
            print(f"  {100 * cat[label] / n:5.1f} %  {label}")
    print(f"  ({100 * alloc / n:5.1f} %  allocation / page faults / memcpy+memset, leaf-based, overlaps the above)")
    print()
    print("Top self-time functions (leaf frames):")
    for sym, c in leaf.most_common(12):
        print(f"  {100 * c / n:5.1f} %  {sym}")


if __name__ == "__main__":
    main()
