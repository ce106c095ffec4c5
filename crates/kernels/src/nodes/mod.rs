//! Burn autodiff nodes around the [`crate::cpu`] kernels, registered through Burn's
//! backend-extension API: each file declares its custom operation for `Flex` and
//! `Autodiff<Flex>`, the forward and backward that call the buffer kernels, and the typed
//! tensor function the front re-exports. Routing (is this burn-flex, is the switch on) is asked
//! of [`crate::dispatch`] only.

pub mod act;
pub mod attention;
pub mod conv;
pub mod norm;
pub mod residual;
