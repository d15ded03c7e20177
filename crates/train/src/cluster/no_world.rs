//! A build without the `mpi` feature: there is no communicator, and `--distributed` says how
//! to get one.

use crate::error::{Result, TrainError};

use super::buckets::Submit;

/// The communicator that cannot exist in this build (the enum has no values).
pub enum World {}

impl World {
    /// Always fails: this build has no MPI.
    ///
    /// # Errors
    /// Always.
    pub fn init() -> Result<Self> {
        Err(TrainError::Cluster(
            "--distributed needs a ventral built with MPI: cargo build --release --features mpi (see the README)".into(),
        ))
    }

    /// Never called: no value exists.
    pub fn rank(&self) -> usize {
        match *self {}
    }

    /// Never called.
    pub fn size(&self) -> usize {
        match *self {}
    }

    /// Never called.
    pub fn sums_overlapped<R>(
        &self,
        _: &[usize],
        _: impl FnOnce(&mut Submit<'_>) -> R,
    ) -> (R, Vec<Vec<f32>>, f64) {
        match *self {}
    }

    /// Never called.
    pub fn sum_f64(&self, _: &mut [f64]) {
        match *self {}
    }

    /// Never called.
    pub fn broadcast_f32(&self, _: &mut [f32]) {
        match *self {}
    }

    /// Never called.
    pub fn broadcast_u64(&self, _: &mut [u64]) {
        match *self {}
    }

    /// Never called.
    pub fn barrier(&self) {
        match *self {}
    }

    /// Never called.
    pub fn abort(&self, _: i32) -> ! {
        match *self {}
    }
}
