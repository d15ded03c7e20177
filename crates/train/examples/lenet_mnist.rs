//! LeNet-5 on the shipped MNIST through the library's `Trainer`, with a custom callback:
//! `cargo run --release -p ventral-train --example lenet_mnist` (≥ 98.5 % in 2 epochs).
use ventral_nn::data::{DataLoader, Split, load};
use ventral_nn::optim::{Sgd, SgdConfig};
use ventral_train::{Callback, EpochEnd, FitOptions, ScheduleKind, Trainer};

/// Prints each epoch's test accuracy.
struct Report;
impl Callback for Report {
    fn on_epoch_end(&mut self, e: &EpochEnd) {
        println!(
            "epoch {}: test accuracy {:.2} %",
            e.epoch + 1,
            100.0 * e.test.accuracy
        );
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/mnist");
    let (train, test) = (
        load("mnist", &dir, Split::Train)?,
        load("mnist", &dir, Split::Test)?,
    );
    let (mean, std) = train.channel_mean_std();
    let train = DataLoader::new(train, 64)?
        .shuffle()
        .normalize(mean.clone(), std.clone())?;
    let test = DataLoader::new(test, 100)?.normalize(mean, std)?;
    let sgd = Sgd::new(SgdConfig {
        momentum: 0.9,
        weight_decay: 5e-4,
        ..SgdConfig::new(0.05)
    })?;
    let model = ventral_models::build("lenet5", 10, 0)?;
    let mut trainer = Trainer::new(model, Box::new(sgd), 10).with_schedule(ScheduleKind::Cosine);
    let end = trainer.fit(
        &train,
        &test,
        &FitOptions::for_epochs(2),
        &mut [&mut Report],
    )?;
    println!(
        "best {:.2} % in {:.1} s",
        100.0 * end.best_accuracy,
        end.seconds
    );
    Ok(())
}
