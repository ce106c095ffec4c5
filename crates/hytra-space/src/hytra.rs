//! HyTra search space (being written).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HytraError {
    #[error("unfinished")]
    Todo,
}
