//! Data-parallel training over MPI (under `mpirun`): the processes of a job, the broadcast
//! of the model from rank 0, the bucketed gradient all-reduce and the sums of per-step
//! totals. On one process (or in a build without the `mpi` feature) a [`Cluster`] is one
//! process and every collective is the identity, so the training loop has one code path.
//!
//! Rsmpi is named in `mpi_world.rs` alone; `no_world.rs` stands in for it without the
//! feature.

mod buckets;
#[cfg(feature = "mpi")]
mod mpi_world;
#[cfg(not(feature = "mpi"))]
mod no_world;

use std::cell::Cell;
use std::time::Instant;

use ventral_autograd::BackwardOptions;
use ventral_nn::{Gradients, Module, Slot, Tensor, no_grad};

use buckets::Buckets;
#[cfg(feature = "mpi")]
use mpi_world::World;
#[cfg(not(feature = "mpi"))]
use no_world::World;

use crate::error::{Result, TrainError};

/// Test hook: `RANK:STEP` makes process RANK abort (as a crash would) when it starts step
/// STEP (counted from 1 over the run), to check that the job then ends instead of hanging.
const FAULT_VARIABLE: &str = "VENTRAL_TEST_ABORT_AT";

/// Moves every random stream of `model` (each dropout layer's mask counter) by `rank · 2⁴⁸`
/// draws, so that the processes, which share the seeds, draw independent masks for their
/// shares of a batch instead of the same ones. Rank 0's streams stay where they are: they
/// are the ones saved, and a run resumed on one process continues them.
fn own_random_streams(model: &mut dyn Module, rank: usize) {
    model.visit("", &mut |_, slot| {
        if let Slot::Rng(r) = slot {
            *r = r.wrapping_add((rank as u64) << 48);
        }
    });
}

/// The processes of a training job: one, or every rank of `MPI_COMM_WORLD`.
pub struct Cluster {
    world: Option<World>,
    /// Seconds spent in collectives so far (waiting for the slowest process included).
    comm_seconds: Cell<f64>,
    /// The step at which this process aborts (the [`FAULT_VARIABLE`] hook).
    abort_at: Option<u64>,
}

impl Cluster {
    /// This process alone.
    pub fn single() -> Self {
        Self {
            world: None,
            comm_seconds: Cell::new(0.0),
            abort_at: None,
        }
    }

    /// Every process of the MPI job when `distributed`, else [`Cluster::single`].
    ///
    /// # Errors
    /// With `distributed`: a build without the `mpi` feature, or a process not started by
    /// an MPI launcher.
    pub fn join(distributed: bool) -> Result<Self> {
        if !distributed {
            return Ok(Self::single());
        }
        let world = World::init()?;
        let rank = world.rank();
        let abort_at = std::env::var(FAULT_VARIABLE).ok().and_then(|v| {
            let (r, step) = v.split_once(':')?;
            (r.parse::<usize>().ok()? == rank).then_some(step.parse().ok()?)
        });
        Ok(Self {
            world: Some(world),
            comm_seconds: Cell::new(0.0),
            abort_at,
        })
    }

    /// This process's rank, from 0.
    pub fn rank(&self) -> usize {
        self.world.as_ref().map_or(0, World::rank)
    }

    /// The number of processes.
    pub fn size(&self) -> usize {
        self.world.as_ref().map_or(1, World::size)
    }

    /// Whether this is rank 0, the one that prints and writes files.
    pub fn is_leader(&self) -> bool {
        self.rank() == 0
    }

    /// Seconds spent in collectives since the start (including waits for slower processes).
    pub fn comm_seconds(&self) -> f64 {
        self.comm_seconds.get()
    }

    /// Fails unless every process can take an equal share of a batch of `batch` samples.
    ///
    /// # Errors
    /// [`TrainError::Cluster`] if `batch` is not a multiple of the number of processes.
    pub fn check_batch(&self, batch: usize) -> Result<()> {
        let n = self.size();
        if !batch.is_multiple_of(n) {
            return Err(TrainError::Cluster(format!(
                "--batch-size {batch} does not split evenly over {n} processes: pick a multiple of {n}"
            )));
        }
        Ok(())
    }

    fn timed<T>(&self, f: impl FnOnce(&World) -> T) -> Option<T> {
        let world = self.world.as_ref()?;
        let start = Instant::now();
        let result = f(world);
        self.comm_seconds
            .set(self.comm_seconds.get() + start.elapsed().as_secs_f64());
        Some(result)
    }

    /// Gives every process rank 0's parameters, buffers (BatchNorm's running statistics),
    /// counters and random-stream positions, so all start from the same model; then moves
    /// each process to its own random streams (each dropout stream moved by `rank · 2⁴⁸` draws).
    ///
    /// # Errors
    /// If a tensor cannot be changed in place (not a leaf: never for a module's own).
    pub fn broadcast_module(&self, model: &mut dyn Module) -> Result<()> {
        let Some(world) = &self.world else {
            return Ok(());
        };
        let (mut floats, mut integers) = (Vec::new(), Vec::new());
        model.visit("", &mut |_, slot| match slot {
            Slot::Parameter(t) | Slot::Buffer(t) => floats.extend_from_slice(&t.values()),
            Slot::Counter(c) => integers.push(*c as u64),
            Slot::Rng(r) => integers.push(*r),
        });
        world.broadcast_f32(&mut floats);
        world.broadcast_u64(&mut integers);
        let (mut at, mut next) = (0, 0);
        let mut failure = None;
        no_grad(|| {
            model.visit("", &mut |_, slot| match slot {
                Slot::Parameter(t) | Slot::Buffer(t) => {
                    let n = t.numel();
                    let values = &floats[at..at + n];
                    at += n;
                    if let Err(e) = t.update(|dst| dst.copy_from_slice(values)) {
                        failure.get_or_insert(e);
                    }
                }
                Slot::Counter(c) => {
                    *c = integers[next] as i64;
                    next += 1;
                }
                Slot::Rng(r) => {
                    *r = integers[next];
                    next += 1;
                }
            });
        });
        if let Some(e) = failure {
            return Err(ventral_nn::Error::from(e).into());
        }
        own_random_streams(model, self.rank());
        Ok(())
    }

    /// The gradients of `loss` (`None`: this process has no samples, and contributes zeros)
    /// for the parameters of `model`, summed over processes with each process's gradient
    /// scaled by `weight`. With `weight` = this process's share of the batch, that is the
    /// gradient of the whole batch's mean loss. On one process: `loss.backward()`.
    ///
    /// The gradients travel in buckets of about 128 KiB ([`buckets::BUCKET_FLOATS`]),
    /// flattened in reverse module order (the order in which backward completes them); each
    /// bucket is sent, with a
    /// non-blocking all-reduce, as soon as backward has completed all its gradients, so
    /// sending overlaps the rest of the backward pass. Buckets start in a fixed order and
    /// hold fixed parameters, so the sums are made the same way in every run.
    ///
    /// # Errors
    /// Those of [`Tensor::backward`].
    pub(crate) fn backward(
        &self,
        model: &mut dyn Module,
        loss: Option<&Tensor>,
        weight: f32,
    ) -> Result<Gradients> {
        let Some(world) = &self.world else {
            return Ok(match loss {
                Some(loss) => loss.backward().map_err(ventral_nn::Error::from)?,
                None => Gradients::new(),
            });
        };
        let mut buckets = Buckets::new(model, weight);
        let sizes = buckets.sizes();
        let ((result, mut grads, submitting), sums, waiting) =
            world.sums_overlapped(&sizes, |submit| {
                let mut grads = Gradients::new();
                let result = match loss {
                    Some(loss) => loss.backward_with_hook(
                        &mut grads,
                        BackwardOptions::default(),
                        &mut |leaf, grads| buckets.completed(leaf, grads, submit),
                    ),
                    None => Ok(()),
                };
                if result.is_ok() {
                    buckets.send_rest(&grads, submit);
                }
                (result, grads, buckets.submitting)
            });
        self.comm_seconds
            .set(self.comm_seconds.get() + submitting + waiting);
        result.map_err(ventral_nn::Error::from)?;
        for (range, sum) in buckets.plan.iter().zip(sums) {
            let mut at = 0;
            for p in &buckets.params[range.clone()] {
                let n = p.numel();
                let sum = Tensor::from_vec(sum[at..at + n].to_vec(), p.shape().clone())
                    .map_err(ventral_nn::Error::from)?;
                grads.insert(p, sum).map_err(ventral_nn::Error::from)?;
                at += n;
            }
        }
        Ok(grads)
    }

    /// Replaces `values` by their element-wise sums over all processes.
    pub fn sum(&self, values: &mut [f64]) {
        self.timed(|w| w.sum_f64(values));
    }

    /// Whether `flag` is set on any process (every process gets the same answer, so all
    /// stop at the same step).
    pub fn any(&self, flag: bool) -> bool {
        let mut v = [f64::from(u8::from(flag))];
        self.sum(&mut v);
        v[0] > 0.0
    }

    /// The test hook `VENTRAL_TEST_ABORT_AT=RANK:STEP`: aborts this process at the start of
    /// `step`.
    pub(crate) fn maybe_fail_at(&self, step: u64) {
        if self.abort_at == Some(step) {
            eprintln!(
                "ventral: rank {} aborting at step {step} ({FAULT_VARIABLE})",
                self.rank()
            );
            std::process::abort();
        }
    }

    /// Waits until every process has called it (on one process: returns at once).
    pub fn barrier(&self) {
        if let Some(world) = &self.world {
            world.barrier();
        }
    }

    /// Ends every process of the job at once with exit code `code` (`MPI_Abort`): the way
    /// out after an error on one process, since the others may be waiting in a collective
    /// that will never complete. On one process: exits.
    pub fn abort(&self, code: i32) -> ! {
        match &self.world {
            Some(world) => world.abort(code),
            None => std::process::exit(code),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::own_random_streams;
    use ventral_nn::layers::Dropout;
    use ventral_nn::{Module, Tensor};

    #[test]
    fn each_rank_draws_its_own_dropout_masks() {
        let x = Tensor::ones([256]).unwrap();
        let masks: Vec<Vec<f32>> = (0..3)
            .map(|rank| {
                let mut drop = Dropout::new(0.5, 7).unwrap();
                own_random_streams(&mut drop, rank);
                drop.forward(&x).unwrap().to_vec()
            })
            .collect();
        assert_ne!(masks[0], masks[1]);
        assert_ne!(masks[1], masks[2]);
        // Rank 0 draws what a single process draws.
        let single = Dropout::new(0.5, 7).unwrap().forward(&x).unwrap().to_vec();
        assert_eq!(masks[0], single);
    }
}
