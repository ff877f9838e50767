//! What the bench's programs share: the client CPU time of this process and the median of
//! figures over rounds.

pub mod cpu;
pub mod stats;
