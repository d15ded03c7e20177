//! PyTorch `torch.save` checkpoints read natively: the committed files PyTorch wrote against
//! its own description of them, and hostile archives and pickles refused cleanly.

mod pth_common;

use std::path::PathBuf;

use pth_common::{Tensor, archive, f32_bytes, fixture, fnv1a64, state_pickle, zip};
use serde_json::Value;
use ventral_nn::checkpoint::{CheckpointError, DType, PthError, StateDict, TensorData, load};
use ventral_nn::limits::Limits;

fn scratch(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ventral-pth-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn reference() -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture("reference.json")).unwrap()).unwrap()
}

fn value_bytes(data: &TensorData) -> Vec<u8> {
    match data {
        TensorData::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        TensorData::I64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
    }
}

/// Every key, in order, with the shape, dtype and value hash PyTorch recorded.
fn assert_matches_reference(file: &str, state: &StateDict) {
    let reference = reference();
    let expected = reference["files"][file].as_array().unwrap();
    let keys: Vec<&str> = state.keys().collect();
    let want: Vec<&str> = expected
        .iter()
        .map(|e| e["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, want, "{file}");
    for entry in expected {
        let key = entry["key"].as_str().unwrap();
        let record = state.get(key).unwrap();
        let shape: Vec<usize> = entry["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(record.shape(), shape, "{file} {key}");
        assert_eq!(record.dtype().to_string(), entry["dtype"], "{file} {key}");
        let hash = format!("{:016x}", fnv1a64(&value_bytes(record.data())));
        assert_eq!(hash, entry["fnv1a64"], "{file} {key}: values differ");
    }
}

#[test]
fn every_tensor_of_the_pytorch_files_matches_pytorchs_values_bit_for_bit() {
    for file in [
        "lenet5.pth",
        "resnet20.pth",
        "views.pth",
        "views_p4.pth",
        "views_deflated.pth",
        "checkpoint.pth",
    ] {
        let state = load(&fixture(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_matches_reference(file, &state);
    }
}

#[test]
fn resnet20_has_the_zoo_layout() {
    let state = load(&fixture("resnet20.pth")).unwrap();
    // The stem convolution, 18 in the blocks, 19 BatchNorms of 5 entries, the head's 2.
    assert_eq!(state.len(), 1 + 18 + 19 * 5 + 2);
    // The reference's parameter count (shared/reference/README.md), plus each BatchNorm's
    // running mean and variance (their weight's length twice) and counter.
    let bn: usize = state
        .iter()
        .filter(|(k, _)| k.ends_with("running_mean"))
        .map(|(_, r)| r.shape()[0])
        .sum();
    assert_eq!(state.numel(), 269_722 + 2 * bn + 19);
    let counters = state
        .iter()
        .filter(|(_, r)| r.dtype() == DType::I64)
        .count();
    assert_eq!(counters, 19);
    let nbt = state.get("layer3.2.bn2.num_batches_tracked").unwrap();
    assert_eq!((nbt.shape(), nbt.as_i64()), (&[][..], Some(&[7i64][..])));
}

#[test]
fn the_pth_and_its_safetensors_twin_hold_the_same_tensors() {
    let pth = load(&fixture("lenet5.pth")).unwrap();
    let twin = load(&fixture("lenet5.safetensors")).unwrap();
    assert_eq!(pth.len(), twin.len());
    for (name, record) in pth.iter() {
        assert_eq!(Some(record), twin.get(name), "{name}");
    }
}

#[test]
fn views_dtypes_and_parameters_read_as_pytorch_sees_them() {
    let state = load(&fixture("views.pth")).unwrap();
    let get = |k: &str| state.get(k).unwrap();
    // `window` is shared[4:16] viewed as [3, 4]: the same storage at offset 4.
    let shared = get("shared").as_f32().unwrap();
    assert_eq!(get("window").as_f32().unwrap(), &shared[4..16]);
    assert_eq!(get("window").shape(), &[3, 4]);
    let every_other: Vec<f32> = shared.iter().skip(1).step_by(2).copied().collect();
    assert_eq!(get("every_other").as_f32().unwrap(), every_other);
    assert_eq!(get("count").as_i64(), Some(&[12_345_678_901i64][..]));
    assert_eq!(get("empty").shape(), &[0, 3]);
    assert_eq!(get("transposed").shape(), &[5, 3]);
}

fn pth_error(result: Result<StateDict, CheckpointError>) -> (PthError, String) {
    match result {
        Err(CheckpointError::Pth { source, .. }) => {
            let text = source.to_string();
            (source, text)
        }
        other => panic!("expected a PyTorch checkpoint error, got {other:?}"),
    }
}

/// A one-tensor archive around `pickle` with a 4-float storage `0`.
fn with_pickle(name: &str, pickle: &[u8]) -> PathBuf {
    scratch(
        name,
        &archive(pickle, &[("0", f32_bytes(&[1.0, 2.0, 3.0, 4.0]))]),
    )
}

#[test]
fn a_handmade_archive_loads() {
    let pickle = state_pickle(&[Tensor::float("w", "0", vec![2, 2])]);
    let state = load(&with_pickle("ok.pth", &pickle)).unwrap();
    assert_eq!(
        state.get("w").unwrap().as_f32(),
        Some(&[1.0, 2.0, 3.0, 4.0][..])
    );
}

#[test]
fn zip64_archives_load() {
    // The layout miniz writes past 4 GiB, on a small archive.
    let pickle = state_pickle(&[Tensor::float("w", "0", vec![2, 2])]);
    let storage = f32_bytes(&[1.0, 2.0, 3.0, 4.0]);
    let bytes = pth_common::zip_with(&[("big/data.pkl", &pickle), ("big/data/0", &storage)], true);
    let state = load(&scratch("zip64.pth", &bytes)).unwrap();
    assert_eq!(
        state.get("w").unwrap().as_f32(),
        Some(&[1.0, 2.0, 3.0, 4.0][..])
    );
    // Its locator pointing outside the file is refused.
    let mut broken = bytes.clone();
    let locator = broken.len() - 22 - 20;
    broken[locator + 8..locator + 16].copy_from_slice(&u64::MAX.to_le_bytes());
    let (_, text) = pth_error(load(&scratch("zip64-bad.pth", &broken)));
    assert!(text.contains("ZIP64 record's offset"), "{text}");
}

#[test]
fn globals_outside_the_allow_list_are_refused_by_name() {
    // `os.system("ls")` as pickle.dumps writes it (protocol 2).
    let os_system = b"\x80\x02cos\nsystem\nq\x00X\x02\x00\x00\x00lsq\x01\x85q\x02Rq\x03.";
    let (err, text) = pth_error(load(&with_pickle("os.pth", os_system)));
    assert_eq!(
        err,
        PthError::Global {
            module: "os".into(),
            name: "system".into()
        }
    );
    assert!(
        text.contains("`os.system`") && text.contains("not allowed"),
        "{text}"
    );
    // `builtins.eval` through protocol 4's STACK_GLOBAL.
    let eval = b"\x80\x04\x8c\x08builtins\x94\x8c\x04eval\x94\x93\x94\x8c\x041+1\x94\x85\x94R\x94.";
    let (err, _) = pth_error(load(&with_pickle("eval.pth", eval)));
    assert!(
        matches!(err, PthError::Global { ref name, .. } if name == "eval"),
        "{err}"
    );
    // A torch global that is not a storage type.
    let load_fn = b"\x80\x02ctorch\nload\n.";
    let (_, text) = pth_error(load(&with_pickle("torch-load.pth", load_fn)));
    assert!(text.contains("`torch.load`"), "{text}");
    // The object-building opcodes are refused even without a global.
    let (_, text) = pth_error(load(&with_pickle("newobj.pth", b"\x80\x02)\x81.")));
    assert!(text.contains("NEWOBJ"), "{text}");
}

#[test]
fn huge_lengths_deep_nesting_and_memo_abuse_are_refused() {
    let cases: [(&str, Vec<u8>, &str); 5] = [
        (
            "string",
            b"\x80\x02X\xff\xff\xff\xff".to_vec(),
            "needs 4294967295 more bytes",
        ),
        (
            "long",
            b"\x80\x02\x8b\x00\x00\x00\x10".to_vec(),
            "needs 268435456 more bytes",
        ),
        (
            "nesting",
            [b"\x80\x02".to_vec(), vec![b'('; 5000]].concat(),
            "nested deeper than 1000",
        ),
        (
            "memo",
            b"\x80\x02j\xff\xff\xff\x7f.".to_vec(),
            "memo entry 2147483647 was never stored",
        ),
        (
            "truncated",
            state_pickle(&[Tensor::float("w", "0", vec![4])])[..60].to_vec(),
            "truncated",
        ),
    ];
    for (name, pickle, needle) in cases {
        let (err, text) = pth_error(load(&with_pickle(name, &pickle)));
        assert!(matches!(err, PthError::Pickle { .. }), "{name}: {err:?}");
        assert!(text.contains(needle), "{name}: {text}");
    }
}

#[test]
fn views_outside_their_storage_and_wrong_sizes_are_refused() {
    let mut past_end = Tensor::float("w", "0", vec![4]);
    past_end.offset = 1;
    let mut huge = Tensor::float("w", "0", vec![1 << 40, 1 << 20]);
    huge.numel = 4;
    let mut overflow = Tensor::float("w", "0", vec![1 << 40, 1 << 40]);
    overflow.numel = 4;
    let mut stored_numel = Tensor::float("w", "0", vec![4]);
    stored_numel.numel = 1 << 62;
    let mut missing = Tensor::float("w", "7", vec![4]);
    missing.numel = 4;
    let mut ints = Tensor::float("w", "0", vec![4]);
    ints.storage = "IntStorage";
    let cases = [
        (past_end, "reaches element 4 of a storage of 4"),
        (
            huge,
            "reaches element 1152921504606846975 of a storage of 4",
        ),
        (overflow, "more than 2^64 elements"),
        (
            stored_numel,
            "declares 4611686018427387904 elements of 4 bytes",
        ),
        (missing, "`data/7` is not in the archive"),
        (ints, "torch.IntStorage"),
    ];
    for (i, (tensor, needle)) in cases.into_iter().enumerate() {
        let path = with_pickle(&format!("view-{i}.pth"), &state_pickle(&[tensor]));
        let (err, text) = pth_error(load(&path));
        assert!(matches!(err, PthError::Tensor { .. }), "{i}: {err:?}");
        assert!(
            text.starts_with("tensor `w`: ") && text.contains(needle),
            "{i}: {text}"
        );
    }
}

#[test]
fn tensors_past_the_checkpoint_limit_are_refused_before_allocation() {
    // One 4-float storage viewed 1000 times over with stride 0: 4 MB from 16 bytes.
    let mut broadcast = Tensor::float("w", "0", vec![1_000_000]);
    broadcast.numel = 4;
    broadcast.stride = vec![0];
    let path = with_pickle("broadcast.pth", &state_pickle(&[broadcast]));
    let small = Limits {
        checkpoint_bytes: 1 << 20,
        ..Limits::DEFAULT
    };
    match small.scoped(|| load(&path)) {
        Err(CheckpointError::TooLarge { bytes, limit, .. }) => {
            assert_eq!((bytes, limit), (4_000_000, 1 << 20));
        }
        other => panic!("{other:?}"),
    }
    // The pickle is held to 1/128 of the limit (its parse takes up to ~100 bytes a byte).
    let tiny = Limits {
        checkpoint_bytes: 128 * 100,
        ..Limits::DEFAULT
    };
    let long_pickle = state_pickle(&[Tensor::float(
        Box::leak("k".repeat(200).into_boxed_str()),
        "0",
        vec![4],
    )]);
    let (_, text) = pth_error(tiny.scoped(|| load(&with_pickle("long.pth", &long_pickle))));
    assert!(text.contains("more than the 100 read"), "{text}");
    // Under the default limit the same view is valid.
    assert_eq!(load(&path).unwrap().numel(), 1_000_000);
}

#[test]
fn broken_archives_are_refused() {
    let lenet = std::fs::read(fixture("lenet5.pth")).unwrap();
    let (err, text) = pth_error(load(&scratch("half.pth", &lenet[..lenet.len() / 2])));
    assert!(matches!(err, PthError::Archive(_)), "{err:?}");
    assert!(
        text.contains("no end-of-central-directory record"),
        "{text}"
    );
    // Cut inside the central directory: its end record points past what is left.
    let cut = [&lenet[..lenet.len() - 200], &lenet[lenet.len() - 22..]].concat();
    let (_, text) = pth_error(load(&scratch("cut.pth", &cut)));
    assert!(text.contains("zip archive: "), "{text}");
    // One flipped bit in a storage: its CRC-32 fails.
    let pickle = state_pickle(&[Tensor::float("w", "0", vec![4])]);
    let mut good = archive(&pickle, &[("0", f32_bytes(&[1.0, 2.0, 3.0, 4.0]))]);
    let data_at = good
        .windows(4)
        .position(|w| w == 1.0f32.to_le_bytes())
        .unwrap();
    good[data_at] ^= 1;
    let (_, text) = pth_error(load(&scratch("crc.pth", &good)));
    assert!(
        text.contains("`archive/data/0` fails its CRC-32 check"),
        "{text}"
    );
    // A zip file that torch.save did not write, and a TorchScript archive.
    let other = zip(&[("notes.txt", b"hello")]);
    let (_, text) = pth_error(load(&scratch("other.zip", &other)));
    assert!(text.contains("no data.pkl"), "{text}");
    let script = zip(&[("m/constants.pkl", b"\x80\x02)."), ("m/code/m.py", b"")]);
    assert_eq!(
        pth_error(load(&scratch("script.pt", &script))).0,
        PthError::TorchScript
    );
    // A legacy (PyTorch < 1.6) file.
    let legacy = [
        0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e,
    ];
    assert_eq!(
        pth_error(load(&scratch("legacy.pt", &legacy))).0,
        PthError::Legacy
    );
}

#[test]
fn the_format_is_told_by_the_first_bytes_not_the_name() {
    let renamed = scratch(
        "views.safetensors",
        &std::fs::read(fixture("views.pth")).unwrap(),
    );
    assert_eq!(
        load(&renamed).unwrap(),
        load(&fixture("views.pth")).unwrap()
    );
    let twin = scratch(
        "lenet5-twin.pth",
        &std::fs::read(fixture("lenet5.safetensors")).unwrap(),
    );
    assert_eq!(load(&twin).unwrap().len(), 10);
}

#[test]
fn a_file_that_is_not_a_zip_is_read_as_safetensors_and_refused() {
    let path = scratch("noise.pth", b"this is not a checkpoint at all");
    let err = load(&path).unwrap_err();
    assert!(matches!(err, CheckpointError::Format { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.starts_with(&path.display().to_string()), "{text}");
}

#[test]
fn non_state_dicts_are_refused_and_checkpoint_dicts_unwrapped() {
    // {"epoch": 3}: a dict without tensors.
    let epoch = b"\x80\x02}q\x00X\x05\x00\x00\x00epochq\x01K\x03s.";
    let (err, text) = pth_error(load(&with_pickle("epoch.pth", epoch)));
    assert!(matches!(err, PthError::NotStateDict(_)), "{err:?}");
    assert!(text.contains("`epoch` is an int"), "{text}");
    // A list at the top.
    let (_, text) = pth_error(load(&with_pickle("list.pth", b"\x80\x02]q\x00.")));
    assert!(text.contains("holds a list, not a dict"), "{text}");
    // {"epoch": 3, "state_dict": {"w": tensor}}.
    let mut nested = b"\x80\x02}(X\x05\x00\x00\x00epochK\x03X\x0a\x00\x00\x00state_dict}(".to_vec();
    pth_common::tensor_items(&mut nested, &Tensor::float("w", "0", vec![4]));
    nested.extend_from_slice(b"uu.");
    let state = load(&with_pickle("nested.pth", &nested)).unwrap();
    assert_eq!(state.keys().collect::<Vec<_>>(), ["w"]);
}

#[test]
fn big_endian_archives_and_repeated_keys_follow_pytorch() {
    let pickle = state_pickle(&[
        Tensor::float("a", "0", vec![2]),
        Tensor::float("b", "0", vec![2]),
        Tensor {
            numel: 2,
            ..Tensor::float("a", "0", vec![1])
        },
    ]);
    let be: Vec<u8> = [1.5f32, -2.0]
        .iter()
        .flat_map(|v| v.to_be_bytes())
        .collect();
    let bytes = zip(&[
        ("x/data.pkl", &pickle),
        ("x/byteorder", b"big"),
        ("x/data/0", &be),
    ]);
    let state = load(&scratch("be.pth", &bytes)).unwrap();
    // A repeated key keeps its first place and its last value, as a Python dict does.
    assert_eq!(state.keys().collect::<Vec<_>>(), ["a", "b"]);
    assert_eq!(state.get("a").unwrap().as_f32(), Some(&[1.5][..]));
    assert_eq!(state.get("b").unwrap().as_f32(), Some(&[1.5, -2.0][..]));
}

#[test]
fn errors_name_the_file() {
    let path = with_pickle("named.pth", b"\x80\x02cos\nsystem\n.");
    let text = load(&path).unwrap_err().to_string();
    assert!(
        text.starts_with(&format!(
            "{}: not a loadable PyTorch checkpoint: ",
            path.display()
        )),
        "{text}"
    );
}
