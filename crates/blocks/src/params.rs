//! The one trainable-parameter counter of the modules (issue 17 folded `param_count` of
//! `hytra_layers` and `trainable_params` of `nats`, which were the same visitor).

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::Tensor;

/// Number of *trainable* scalars of any module: like PyTorch's `sum(p.numel() for p in
/// m.parameters())`, i.e. [`Module::num_params`] without the BN running statistics (which
/// Burn's `num_params` counts, since they are visited like parameters).
pub fn trainable_params<M: Module>(module: &M) -> usize {
    struct Counter {
        path: Vec<String>,
        total: usize,
    }
    impl ModuleVisitor for Counter {
        fn enter_module(&mut self, name: &str, _container_type: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _name: &str, _container_type: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let running = self
                .path
                .last()
                .is_some_and(|n| n == "running_mean" || n == "running_var");
            if !running {
                self.total += param.lazy_shape().num_elements();
            }
        }
    }
    let mut counter = Counter {
        path: Vec::new(),
        total: 0,
    };
    module.visit(&mut counter);
    counter.total
}
