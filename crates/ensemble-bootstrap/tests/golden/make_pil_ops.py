"""Reference outputs of Pillow for the RandAugment ops and the evaluation resize.

Regenerate (Pillow 13.0.0 made the committed file):
    python3 crates/ensemble-bootstrap/tests/golden/make_pil_ops.py \
        > crates/ensemble-bootstrap/tests/golden/pil_ops.json

The op definitions follow timm's `auto_augment.py` (written out here from its documented
behaviour, not imported): AFFINE transforms with BILINEAR resampling and a fill colour.
"""
import json
import random

from PIL import Image, ImageEnhance, ImageOps

FILL = (124, 116, 104)


def make_image(w, h, seed):
    rng = random.Random(seed)
    px = []
    for y in range(h):
        for x in range(w):
            base = 40 + 12 * x + 9 * y
            px.append(tuple(min(255, max(0, base + rng.randint(-25, 25) + 30 * c)) for c in range(3)))
    im = Image.new("RGB", (w, h))
    im.putdata(px)
    return im


def flat(im):
    return [v for p in im.getdata() for v in p]


def affine(im, m):
    return im.transform(im.size, Image.AFFINE, m, Image.BILINEAR, fillcolor=FILL)


src = make_image(9, 7, 1)
ops = {
    "autocontrast": ImageOps.autocontrast(src),
    "equalize": ImageOps.equalize(src),
    "invert": ImageOps.invert(src),
    "posterize_1": ImageOps.posterize(src, 1),
    "posterize_3": ImageOps.posterize(src, 3),
    "solarize_26": ImageOps.solarize(src, 26),
    "solarize_230": ImageOps.solarize(src, 230),
    "solarize_add_99": src.point([min(255, i + 99) if i < 128 else i for i in range(256)] * 3),
    "color_0.3": ImageEnhance.Color(src).enhance(0.3),
    "color_1.7": ImageEnhance.Color(src).enhance(1.7),
    "contrast_0.4": ImageEnhance.Contrast(src).enhance(0.4),
    "contrast_1.6": ImageEnhance.Contrast(src).enhance(1.6),
    "brightness_0.5": ImageEnhance.Brightness(src).enhance(0.5),
    "brightness_1.5": ImageEnhance.Brightness(src).enhance(1.5),
    "sharpness_0.2": ImageEnhance.Sharpness(src).enhance(0.2),
    "sharpness_1.8": ImageEnhance.Sharpness(src).enhance(1.8),
    "rotate_17": src.rotate(17, Image.BILINEAR, fillcolor=FILL),
    "rotate_-25": src.rotate(-25, Image.BILINEAR, fillcolor=FILL),
    "shear_x_0.27": affine(src, (1, 0.27, 0, 0, 1, 0)),
    "shear_y_-0.2": affine(src, (1, 0, 0, -0.2, 1, 0)),
    "translate_x_3.15": affine(src, (1, 0, 3.15, 0, 1, 0)),
    "translate_y_-2.7": affine(src, (1, 0, 0, 0, 1, -2.7)),
}
big = make_image(13, 10, 2)
resizes = {
    "bicubic_6x5": big.resize((6, 5), Image.BICUBIC),
    "bicubic_20x15": big.resize((20, 15), Image.BICUBIC),
    "bilinear_5x4": big.resize((5, 4), Image.BILINEAR),
}
# torchvision Resize(8) + CenterCrop(6): shorter side 10 -> 8, longer 13 -> int(8 * 13 / 10) = 10.
r = big.resize((10, 8), Image.BICUBIC)
left, top = int(round((10 - 6) / 2.0)), int(round((8 - 6) / 2.0))
resizes["resize8_crop6"] = r.crop((left, top, left + 6, top + 6))

out = {
    "fill": FILL,
    "src": {"w": 9, "h": 7, "data": flat(src)},
    "big": {"w": 13, "h": 10, "data": flat(big)},
    "ops": {k: flat(v) for k, v in ops.items()},
    "resize": {k: {"w": v.size[0], "h": v.size[1], "data": flat(v)} for k, v in resizes.items()},
}
print(json.dumps(out, separators=(",", ":")))
