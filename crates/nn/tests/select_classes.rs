//! `InMemoryDataset::select_classes`: the samples of some labels, relabelled in the given
//! order, for both storages; bad selections are errors by name.

use ventral_nn::data::{Dataset, InMemoryDataset};

/// Six 1x1x2 byte samples, sample `i` holding bytes `[i, 100 + i]`, labels 0..3 twice.
fn bytes() -> InMemoryDataset {
    let values: Vec<u8> = (0..6).flat_map(|i| [i, 100 + i]).collect();
    let names = ["a", "b", "c"].map(String::from).to_vec();
    InMemoryDataset::from_u8(
        [2, 1, 1],
        values,
        1.0,
        vec![0, 1, 2, 0, 1, 2],
        3,
        Some(names),
    )
    .unwrap()
}

#[test]
fn selected_samples_keep_their_values_and_take_the_new_labels() {
    let picked = bytes().select_classes(&[2, 0]).unwrap();
    // Samples 0, 2, 3, 5 in dataset order; class 2 → 0, class 0 → 1.
    assert_eq!(picked.labels(), [1, 0, 1, 0]);
    assert_eq!(picked.num_classes(), 2);
    assert_eq!(picked.class_names().unwrap(), ["c", "a"]);
    let firsts: Vec<f32> = (0..4).map(|i| picked.sample(i)[0]).collect();
    assert_eq!(firsts, [0.0, 2.0, 3.0, 5.0]);
    assert_eq!(picked.sample(3)[1], 105.0);
    assert!(picked.as_u8().is_some(), "bytes stay bytes");

    let floats = InMemoryDataset::new([1, 1, 1], vec![7.0, 8.0, 9.0], vec![1, 0, 1], 2, None)
        .unwrap()
        .select_classes(&[1])
        .unwrap();
    assert_eq!(floats.labels(), [0, 0]);
    assert_eq!(floats.to_f32(), [7.0, 9.0]);
}

#[test]
fn bad_selections_are_refused() {
    let err = |classes: &[usize]| bytes().select_classes(classes).unwrap_err().to_string();
    assert!(err(&[]).ends_with("no classes selected"), "{}", err(&[]));
    assert!(
        err(&[0, 3]).ends_with("class 3 is outside the dataset's 0..3"),
        "{}",
        err(&[0, 3])
    );
    assert!(
        err(&[1, 1]).ends_with("class 1 is selected twice"),
        "{}",
        err(&[1, 1])
    );
}
