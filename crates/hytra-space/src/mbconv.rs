//! MBConv search space (being written).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MbconvError {
    #[error("unfinished")]
    Todo,
}
