//! User metrics through the `Metric` trait: values against hand-computed ones, sums carried
//! across a read-back, names in the available metrics and the CSV header, exact values after a
//! resume in the middle of a logging window, and name clashes refused.

use crate::common;

use std::sync::{Arc, Mutex};

use burn::data::dataset::InMemDataset;
use burn::optim::AdamConfig;
use burn::tensor::{backend::Backend, Tensor, TensorData};
use common::dropout_net::{DropoutNet, StopAt};
use common::{items, RowBatcher, B};
use trainer_core::callback::{Callback, Context, EventLog};
use trainer_core::metric::{Metric, MetricAccumulator, Metrics};
use trainer_core::prelude::*;

type Inner = common::Inner;

/// Mean absolute error of a regression output: statistics [sum |error|, values].
struct MeanAbsoluteError;

impl<B: Backend> Metric<B> for MeanAbsoluteError {
    fn name(&self) -> String {
        "mae".into()
    }

    fn batch_stats(&self, output: &StepOutput<B>) -> Option<Tensor<B, 1>> {
        let regression = output.regression_items()?;
        let errors = regression
            .predictions
            .clone()
            .sub(regression.targets.clone())
            .abs();
        let count = errors.dims().iter().product::<usize>() as f32;
        let device = errors.device();
        Some(Tensor::cat(
            vec![errors.sum(), Tensor::from_floats([count], &device)],
            0,
        ))
    }

    fn value(&self, sums: &[f64]) -> Option<f64> {
        (sums[1] > 0.0).then(|| sums[0] / sums[1])
    }
}

/// Root of the item-weighted mean loss, from the loss alone (works for any output); only
/// computed in validation and test passes when `train` is false.
struct RootMeanLoss {
    train: bool,
}

impl<B: Backend> Metric<B> for RootMeanLoss {
    fn name(&self) -> String {
        "rmse".into()
    }

    fn batch_stats(&self, output: &StepOutput<B>) -> Option<Tensor<B, 1>> {
        let n = output.batch_size as f32;
        let device = output.loss.device();
        Some(Tensor::cat(
            vec![
                output.loss.clone().reshape([1]).mul_scalar(n),
                Tensor::from_floats([n], &device),
            ],
            0,
        ))
    }

    fn value(&self, sums: &[f64]) -> Option<f64> {
        (sums[1] > 0.0).then(|| (sums[0] / sums[1]).sqrt())
    }

    fn on_train(&self) -> bool {
        self.train
    }
}

fn regression(loss: f32, predictions: Vec<f32>, targets: Vec<f32>) -> StepOutput<Inner> {
    let device = Default::default();
    let n = targets.len();
    StepOutput::regression(
        Tensor::from_data(TensorData::new(vec![loss], [1]), &device),
        Tensor::from_data(TensorData::new(predictions, [n, 1]), &device),
        Tensor::from_data(TensorData::new(targets, [n, 1]), &device),
    )
}

fn metrics(list: Vec<Arc<dyn Metric<Inner>>>) -> Metrics<Inner> {
    list.into()
}

#[test]
fn a_user_metric_matches_hand_computed_values_and_carries_over_a_read_back() {
    let mae = || metrics(vec![Arc::new(MeanAbsoluteError)]);
    let batch1 = || regression(1.0, vec![1.0, 2.0, 3.0], vec![1.5, 2.0, 1.0]);
    let batch2 = || regression(1.0, vec![0.0], vec![-0.25]);
    let mut acc = MetricAccumulator::<Inner>::new().with_metrics(mae());
    acc.update(&batch1());
    // |errors| 0.5, 0, 2: mean 2.5 / 3.
    assert_eq!(acc.read()["mae"], 2.5 / 3.0);
    acc.update(&batch2());
    assert_eq!(acc.read()["mae"], 2.75 / 4.0);
    // A loss-only output has nothing for the metric: it is left out, not zero.
    let mut loss_only = MetricAccumulator::<Inner>::new().with_metrics(mae());
    loss_only.update(&StepOutput::loss(
        Tensor::from_floats([0.5], &Default::default()),
        2,
    ));
    assert!(!loss_only.read().contains_key("mae"));

    // Totals read back after batch 1 (as a checkpoint holds them) and continued: same value.
    let mut first = MetricAccumulator::<Inner>::new().with_metrics(mae());
    first.update(&batch1());
    let totals = first.read_totals();
    assert_eq!(totals.metrics["mae"], vec![2.5, 3.0]);
    let bytes = rmp_serde::to_vec_named(&totals).unwrap();
    let mut continued =
        MetricAccumulator::<Inner>::from_totals(rmp_serde::from_slice(&bytes).unwrap())
            .with_metrics(mae());
    continued.update(&batch2());
    assert_eq!(continued.read()["mae"], acc.read()["mae"]);
    // A reset keeps the metric and empties its sums.
    acc.reset();
    acc.update(&batch2());
    assert_eq!(acc.read()["mae"], 0.25);
}

/// A logged reading: split, step, and the bits of `rmse` and `loss`.
type Reading = (Split, usize, u64, u64);

/// Records every logged training and validation value of `rmse`.
#[derive(Clone, Default)]
struct RmseLog(Arc<Mutex<Vec<Reading>>>);

impl Callback for RmseLog {
    fn on_batch_end(&mut self, ctx: &mut Context<'_>) -> trainer_core::Result<()> {
        self.record(ctx, Split::Train);
        Ok(())
    }

    fn on_validation_end(&mut self, ctx: &mut Context<'_>) -> trainer_core::Result<()> {
        self.record(ctx, Split::Valid);
        Ok(())
    }
}

impl RmseLog {
    fn record(&self, ctx: &Context<'_>, split: Split) {
        let step = ctx.state.global_step;
        if ctx.metrics.step_of(split) != Some(step) {
            return;
        }
        let values = ctx.metrics.get(split).unwrap();
        let (Some(rmse), Some(loss)) = (values.get("rmse"), values.get("loss")) else {
            return;
        };
        let mut log = self.0.lock().unwrap();
        if !log.iter().any(|(s, at, _, _)| *s == split && *at == step) {
            log.push((split, step, rmse.to_bits(), loss.to_bits()));
        }
    }
}

fn config() -> TrainerConfig {
    TrainerConfig::new(0.01)
        .with_epochs(Some(2))
        .with_batch_size(8)
        .with_seed(5)
        .with_log_every(13)
        .with_validation(Some(Frequency::Epochs(1)))
}

type Net = SupervisedTrainer<
    B,
    DropoutNet<B>,
    common::dropout_net::AdamOptim,
    common::Batch<B>,
    common::Batch<Inner>,
>;

fn trainer(metric: RootMeanLoss, callbacks: Vec<Box<dyn Callback>>) -> trainer_core::Result<Net> {
    let device = Default::default();
    let mut builder = SupervisedTrainer::builder(
        DropoutNet::<B>::new(16, 0.0, &device),
        AdamConfig::new().init(),
        config(),
        device,
    )
    .train_data(InMemDataset::new(items(100)), RowBatcher)
    .valid_data(InMemDataset::new(items(20)), RowBatcher)
    .metric(metric);
    for callback in callbacks {
        builder = builder.boxed_callback(callback);
    }
    builder.build()
}

#[test]
fn a_user_metric_is_logged_monitored_and_exact_across_a_resume() {
    let dir = std::env::temp_dir().join(format!("trainer-user-metric-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);

    let straight = RmseLog::default();
    let mut run = trainer(
        RootMeanLoss { train: true },
        vec![
            Box::new(straight.clone()),
            Box::new(EventLog::new(dir.join("straight"))),
            // Monitoring the user metric is accepted (a missing one is an error at train begin).
            Box::new(EarlyStopping::new(Monitor::min(Split::Valid, "rmse")).patience(10)),
        ],
    )
    .unwrap();
    run.fit().unwrap();
    let logged = straight.0.lock().unwrap().clone();
    // 13 batches per epoch, logged every 13 steps (the epoch end), plus 2 validations.
    assert!(
        logged.iter().filter(|l| l.0 == Split::Train).count() == 2,
        "{logged:?}"
    );
    assert_eq!(
        logged.iter().filter(|l| l.0 == Split::Valid).count(),
        2,
        "{logged:?}"
    );
    for (split, step, rmse, loss) in &logged {
        // Both come from the same device sums of loss × items, so the root is exact.
        assert_eq!(
            f64::from_bits(*rmse),
            f64::from_bits(*loss).sqrt(),
            "{split:?} at step {step}"
        );
    }
    let header = std::fs::read_to_string(dir.join("straight/metrics.csv")).unwrap();
    let header = header.lines().next().unwrap();
    assert!(header.split(',').any(|c| c == "rmse"), "{header}");
    let epoch_means = &run.state().history[0].train;
    assert!(epoch_means.contains_key("rmse"), "{epoch_means:?}");

    // Interrupted at step 11, in the middle of the window read at the end of the epoch (step 13), and resumed.
    let file = dir.join("stopped.ckpt");
    let mut first = trainer(RootMeanLoss { train: true }, vec![Box::new(StopAt(11))]).unwrap();
    first.fit().unwrap();
    first.save_checkpoint(&file).unwrap();
    let resumed = RmseLog::default();
    let mut second = trainer(
        RootMeanLoss { train: true },
        vec![Box::new(resumed.clone())],
    )
    .unwrap();
    second.load_checkpoint(&file).unwrap();
    second.fit().unwrap();
    let after: Vec<_> = logged.iter().filter(|l| l.1 > 11).cloned().collect();
    assert_eq!(
        *resumed.0.lock().unwrap(),
        after,
        "values logged after the resume differ"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_validation_only_metric_is_absent_from_training_readings() {
    let log = RmseLog::default();
    let mut run = trainer(RootMeanLoss { train: false }, vec![Box::new(log.clone())]).unwrap();
    run.fit().unwrap();
    let logged = log.0.lock().unwrap().clone();
    assert!(
        logged.iter().all(|l| l.0 == Split::Valid) && logged.len() == 2,
        "{logged:?}"
    );
    assert!(!run.state().history[0].train.contains_key("rmse"));
    // Monitoring it on the training split is refused at train begin, naming what exists.
    let mut refused = trainer(
        RootMeanLoss { train: false },
        vec![Box::new(EarlyStopping::new(Monitor::min(
            Split::Train,
            "rmse",
        )))],
    )
    .unwrap();
    let error = refused.fit().unwrap_err().to_string();
    assert!(error.contains("rmse") && error.contains("loss"), "{error}");
}

/// A metric that claims a built-in name.
struct Impostor;

impl<B: Backend> Metric<B> for Impostor {
    fn name(&self) -> String {
        "accuracy".into()
    }
    fn batch_stats(&self, _: &StepOutput<B>) -> Option<Tensor<B, 1>> {
        None
    }
    fn value(&self, _: &[f64]) -> Option<f64> {
        None
    }
}

#[test]
fn a_metric_named_like_a_built_in_one_is_refused() {
    let device = Default::default();
    let error = SupervisedTrainer::builder(
        DropoutNet::<B>::new(4, 0.0, &device),
        AdamConfig::new().init(),
        config(),
        device,
    )
    .train_data(InMemDataset::new(items(10)), RowBatcher)
    .valid_data(InMemDataset::new(items(10)), RowBatcher)
    .metric(Impostor)
    .build()
    .err()
    .expect("a clash must be refused")
    .to_string();
    assert!(
        error.contains("accuracy") && error.contains("built-in"),
        "{error}"
    );
}
