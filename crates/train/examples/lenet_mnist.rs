//! LeNet-5 on the shipped MNIST through the library's `Trainer`, with a custom callback:
//! `cargo run --release -p ventral-train --example lenet_mnist` (≥ 98.5 % in 2 epochs).
use ventral_nn::data::{self, DataLoader, Split};
use ventral_nn::optim::{Sgd, SgdConfig};
use ventral_train::{Callback, EpochEnd, FitOptions, ScheduleKind, Trainer};

/// Prints one line per epoch.
struct Report;
impl Callback for Report {
    fn on_epoch_end(&mut self, e: &EpochEnd) {
        println!(
            "epoch {}: test accuracy {:.2} %, {:.0} img/s",
            e.epoch + 1,
            100.0 * e.test.accuracy,
            e.images_per_sec
        );
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/mnist");
    let (train, test) = (
        data::load("mnist", &dir, Split::Train)?,
        data::load("mnist", &dir, Split::Test)?,
    );
    let (mean, std) = train.channel_mean_std();
    let sgd = Sgd::new(SgdConfig {
        momentum: 0.9,
        weight_decay: 5e-4,
        ..SgdConfig::new(0.05)
    })?;
    let model = ventral_models::build("lenet5", 10, 0)?;
    let mut trainer = Trainer::new(model, Box::new(sgd), 10).with_schedule(ScheduleKind::Cosine);
    let train = DataLoader::new(train, 64)?
        .shuffle()
        .normalize(mean.clone(), std.clone())?;
    let test = DataLoader::new(test, 100)?.normalize(mean, std)?;
    let end = trainer.fit(
        &train,
        &test,
        &FitOptions {
            epochs: 2,
            ..Default::default()
        },
        &mut [&mut Report],
    )?;
    println!(
        "best test accuracy {:.2} % in {:.1} s",
        100.0 * end.best_accuracy,
        end.seconds
    );
    Ok(())
}
