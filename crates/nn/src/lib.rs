//! Ventral's `nn` layer (see ARCHITECTURE.md). Its contents arrive with their own issues;
//! for now it only fixes the crate's place in the dependency order.
#![forbid(unsafe_code)]

pub mod checkpoint;
