use burn::tensor::{Int, Tensor, TensorData};
use trainer_core::metric::MetricAccumulator;
use trainer_core::StepOutput;

type B = burn_ndarray::NdArray<f32>;

fn output(loss: f32, logits: Vec<f32>, targets: Vec<i64>) -> StepOutput<B> {
    let device = Default::default();
    let n = targets.len();
    let classes = logits.len() / n;
    StepOutput::classification(
        Tensor::from_data(TensorData::new(vec![loss], [1]), &device),
        Tensor::from_data(TensorData::new(logits, [n, classes]), &device),
        Tensor::<B, 1, Int>::from_data(TensorData::new(targets, [n]), &device),
    )
}

#[test]
fn loss_is_weighted_by_batch_size_and_accuracy_counts_hits() {
    let mut acc = MetricAccumulator::<B>::new();
    // Batch 1: 3 items, mean loss 1.0, predictions [1, 0, 2] vs targets [1, 1, 2]: 2 hits.
    acc.update(&output(1.0, vec![0.1, 0.9, 0.0, 0.8, 0.1, 0.1, 0.0, 0.2, 0.7], vec![1, 1, 2]));
    // Batch 2: 1 item, mean loss 3.0, prediction 0 vs target 0: 1 hit.
    acc.update(&output(3.0, vec![0.5, 0.2, 0.3], vec![0]));
    let values = acc.read();
    // (1.0 * 3 + 3.0 * 1) / 4 = 1.5; accuracy 3 / 4.
    assert_eq!(values["loss"], 1.5);
    assert_eq!(values["accuracy"], 0.75);
    assert_eq!(acc.items(), 4);
    assert_eq!(acc.batches(), 2);
    acc.reset();
    assert!(acc.is_empty());
    assert!(acc.read().is_empty());
}

#[test]
fn loss_only_outputs_report_no_accuracy() {
    let device = Default::default();
    let mut acc = MetricAccumulator::<B>::new();
    acc.update(&StepOutput::loss(Tensor::<B, 1>::from_data(TensorData::new(vec![0.25f32], [1]), &device), 8));
    let values = acc.read();
    assert_eq!(values["loss"], 0.25);
    assert!(!values.contains_key("accuracy"));
}
