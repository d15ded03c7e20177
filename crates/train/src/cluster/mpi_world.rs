//! The only file that names rsmpi: the `MPI_COMM_WORLD` of a run launched by `mpirun`, with
//! the few collectives data-parallel training needs.

use crate::error::{Result, TrainError};

use super::buckets::Submit;
use mpi::Threading;
use mpi::collective::SystemOperation;
use mpi::environment::Universe;
use mpi::topology::{Communicator, SimpleCommunicator};
use mpi::traits::{CommunicatorCollectives, Root};

/// Environment variables that MPI launchers (OpenMPI's and MPICH's `mpirun`, PMIx and PMI
/// schedulers such as Slurm) set in every process they start.
const LAUNCHER_VARIABLES: [&str; 4] = ["OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"];

/// MPI, initialised; finalised when dropped.
pub struct World {
    // Declared before the universe, so it is dropped before MPI is finalised.
    comm: SimpleCommunicator,
    _universe: Universe,
}

impl World {
    /// Initialises MPI (threading level "funneled": only the main thread calls MPI, the
    /// compute threads never do).
    ///
    /// # Errors
    /// If the process was not started by an MPI launcher, or MPI cannot be initialised.
    pub fn init() -> Result<Self> {
        if !LAUNCHER_VARIABLES
            .iter()
            .any(|v| std::env::var_os(v).is_some())
        {
            return Err(TrainError::Cluster(
                "--distributed runs under an MPI launcher: start it as `mpirun -np N ventral … --distributed`".into(),
            ));
        }
        let Some((universe, _)) = mpi::initialize_with_threading(Threading::Funneled) else {
            return Err(TrainError::Cluster(
                "MPI was already initialised in this process".into(),
            ));
        };
        Ok(Self {
            comm: universe.world(),
            _universe: universe,
        })
    }

    /// This process's rank, from 0.
    pub fn rank(&self) -> usize {
        self.comm.rank() as usize
    }

    /// The number of processes.
    pub fn size(&self) -> usize {
        self.comm.size() as usize
    }

    /// Element-wise sums over all processes of buffers handed over one at a time while
    /// `work` runs, each sent as soon as it is handed over (a non-blocking all-reduce) so
    /// that sending overlaps `work`'s computing. `work` gets `submit`, whose k-th call fills
    /// the k-th send buffer (`sizes[k]` values) in place; every process must submit the same
    /// sizes in the same order. Returns `work`'s result, the sums of the submitted buffers in order, and
    /// the seconds spent waiting for them after `work` returned.
    ///
    /// # Panics
    /// If a filler writes past its buffer, or more buffers than `sizes` are submitted.
    pub fn sums_overlapped<R>(
        &self,
        sizes: &[usize],
        work: impl FnOnce(&mut Submit<'_>) -> R,
    ) -> (R, Vec<Vec<f32>>, f64) {
        let mut send: Vec<Vec<f32>> = sizes.iter().map(|&n| vec![0.0; n]).collect();
        let mut recv = send.clone();
        let mut submitted = 0;
        let (result, waited) = mpi::request::scope(|scope| {
            let (mut sends, mut recvs) = (send.iter_mut(), recv.iter_mut());
            let mut pending = Vec::with_capacity(sizes.len());
            let result = work(&mut |fill| {
                let (Some(s), Some(r)) = (sends.next(), recvs.next()) else {
                    panic!("more buffers submitted than the {} planned", sizes.len());
                };
                fill(s);
                let s: &[f32] = s;
                pending.push(self.comm.immediate_all_reduce_into(
                    scope,
                    s,
                    &mut r[..],
                    SystemOperation::sum(),
                ));
            });
            let start = std::time::Instant::now();
            submitted = pending.len();
            for request in pending {
                request.wait_without_status();
            }
            (result, start.elapsed().as_secs_f64())
        });
        recv.truncate(submitted);
        (result, recv, waited)
    }

    /// As [`World::sum_f32`], for `f64`.
    pub fn sum_f64(&self, values: &mut [f64]) {
        let send = values.to_vec();
        self.comm
            .all_reduce_into(&send[..], values, SystemOperation::sum());
    }

    /// Copies rank 0's `values` to every process.
    pub fn broadcast_f32(&self, values: &mut [f32]) {
        self.comm.process_at_rank(0).broadcast_into(values);
    }

    /// Copies rank 0's `values` to every process.
    pub fn broadcast_u64(&self, values: &mut [u64]) {
        self.comm.process_at_rank(0).broadcast_into(values);
    }

    /// Waits until every process has called it.
    pub fn barrier(&self) {
        self.comm.barrier();
    }

    /// Ends every process of the job with exit code `code` (`MPI_Abort`).
    pub fn abort(&self, code: i32) -> ! {
        self.comm.abort(code)
    }
}
