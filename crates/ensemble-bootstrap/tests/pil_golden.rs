//! RandAugment ops and the evaluation resize against Pillow 13 (reference values made by
//! `tests/golden/make_pil_ops.py`, committed as `tests/golden/pil_ops.json`).

use bossnas_datasets::RgbImage;
use bossnas_datasets::augment::{adjust_brightness, adjust_contrast, adjust_saturation};
use bossnas_datasets::rand_augment::{
    adjust_sharpness, affine, autocontrast, equalize, posterize, rotate, solarize_add, solarize_at,
};
use bossnas_datasets::resample::{Filter, center_crop, resize_filtered, resize_shorter_side};
use serde_json::Value;

fn golden() -> Value {
    let text = include_str!("golden/pil_ops.json");
    serde_json::from_str(text).unwrap()
}

fn image(v: &Value) -> RgbImage {
    let data = bytes(&v["data"]);
    RgbImage::new(
        v["w"].as_u64().unwrap() as usize,
        v["h"].as_u64().unwrap() as usize,
        data,
    )
    .unwrap()
}

fn bytes(v: &Value) -> Vec<u8> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u8)
        .collect()
}

/// Largest absolute difference, and how many bytes differ at all.
fn diff(ours: &RgbImage, pil: &[u8]) -> (u8, usize) {
    assert_eq!(ours.data.len(), pil.len());
    let d: Vec<u8> = ours
        .data
        .iter()
        .zip(pil)
        .map(|(a, b)| a.abs_diff(*b))
        .collect();
    (
        *d.iter().max().unwrap(),
        d.iter().filter(|&&x| x > 0).count(),
    )
}

#[test]
fn pixel_ops_match_pillow() {
    let g = golden();
    let src = image(&g["src"]);
    type PixelOp = Box<dyn Fn(&mut RgbImage)>;
    let exact: Vec<(&str, PixelOp)> = vec![
        ("autocontrast", Box::new(autocontrast)),
        ("equalize", Box::new(equalize)),
        (
            "invert",
            Box::new(|i| i.data.iter_mut().for_each(|v| *v = 255 - *v)),
        ),
        ("posterize_1", Box::new(|i| posterize(i, 1))),
        ("posterize_3", Box::new(|i| posterize(i, 3))),
        ("solarize_26", Box::new(|i| solarize_at(i, 26))),
        ("solarize_230", Box::new(|i| solarize_at(i, 230))),
        ("solarize_add_99", Box::new(|i| solarize_add(i, 99, 128))),
        ("color_0.3", Box::new(|i| adjust_saturation(i, 0.3))),
        ("color_1.7", Box::new(|i| adjust_saturation(i, 1.7))),
        ("contrast_0.4", Box::new(|i| adjust_contrast(i, 0.4))),
        ("contrast_1.6", Box::new(|i| adjust_contrast(i, 1.6))),
        ("brightness_0.5", Box::new(|i| adjust_brightness(i, 0.5))),
        ("brightness_1.5", Box::new(|i| adjust_brightness(i, 1.5))),
        ("sharpness_0.2", Box::new(|i| adjust_sharpness(i, 0.2))),
        ("sharpness_1.8", Box::new(|i| adjust_sharpness(i, 1.8))),
    ];
    for (name, op) in exact {
        let mut ours = src.clone();
        op(&mut ours);
        let (max, n) = diff(&ours, &bytes(&g["ops"][name]));
        // Pillow's enhance blends in float like ours; its SMOOTH filter is fixed point (±1).
        let tol = if name.starts_with("sharpness") { 1 } else { 0 };
        assert!(max <= tol, "{name}: max diff {max} over {n} bytes");
    }
}

#[test]
fn geometric_ops_match_pillow() {
    let g = golden();
    let src = image(&g["src"]);
    let f = g["fill"].as_array().unwrap();
    let fill = [0, 1, 2].map(|k| f[k].as_u64().unwrap() as u8);
    let cases: Vec<(&str, RgbImage)> = vec![
        ("rotate_17", rotate(&src, 17.0, fill)),
        ("rotate_-25", rotate(&src, -25.0, fill)),
        (
            "shear_x_0.27",
            affine(&src, [1.0, 0.27, 0.0, 0.0, 1.0, 0.0], fill),
        ),
        (
            "shear_y_-0.2",
            affine(&src, [1.0, 0.0, 0.0, -0.2, 1.0, 0.0], fill),
        ),
        (
            "translate_x_3.15",
            affine(&src, [1.0, 0.0, 3.15, 0.0, 1.0, 0.0], fill),
        ),
        (
            "translate_y_-2.7",
            affine(&src, [1.0, 0.0, 0.0, 0.0, 1.0, -2.7], fill),
        ),
    ];
    for (name, ours) in cases {
        let (max, n) = diff(&ours, &bytes(&g["ops"][name]));
        // Pillow interpolates in fixed point: allow one grey level.
        assert!(max <= 1, "{name}: max diff {max} over {n} bytes");
    }
}

#[test]
fn resizes_match_pillow() {
    let g = golden();
    let big = image(&g["big"]);
    let cases = [
        ("bicubic_6x5", resize_filtered(&big, 6, 5, Filter::Bicubic)),
        (
            "bicubic_20x15",
            resize_filtered(&big, 20, 15, Filter::Bicubic),
        ),
        (
            "bilinear_5x4",
            resize_filtered(&big, 5, 4, Filter::Bilinear),
        ),
        (
            "resize8_crop6",
            center_crop(&resize_shorter_side(&big, 8, Filter::Bicubic), 6).unwrap(),
        ),
    ];
    for (name, ours) in cases {
        let pil = image(&g["resize"][name]);
        assert_eq!((ours.width, ours.height), (pil.width, pil.height), "{name}");
        let (max, n) = diff(&ours, &pil.data);
        assert!(max <= 1, "{name}: max diff {max} over {n} bytes");
    }
}
