//! Buffers kept between calls for reuse: a fresh buffer of megabytes costs a page fault per
//! 4 KiB, each page cleared by the kernel, and growing a recycled one that is too small
//! copies its old contents first.

use std::sync::Mutex;

/// The smallest of `spare`'s buffers with room for `needed` floats; else the largest,
/// emptied (so that growing it copies nothing); else a new one. Whatever a buffer held stays
/// in it: the caller resizes it and writes what it uses.
pub(crate) fn take_fitting(spare: &Mutex<Vec<Vec<f32>>>, needed: usize) -> Vec<f32> {
    let Ok(mut spare) = spare.lock() else {
        return Vec::new();
    };
    let fits = (0..spare.len())
        .filter(|&i| spare[i].capacity() >= needed)
        .min_by_key(|&i| spare[i].capacity());
    match fits.or_else(|| (0..spare.len()).max_by_key(|&i| spare[i].capacity())) {
        Some(i) => {
            let mut buffer = spare.swap_remove(i);
            if buffer.capacity() < needed {
                buffer.clear();
            }
            buffer
        }
        None => Vec::new(),
    }
}

/// Returns `buffers` to `spare`, which then keeps its `limit` largest buffers.
pub(crate) fn give_back(
    spare: &Mutex<Vec<Vec<f32>>>,
    buffers: impl IntoIterator<Item = Vec<f32>>,
    limit: usize,
) {
    let Ok(mut spare) = spare.lock() else {
        return;
    };
    spare.extend(buffers);
    while spare.len() > limit {
        let smallest = (0..spare.len())
            .min_by_key(|&i| spare[i].capacity())
            .unwrap_or(0);
        spare.swap_remove(smallest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_the_smallest_buffer_that_fits_else_the_largest_emptied() {
        let spare = Mutex::new(vec![vec![1.0; 10], vec![2.0; 40], vec![3.0; 20]]);
        let got = take_fitting(&spare, 15);
        assert_eq!(
            (got.len(), got[0]),
            (20, 3.0),
            "the smallest with room, as it was"
        );
        let got = take_fitting(&spare, 100);
        assert_eq!(
            (got.len(), got.capacity() >= 40),
            (0, true),
            "the largest, emptied"
        );
        assert_eq!(spare.lock().unwrap().len(), 1);
        assert_eq!(take_fitting(&Mutex::new(Vec::new()), 5), Vec::<f32>::new());
    }

    #[test]
    fn giving_back_keeps_the_largest_buffers_up_to_the_limit() {
        let spare = Mutex::new(vec![vec![0.0; 30]]);
        give_back(&spare, [vec![0.0; 10], vec![0.0; 50], vec![0.0; 20]], 2);
        let mut kept: Vec<usize> = spare.lock().unwrap().iter().map(Vec::len).collect();
        kept.sort_unstable();
        assert_eq!(kept, [30, 50]);
    }
}
