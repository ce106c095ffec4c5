//! Architecture value → stand-alone network, in one call ([`build_model`]).

use bossnas_blocks::nats::NatsNet;
use bossnas_supernet::hytra::bossnet::{BossNet, BossNetConfig};
use bossnas_supernet::mbconv::{MbconvNet, MbconvNetConfig};
use bossnas_supernet::nats::nats_child;
use burn::module::Module;
use burn::tensor::{Device, Tensor};

use crate::RetrainError;
use crate::arch::ArchSpec;
use crate::recipe::ModelSection;

/// A network of any of the three spaces.
///
/// # Shapes
/// - input: `[batch, 3, H, W]` (normalised images; H = W = 32 for NATS/CIFAR)
/// - output: `[batch, num_classes]` logits
// One network is built per run; the size difference of the variants does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum RetrainNet {
    /// HyTra: BossNet (retraining blocks of spec §2.6).
    Boss(BossNet),
    /// MBConv child network.
    Mbconv(MbconvNet),
    /// NATS-Bench SSS network (xautodl semantics).
    Nats(NatsNet),
}

impl RetrainNet {
    /// Logits. See the type-level `# Shapes`.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        match self {
            RetrainNet::Boss(m) => m.forward(images),
            RetrainNet::Mbconv(m) => m.forward(images),
            RetrainNet::Nats(m) => m.forward(images),
        }
    }

    /// Trainable parameters (BN running statistics excluded).
    pub fn num_params(&self) -> usize {
        bossnas_blocks::params::trainable_params(self)
    }
}

/// Builds the freshly initialised network of `arch` with `num_classes` outputs on `device`.
///
/// `model.hytra_width_divisor` shrinks every width of a HyTra network for tests (it must
/// divide the stem width, the stage widths and the head dimension, 64);
/// `model.hytra_drop_path_rate` is BossNet's drop-path (ResConv layers only, spec §2.6). Both
/// apply to HyTra networks only, as their names say: NATS and MBConv networks have neither.
pub fn build_model(
    arch: &ArchSpec,
    num_classes: usize,
    model: &ModelSection,
    device: &Device,
) -> Result<RetrainNet, RetrainError> {
    if num_classes == 0 {
        return Err(RetrainError::Arch("needs at least one class".into()));
    }
    Ok(match arch {
        ArchSpec::Nats(a) => RetrainNet::Nats(nats_child(a, num_classes, device)),
        ArchSpec::Mbconv(a) => {
            RetrainNet::Mbconv(MbconvNetConfig::from_arch(a, num_classes).init(device))
        }
        ArchSpec::Hytra(net) => {
            let d = model.hytra_width_divisor;
            if d == 0 || 64 % d != 0 {
                return Err(RetrainError::Recipe(format!(
                    "model.hytra_width_divisor = {d}: must divide 64 (1, 2, 4, 8, 16, 32 or 64)"
                )));
            }
            let cfg = BossNetConfig::from_net(net)
                .with_num_classes(num_classes)
                .with_drop_path_rate(model.hytra_drop_path_rate)
                .with_width_divisor(d);
            RetrainNet::Boss(cfg.init(device))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

    fn section(hytra_width_divisor: usize) -> ModelSection {
        ModelSection {
            hytra_width_divisor,
            hytra_drop_path_rate: 0.0,
        }
    }

    #[test]
    fn every_space_gives_logits_of_the_right_shape() {
        let device = Device::flex();
        let x = Tensor::<4>::random([2, 3, 32, 32], Distribution::Normal(0.0, 1.0), &device);
        for (arch, div) in [
            ("8:8:16:8:16", 1),
            ("00-1111-2222-3333-0123", 1),
            ("bossnet-t0", 16),
        ] {
            let spec = ArchSpec::parse(arch).unwrap();
            let net = build_model(&spec, 7, &section(div), &device).unwrap();
            let y = net.valid().forward(x.clone());
            assert_eq!(y.dims(), [2, 7], "{arch}");
            let v: Vec<f32> = y.into_data().try_to_vec::<f32>().unwrap();
            assert!(v.iter().all(|f| f.is_finite()), "{arch}");
            assert!(net.num_params() > 0);
        }
    }

    #[test]
    fn nats_parameter_count_matches_the_reference() {
        // data/README: 8:8:8:8:8 with 10 classes has 11,714 parameters.
        let spec = ArchSpec::parse("8:8:8:8:8").unwrap();
        let net = build_model(&spec, 10, &section(1), &Device::flex()).unwrap();
        assert_eq!(net.num_params(), 11_714);
    }

    #[test]
    fn hytra_width_divisor_must_divide_64() {
        let t0 = ArchSpec::parse("bossnet-t0").unwrap();
        let e = build_model(&t0, 10, &section(3), &Device::flex())
            .unwrap_err()
            .to_string();
        assert!(e.contains("must divide 64"), "{e}");
    }
}
