//! Gradient buckets: the parameters, in reverse module order, grouped into runs whose
//! gradients are flattened into one buffer each, so a step makes a few large all-reduces
//! instead of one per tensor (a ResNet-20 has 65 parameter tensors, most of them small), and
//! each is sent once backward has completed it.

use std::collections::HashMap;
use std::ops::Range;
use std::time::Instant;

use ventral_autograd::TensorId;
use ventral_nn::{Gradients, Module, Tensor, named_parameters};

/// The `f32`s (128 KiB) at which a bucket closes: large enough that per-message latency is
/// negligible (microseconds against the milliseconds of a step), small enough that LeNet-5
/// makes 2 buckets and ResNet-20 8, so the first ones travel while backward still computes
/// the others.
pub const BUCKET_FLOATS: usize = 1 << 15;

/// Hands the next bucket to the communication layer: called with a filler that writes the
/// bucket's weighted gradients into the send buffer it is given (the bucket's size).
pub type Submit<'a> = dyn FnMut(&dyn Fn(&mut [f32])) + 'a;

/// The buckets of one step and which of them backward has completed.
pub struct Buckets {
    /// The parameters, last layer first.
    pub params: Vec<Tensor>,
    /// Index ranges of `params`, one per bucket.
    pub plan: Vec<Range<usize>>,
    bucket_of: HashMap<TensorId, usize>,
    /// Gradients each bucket still waits for.
    missing: Vec<usize>,
    /// The next bucket to send (they are sent in order: every process must start the same
    /// all-reduces in the same order).
    next: usize,
    weight: f32,
    /// Seconds spent handing buckets to MPI.
    pub submitting: f64,
}

impl Buckets {
    /// The buckets of `model`'s trainable parameters, each gradient to be scaled by `weight`.
    pub fn new(model: &mut dyn Module, weight: f32) -> Self {
        // Frozen parameters (no gradient required) travel in no bucket: the all-reduce
        // would hand them a gradient of zeros, which weight decay and momentum act on.
        let params: Vec<Tensor> = named_parameters(model)
            .into_iter()
            .rev()
            .map(|(_, p)| p)
            .filter(Tensor::requires_grad)
            .collect();
        let sizes: Vec<usize> = params.iter().map(Tensor::numel).collect();
        let plan = plan(&sizes, BUCKET_FLOATS);
        let mut bucket_of = HashMap::new();
        for (b, range) in plan.iter().enumerate() {
            for p in &params[range.clone()] {
                bucket_of.insert(p.id(), b);
            }
        }
        let missing = plan.iter().map(|r| r.len()).collect();
        Self {
            params,
            plan,
            bucket_of,
            missing,
            next: 0,
            weight,
            submitting: 0.0,
        }
    }

    /// The number of `f32`s in each bucket.
    pub fn sizes(&self) -> Vec<usize> {
        self.plan
            .iter()
            .map(|r| self.params[r.clone()].iter().map(Tensor::numel).sum())
            .collect()
    }

    /// Records that backward completed `leaf`'s gradient, and sends every bucket that is
    /// complete and next in order.
    pub fn completed(&mut self, leaf: &Tensor, grads: &Gradients, submit: &mut Submit<'_>) {
        if let Some(&b) = self.bucket_of.get(&leaf.id()) {
            self.missing[b] = self.missing[b].saturating_sub(1);
        }
        while self.next < self.plan.len() && self.missing[self.next] == 0 {
            self.send_next(grads, submit);
        }
    }

    /// Sends the buckets not sent yet (after backward; a parameter without a gradient
    /// counts as zeros).
    pub fn send_rest(&mut self, grads: &Gradients, submit: &mut Submit<'_>) {
        while self.next < self.plan.len() {
            self.send_next(grads, submit);
        }
    }

    fn send_next(&mut self, grads: &Gradients, submit: &mut Submit<'_>) {
        let (bucket, weight) = (&self.params[self.plan[self.next].clone()], self.weight);
        // Written straight into the communication layer's send buffer: no staging copy.
        let fill = |out: &mut [f32]| {
            let mut at = 0;
            for p in bucket {
                let dst = &mut out[at..at + p.numel()];
                match grads.get(p) {
                    Some(g) => dst
                        .iter_mut()
                        .zip(g.values().iter())
                        .for_each(|(d, v)| *d = v * weight),
                    None => dst.fill(0.0),
                }
                at += p.numel();
            }
        };
        let start = Instant::now();
        submit(&fill);
        self.submitting += start.elapsed().as_secs_f64();
        self.next += 1;
    }
}

/// Groups consecutive parameters of `sizes` (in their fixed order, so every process and every
/// run makes the same buckets) into index ranges; a bucket closes as soon as it holds at
/// least `limit` values, so a small tensor joins its large neighbour instead of travelling
/// alone.
pub fn plan(sizes: &[usize], limit: usize) -> Vec<Range<usize>> {
    let mut buckets = Vec::new();
    let (mut start, mut filled) = (0, 0);
    for (i, &size) in sizes.iter().enumerate() {
        filled += size;
        if filled >= limit {
            buckets.push(start..i + 1);
            (start, filled) = (i + 1, 0);
        }
    }
    if start < sizes.len() {
        buckets.push(start..sizes.len());
    }
    buckets
}

#[cfg(test)]
mod tests {
    use super::{Buckets, plan};
    use ventral_autograd::{BackwardOptions, Gradients};
    use ventral_nn::{Tensor, loss};

    #[test]
    fn backward_completes_the_buckets_in_order_and_early() {
        // LeNet-5's buckets: the first is sent while backward still has conv1 and conv2 to
        // do, and every bucket leaves during backward, none at the end; the values sent are
        // the weighted gradients.
        let mut model = ventral_models::build("lenet5", 10, 0).unwrap();
        let x = Tensor::rand_normal(vec![4, 1, 28, 28], 0.0, 1.0, 3).unwrap();
        let loss = loss::cross_entropy(&model.forward(&x).unwrap(), &[1, 2, 3, 4], 0.0).unwrap();
        let mut buckets = Buckets::new(model.as_mut(), 0.5);
        let sizes = buckets.sizes();
        assert_eq!(sizes, [59_134, 2_572]);
        let (mut sent, mut leaves, mut first_at) = (Vec::new(), 0, None);
        let mut grads = Gradients::new();
        loss.backward_with_hook(&mut grads, BackwardOptions::default(), &mut |leaf, g| {
            leaves += 1;
            buckets.completed(leaf, g, &mut |fill| {
                let mut v = vec![f32::NAN; sizes[sent.len()]];
                fill(&mut v);
                sent.push(v);
            });
            if !sent.is_empty() {
                first_at.get_or_insert(leaves);
            }
        })
        .unwrap();
        assert_eq!(leaves, 10);
        assert_eq!(
            first_at,
            Some(6),
            "the fully connected layers' 6 tensors come first"
        );
        assert_eq!(sent.len(), 2);
        buckets.send_rest(&grads, &mut |_| panic!("nothing left to send"));
        let fc3_bias = &buckets.params[0];
        assert_eq!(fc3_bias.numel(), 10);
        let g = grads.get(fc3_bias).unwrap().to_vec();
        assert_eq!(
            sent[0][..10],
            g.iter().map(|v| v * 0.5).collect::<Vec<_>>()[..]
        );
    }

    #[test]
    fn buckets_cover_every_parameter_once_in_order() {
        assert_eq!(plan(&[3, 3, 3, 3], 6), [0..2, 2..4]);
        assert_eq!(plan(&[3, 3, 3], 7).len(), 1);
        assert_eq!(plan(&[10, 1, 1], 4), [0..1, 1..3]); // too large: alone
        assert_eq!(plan(&[1, 10, 1, 1, 1, 1], 4), [0..2, 2..6]);
        assert_eq!(plan(&[2; 5], 100).len(), 1);
        assert!(plan(&[], 4).is_empty());
    }
}
