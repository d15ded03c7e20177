//! Packed convolution weights kept between forward passes that record no graph (inference),
//! keyed by the weight tensor's values.
//!
//! A forward pass packs its weights for the kernel (`ventral_kernels::conv::PreparedWeights`);
//! in inference the weights are the same every call, and at batch 1 packing them was a tenth
//! of a ResNet's time. The cache holds a [`ValuesStamp`] per packing: a weight tensor that
//! still matches it shows exactly the values it was packed from (an optimizer's update cuts
//! the stamp's link first), so a stale packing is never used. It holds at most
//! [`BUDGET_BYTES`] of packings, the least recently used going first, and drops the packings
//! of weights that no longer exist whenever it adds one.

use std::sync::{Arc, Mutex, PoisonError};

use ventral_kernels::conv::{Conv2d, Epilogue, PreparedWeights, WeightUse};

use crate::error::Result;
use crate::tensor::{Tensor, ValuesStamp};

/// The most bytes of packed weights the cache keeps: every convolution of VGG-16 or
/// ResNet-50 at 224x224 (Winograd's transforms are 4x the weights they come from).
pub const BUDGET_BYTES: usize = 512 << 20;

/// One packing and the values it was made from.
struct Entry {
    stamp: ValuesStamp,
    prepared: Arc<PreparedWeights>,
    /// [`Cache::clock`] at the last use.
    used: u64,
}

/// The cached packings, and a use counter for least-recently-used eviction.
struct Cache {
    entries: Vec<Entry>,
    clock: u64,
}

static CACHE: Mutex<Cache> = Mutex::new(Cache {
    entries: Vec::new(),
    clock: 0,
});

/// `epilogue(conv(x, weight) + bias)`, through a cached packing of the weights where the
/// forward path packs them. The path is planned for prepared weights
/// ([`WeightUse::Prepared`]): the packing is paid once, not per call.
pub(crate) fn forward(
    conv: &Conv2d,
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    epilogue: Epilogue,
) -> Result<Vec<f32>> {
    let conv = &conv.with_weight_use(WeightUse::Prepared);
    let mut y =
        ventral_kernels::elementwise::zeros(conv.geometry().output_shape().iter().product());
    let (x, w, bias) = (x.data(), weight.data(), bias.map(|b| b.data()));
    match prepared(conv, weight, &w)? {
        Some(p) => conv.forward_prepared(&x, &w, &p, bias.as_deref(), epilogue, &mut y)?,
        None => conv.forward_with(&x, &w, bias.as_deref(), epilogue, &mut y)?,
    }
    Ok(y)
}

/// The packing of `weight` (values `w`) for `conv`'s forward path: cached, or made now and
/// cached; `None` where the path packs nothing.
fn prepared(conv: &Conv2d, weight: &Tensor, w: &[f32]) -> Result<Option<Arc<PreparedWeights>>> {
    {
        let mut cache = CACHE.lock().unwrap_or_else(PoisonError::into_inner);
        cache.clock += 1;
        let now = cache.clock;
        if let Some(e) = cache
            .entries
            .iter_mut()
            .find(|e| conv.fits(&e.prepared) && e.stamp.matches(weight))
        {
            e.used = now;
            return Ok(Some(e.prepared.clone()));
        }
    }
    // Packed outside the lock: other threads' passes go on meanwhile.
    let Some(prepared) = conv.prepare_forward(w)? else {
        return Ok(None);
    };
    let prepared = Arc::new(prepared);
    let mut cache = CACHE.lock().unwrap_or_else(PoisonError::into_inner);
    cache.entries.retain(|e| e.stamp.is_live());
    let now = cache.clock;
    cache.entries.push(Entry {
        stamp: weight.values_stamp(),
        prepared: prepared.clone(),
        used: now,
    });
    while cache
        .entries
        .iter()
        .map(|e| e.prepared.bytes())
        .sum::<usize>()
        > BUDGET_BYTES
    {
        let oldest = (0..cache.entries.len())
            .min_by_key(|&i| cache.entries[i].used)
            .unwrap_or(0);
        cache.entries.swap_remove(oldest);
    }
    Ok(Some(prepared))
}

/// Bytes of packed weights the cache holds now.
pub fn cached_bytes() -> usize {
    let cache = CACHE.lock().unwrap_or_else(PoisonError::into_inner);
    cache.entries.iter().map(|e| e.prepared.bytes()).sum()
}
