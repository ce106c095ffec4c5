//! placeholder

// HyTra ops (search-time and retraining versions).
pub mod attention;
pub mod cpu_alloc;
pub mod dense_conv;
pub mod device;
pub mod fast_conv;
pub mod flex_conv;
pub mod hytra_layers;
pub mod peg;
pub mod res_att;
pub mod res_conv;
pub mod retrain;
pub mod search_entry;
pub mod stem;

// MBConv and NATS-SSS ops.
pub mod mbconv;
pub mod nats;
pub mod slimmable;
