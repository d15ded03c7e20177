//! The two tensor ops the zoo needs that `ventral-nn` does not re-export: joining feature maps
//! along the channel axis (GoogLeNet's Inception concatenation) and the CIFAR ResNets'
//! parameter-free "option A" shortcut. Both are built on [`Tensor::from_op`], so they take part
//! in autograd like any other op.

use ventral_nn::{Error, Result, Tensor};

/// Joins `[N, C_i, H, W]` tensors along the channel axis into `[N, Σ C_i, H, W]`; the backward
/// hands each input its slice of the gradient (`torch.cat(xs, 1)`).
///
/// # Errors
/// [`Error::Config`] if there are no tensors or they differ outside the channel axis.
pub fn cat_channels(xs: &[&Tensor]) -> Result<Tensor> {
    let Some(first) = xs.first() else {
        return Err(Error::config("cat_channels", "needs at least one tensor"));
    };
    let d = first.dims();
    if d.len() != 4 {
        return Err(Error::config(
            "cat_channels",
            format!("needs [N, C, H, W] tensors, got {d:?}"),
        ));
    }
    for x in xs {
        let e = x.dims();
        if e.len() != 4 || e[0] != d[0] || e[2] != d[2] || e[3] != d[3] {
            return Err(Error::config(
                "cat_channels",
                format!("shapes {d:?} and {e:?} differ outside the channel axis"),
            ));
        }
    }
    let (n, plane) = (d[0], d[2] * d[3]);
    let channels: Vec<usize> = xs.iter().map(|x| x.dims()[1]).collect();
    let total: usize = channels.iter().sum();
    let datas: Vec<Vec<f32>> = xs.iter().map(|x| x.to_vec()).collect();
    let mut out = Vec::with_capacity(n * total * plane);
    for b in 0..n {
        for (data, &c) in datas.iter().zip(&channels) {
            out.extend_from_slice(&data[b * c * plane..][..c * plane]);
        }
    }
    let grad_channels = channels.clone();
    Ok(Tensor::from_op(
        "cat_channels",
        out,
        vec![n, total, d[2], d[3]],
        xs,
        move |ctx| {
            let g = ctx.grad();
            let mut start = 0;
            let mut grads = Vec::with_capacity(grad_channels.len());
            for (i, &c) in grad_channels.iter().enumerate() {
                grads.push(ctx.needs(i).then(|| {
                    let mut dx = Vec::with_capacity(n * c * plane);
                    for b in 0..n {
                        dx.extend_from_slice(&g[(b * total + start) * plane..][..c * plane]);
                    }
                    dx
                }));
                start += c;
            }
            Ok(grads)
        },
    )?)
}

/// He et al. 2016 §4.2's option-A shortcut: `x[:, :, ::stride, ::stride]` with
/// `out_channels - C` zero channels added, half before and half after (the extra one after),
/// as `F.pad(s, (0, 0, 0, 0, pad // 2, pad - pad // 2))` in `zoo_defs.py`. No parameters.
///
/// # Shapes
/// - input `[N, C, H, W]`
/// - output `[N, out_channels, ⌈H / stride⌉, ⌈W / stride⌉]`
///
/// # Errors
/// [`Error::Config`] if the input is not rank 4, `stride` is zero or `out_channels < C`.
pub fn shortcut_option_a(x: &Tensor, out_channels: usize, stride: usize) -> Result<Tensor> {
    let &[n, c, h, w] = x.dims() else {
        return Err(Error::config(
            "option-A shortcut",
            format!("needs [N, C, H, W], got {:?}", x.dims()),
        ));
    };
    if stride == 0 || out_channels < c {
        return Err(Error::config(
            "option-A shortcut",
            format!("stride {stride} and {out_channels} output channels for {c} input channels"),
        ));
    }
    let (oh, ow) = (h.div_ceil(stride), w.div_ceil(stride));
    let before = (out_channels - c) / 2;
    let data = x.to_vec();
    // Flat source index of every copied output element; padded channels stay zero.
    let mut src = Vec::with_capacity(n * c * oh * ow);
    for b in 0..n {
        for ch in 0..c {
            for i in 0..oh {
                for j in 0..ow {
                    src.push(((b * c + ch) * h + i * stride) * w + j * stride);
                }
            }
        }
    }
    let mut out = vec![0.0; n * out_channels * oh * ow];
    let dst = move |k: usize| {
        let per_sample = c * oh * ow;
        let (b, rest) = (k / per_sample, k % per_sample);
        (b * out_channels + before) * oh * ow + rest
    };
    for (k, &s) in src.iter().enumerate() {
        out[dst(k)] = data[s];
    }
    let numel = x.numel();
    Ok(Tensor::from_op(
        "shortcut_option_a",
        out,
        vec![n, out_channels, oh, ow],
        &[x],
        move |ctx| {
            let g = ctx.grad();
            let mut dx = vec![0.0; numel];
            for (k, &s) in src.iter().enumerate() {
                dx[s] = g[dst(k)];
            }
            Ok(vec![Some(dx)])
        },
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cat_joins_channels_and_splits_the_gradient() {
        let a = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], [2, 1, 1, 2])
            .unwrap()
            .with_grad();
        let b = Tensor::from_vec(vec![5.0, 6.0, 7.0, 8.0], [2, 1, 1, 2])
            .unwrap()
            .with_grad();
        let y = cat_channels(&[&a, &b]).unwrap();
        assert_eq!(y.dims(), [2, 2, 1, 2]);
        assert_eq!(y.to_vec(), [1.0, 2.0, 5.0, 6.0, 3.0, 4.0, 7.0, 8.0]);
        let w = Tensor::arange(0.0, 8.0, 1.0)
            .unwrap()
            .reshape([2, 2, 1, 2])
            .unwrap();
        let g = y.mul(&w).unwrap().sum_all().unwrap().backward().unwrap();
        assert_eq!(g.get(&a).unwrap().to_vec(), [0.0, 1.0, 4.0, 5.0]);
        assert_eq!(g.get(&b).unwrap().to_vec(), [2.0, 3.0, 6.0, 7.0]);
    }

    #[test]
    fn option_a_subsamples_and_pads_channels() {
        // One sample, one channel of 2x2 values 1..4, stride 2, padded to 3 channels:
        // keeps x[0, 0, 0, 0] = 1, one zero channel before (3 - 1) / 2 = 1 and one after.
        let x = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], [1, 1, 2, 2])
            .unwrap()
            .with_grad();
        let y = shortcut_option_a(&x, 3, 2).unwrap();
        assert_eq!(y.dims(), [1, 3, 1, 1]);
        assert_eq!(y.to_vec(), [0.0, 1.0, 0.0]);
        let g = y.sum_all().unwrap().backward().unwrap();
        assert_eq!(g.get(&x).unwrap().to_vec(), [1.0, 0.0, 0.0, 0.0]);
    }
}
