//! Training on some of a dataset's classes: the samples of chosen labels, relabelled
//! `0..n` in the chosen order (a split of MNIST into digits 0–4 and 5–9 for fine-tuning).

use super::dataset::{Dataset, InMemoryDataset};
use super::error::{DataError, Result};

impl InMemoryDataset {
    /// The samples whose label is one of `classes`, in dataset order, with label
    /// `classes[i]` becoming `i` (class names follow). `[5, 6, 7, 8, 9]` makes MNIST's
    /// upper digits a 5-class dataset whose class 0 is the digit 5.
    ///
    /// ```
    /// use ventral_nn::data::{Dataset, InMemoryDataset};
    ///
    /// let data = InMemoryDataset::new([1, 1, 1], vec![0.0, 1.0, 2.0, 3.0], vec![0, 1, 2, 1], 3, None)?;
    /// let upper = data.select_classes(&[2, 1])?;
    /// assert_eq!(upper.labels(), [1, 0, 1]);
    /// assert_eq!(upper.num_classes(), 2);
    /// assert_eq!(upper.sample(0)[0], 1.0);
    /// # Ok::<(), ventral_nn::data::DataError>(())
    /// ```
    ///
    /// # Errors
    /// [`DataError::Invalid`] if `classes` is empty, repeats a class or names one outside
    /// `0..num_classes()`.
    pub fn select_classes(&self, classes: &[usize]) -> Result<Self> {
        let n = self.num_classes();
        if classes.is_empty() {
            return Err(DataError::Invalid("no classes selected".into()));
        }
        let mut new_label = vec![None; n];
        for (i, &c) in classes.iter().enumerate() {
            let slot = new_label.get_mut(c).ok_or_else(|| {
                DataError::Invalid(format!("class {c} is outside the dataset's 0..{n}"))
            })?;
            if slot.is_some() {
                return Err(DataError::Invalid(format!("class {c} is selected twice")));
            }
            *slot = Some(i);
        }
        let (indices, labels): (Vec<usize>, Vec<usize>) = self
            .labels()
            .iter()
            .enumerate()
            .filter_map(|(i, &l)| new_label[l].map(|new| (i, new)))
            .unzip();
        let names = self
            .class_names()
            .map(|names| classes.iter().map(|&c| names[c].clone()).collect());
        Ok(self
            .subset(&indices)?
            .relabelled(labels, classes.len(), names))
    }
}
