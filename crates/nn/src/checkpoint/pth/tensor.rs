//! Tensor values from storage bytes: the view (offset, size, stride) checked against the
//! storage, and the elements decoded to Ventral's f32 or i64.

use super::value::StorageType;
use crate::checkpoint::TensorData;

/// The checked geometry of one view.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct View {
    /// Offset of element 0, in elements.
    pub offset: u64,
    /// Shape.
    pub size: Vec<u64>,
    /// Strides, in elements.
    pub stride: Vec<u64>,
    /// Elements of the view.
    pub numel: u64,
}

impl View {
    /// Checks that every element of the view lies inside a storage of `storage_numel`
    /// elements, as `torch.as_strided` requires.
    ///
    /// # Errors
    /// A description of what does not fit.
    pub(super) fn new(
        offset: u64,
        size: Vec<u64>,
        stride: Vec<u64>,
        storage_numel: u64,
    ) -> Result<View, String> {
        let numel = size
            .iter()
            .try_fold(1u64, |n, &d| n.checked_mul(d))
            .ok_or_else(|| format!("size {size:?} has more than 2^64 elements"))?;
        if numel > 0 {
            // The last element's index: offset + sum of (size - 1) * stride, in u128 (no
            // overflow for up to 16 dimensions of u64).
            let last = size
                .iter()
                .zip(&stride)
                .map(|(&d, &s)| u128::from(d - 1) * u128::from(s))
                .sum::<u128>()
                + u128::from(offset);
            if last >= u128::from(storage_numel) {
                return Err(format!(
                    "the view (offset {offset}, size {size:?}, stride {stride:?}) reaches element {last} of a storage of {storage_numel}"
                ));
            }
        }
        Ok(View {
            offset,
            size,
            stride,
            numel,
        })
    }

    /// Whether the elements are one contiguous row-major run.
    fn is_contiguous(&self) -> bool {
        let mut expected = 1u64;
        for (&d, &s) in self.size.iter().zip(&self.stride).rev() {
            if d != 1 && s != expected {
                return false;
            }
            expected = expected.saturating_mul(d);
        }
        true
    }

    /// The storage index of every element, row-major. Only for non-contiguous views, whose
    /// elements are visited one by one anyway.
    fn for_each_index(&self, mut f: impl FnMut(u64)) {
        if self.numel == 0 {
            return;
        }
        let dims = self.size.len();
        let mut index = vec![0u64; dims];
        let mut at = self.offset;
        loop {
            f(at);
            // The odometer: bump the last dimension, carry into the ones before.
            let mut d = dims;
            loop {
                if d == 0 {
                    return;
                }
                d -= 1;
                // Wrapping: a dimension of size 1 may have any stride; the sums of the
                // elements actually visited stay in bounds.
                index[d] += 1;
                at = at.wrapping_add(self.stride[d]);
                if index[d] < self.size[d] {
                    break;
                }
                at = at.wrapping_sub(self.stride[d].wrapping_mul(self.size[d]));
                index[d] = 0;
            }
        }
    }
}

/// float16 bits to f32 (exact: every half is an f32).
pub(super) fn f16_to_f32(h: u16) -> f32 {
    let sign = u32::from(h >> 15) << 31;
    let exp = u32::from((h >> 10) & 0x1f);
    let man = u32::from(h & 0x3ff);
    let magnitude = match exp {
        // Zero and subnormals: man * 2^-24.
        0 => (man as f32 * f32::from_bits(0x3380_0000)).to_bits(),
        // Infinities and NaNs.
        31 => 0x7f80_0000 | (man << 13),
        // Normal: rebias the exponent from 15 to 127.
        _ => ((exp + 112) << 23) | (man << 13),
    };
    f32::from_bits(sign | magnitude)
}

/// The values of `view` in `bytes` (the whole storage, `dtype` elements, little-endian
/// unless `big_endian`), as Ventral's f32 (float32, float64, float16, bfloat16) or i64
/// (int64). The view was checked against the storage ([`View::new`]) and `dtype` is one
/// with an element size.
pub(super) fn values(
    bytes: &[u8],
    dtype: StorageType,
    big_endian: bool,
    view: &View,
) -> TensorData {
    fn decode<T, const N: usize>(
        bytes: &[u8],
        view: &View,
        big_endian: bool,
        from: fn([u8; N], bool) -> T,
    ) -> Vec<T> {
        let at = |i: u64| -> T {
            let i = i as usize * N;
            from(bytes[i..i + N].try_into().expect("N bytes"), big_endian)
        };
        if view.numel == 0 {
            // An empty view may have any offset, even past the storage's end.
            return Vec::new();
        }
        if view.is_contiguous() {
            let start = view.offset as usize * N;
            let end = start + view.numel as usize * N;
            return bytes[start..end]
                .chunks_exact(N)
                .map(|c| from(c.try_into().expect("N bytes"), big_endian))
                .collect();
        }
        let mut out = Vec::with_capacity(view.numel as usize);
        view.for_each_index(|i| out.push(at(i)));
        out
    }
    match dtype {
        StorageType::Float => TensorData::F32(decode(bytes, view, big_endian, |b, be| {
            if be {
                f32::from_be_bytes(b)
            } else {
                f32::from_le_bytes(b)
            }
        })),
        StorageType::Double => TensorData::F32(decode(bytes, view, big_endian, |b, be| {
            (if be {
                f64::from_be_bytes(b)
            } else {
                f64::from_le_bytes(b)
            }) as f32
        })),
        StorageType::Half => TensorData::F32(decode(bytes, view, big_endian, |b, be| {
            f16_to_f32(if be {
                u16::from_be_bytes(b)
            } else {
                u16::from_le_bytes(b)
            })
        })),
        StorageType::BFloat16 => TensorData::F32(decode(bytes, view, big_endian, |b, be| {
            let bits = if be {
                u16::from_be_bytes(b)
            } else {
                u16::from_le_bytes(b)
            };
            f32::from_bits(u32::from(bits) << 16)
        })),
        StorageType::Long => TensorData::I64(decode(bytes, view, big_endian, |b, be| {
            if be {
                i64::from_be_bytes(b)
            } else {
                i64::from_le_bytes(b)
            }
        })),
        StorageType::Other(name) => unreachable!("{name} has no element size; refused before"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halves_convert_exactly() {
        // Bit patterns from IEEE 754-2008's binary16: 1, -2, 65504 (largest), 2^-14 (smallest
        // normal), 2^-24 (smallest subnormal), +inf, a NaN.
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert_eq!(f16_to_f32(0x0400), 2f32.powi(-14));
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x8001), -(2f32.powi(-24)));
        assert_eq!(f16_to_f32(0x7c00), f32::INFINITY);
        assert!(f16_to_f32(0x7e00).is_nan());
    }

    #[test]
    fn views_stay_in_bounds_and_gather_strided_elements() {
        // A [2, 3] view at offset 1 with strides (1, 2) of a 6-element storage reaches
        // 1 + 1 + 2*2 = 6: one past the end.
        assert!(View::new(1, vec![2, 3], vec![1, 2], 6).is_err());
        let view = View::new(0, vec![2, 3], vec![1, 2], 6).unwrap();
        let bytes: Vec<u8> = (0..6).flat_map(|i| (i as f32).to_le_bytes()).collect();
        // Element (r, c) is storage[r + 2c]: the transpose of a [3, 2] row-major matrix.
        assert_eq!(
            values(&bytes, StorageType::Float, false, &view),
            TensorData::F32(vec![0.0, 2.0, 4.0, 1.0, 3.0, 5.0])
        );
        let empty = View::new(100, vec![0, 5], vec![5, 1], 0).unwrap();
        assert_eq!(
            values(&[], StorageType::Long, false, &empty),
            TensorData::I64(vec![])
        );
    }
}
