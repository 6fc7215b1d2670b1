use std::sync::Arc;

use burn::tensor::{Int, Tensor, TensorData};
use trainer_core::metric::{
    Accuracy, ConfusionCounts, ConfusionMatrix, Metric, MetricAccumulator, Metrics, TopKAccuracy,
};
use trainer_core::StepOutput;

type B = burn_ndarray::NdArray<f32>;

/// An accumulator of the trainer's own metrics: accuracy, the confusion counts, and the top-k
/// accuracy when `k` is given.
fn accumulator(top_k: Option<usize>) -> MetricAccumulator<B> {
    let mut metrics: Vec<Arc<dyn Metric<B>>> = vec![Arc::new(Accuracy), Arc::new(ConfusionCounts)];
    metrics.extend(top_k.map(|k| Arc::new(TopKAccuracy { k }) as Arc<dyn Metric<B>>));
    MetricAccumulator::new().with_metrics(Metrics::<B>::from(metrics))
}

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
    let mut acc = accumulator(None);
    // Batch 1: 3 items, mean loss 1.0, predictions [1, 0, 2] vs targets [1, 1, 2]: 2 hits.
    acc.update(&output(
        1.0,
        vec![0.1, 0.9, 0.0, 0.8, 0.1, 0.1, 0.0, 0.2, 0.7],
        vec![1, 1, 2],
    ));
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
    let mut acc = accumulator(Some(2));
    acc.update(&StepOutput::loss(
        Tensor::<B, 1>::from_data(TensorData::new(vec![0.25f32], [1]), &device),
        8,
    ));
    let values = acc.read();
    assert_eq!(values["loss"], 0.25);
    assert_eq!(
        values.keys().collect::<Vec<_>>(),
        ["loss"],
        "no accuracy, top-k or macro scores"
    );
}

/// Logits that predict `classes[i]` for item i, out of `n` classes.
fn predicting(predicted: &[usize], n: usize) -> Vec<f32> {
    predicted
        .iter()
        .flat_map(|&p| (0..n).map(move |c| if c == p { 2.0 } else { 0.5 }))
        .collect()
}

#[test]
fn the_confusion_matrix_and_macro_scores_match_hand_computed_values() {
    let mut acc = accumulator(None);
    // Targets 0 0 1 | 1 2 2, predictions 0 1 1 | 1 0 0, over 4 classes: class 2 is never
    // predicted, class 3 never occurs at all.
    acc.update(&output(0.5, predicting(&[0, 1, 1], 4), vec![0, 0, 1]));
    acc.update(&output(0.5, predicting(&[1, 0, 0], 4), vec![1, 2, 2]));
    let totals = acc.read_totals();
    let confusion = ConfusionMatrix::from_sums(&totals.metrics["confusion"]).unwrap();
    assert_eq!(
        confusion.counts,
        vec![
            vec![1, 1, 0, 0],
            vec![0, 2, 0, 0],
            vec![2, 0, 0, 0],
            vec![0, 0, 0, 0]
        ]
    );
    // precision 1/3, 2/3, 0 (never predicted); recall 1/2, 1, 0; F1 0.4, 0.8, 0.
    assert!((confusion.precision(0) - 1.0 / 3.0).abs() < 1e-12);
    assert_eq!(confusion.precision(2), 0.0);
    assert_eq!(confusion.recall(1), 1.0);
    assert!((confusion.f1(0) - 0.4).abs() < 1e-12 && (confusion.f1(1) - 0.8).abs() < 1e-12);
    assert_eq!(confusion.f1(2), 0.0);
    // Macro over the three classes that occur (scikit-learn, zero_division=0).
    let macros = confusion.macro_values();
    assert!(
        (macros["precision_macro"] - 1.0 / 3.0).abs() < 1e-12,
        "{macros:?}"
    );
    assert!((macros["recall_macro"] - 0.5).abs() < 1e-12, "{macros:?}");
    assert!((macros["f1_macro"] - 0.4).abs() < 1e-12, "{macros:?}");
    // The accumulator reports them through the metric.
    let values = acc.read();
    assert_eq!(values["accuracy"], 0.5);
    assert_eq!(
        (
            values["precision_macro"],
            values["recall_macro"],
            values["f1_macro"]
        ),
        (
            macros["precision_macro"],
            macros["recall_macro"],
            macros["f1_macro"]
        )
    );
    // Without the metric, there are no counts.
    let mut plain = MetricAccumulator::<B>::new();
    plain.update(&output(0.5, predicting(&[0], 4), vec![0]));
    assert!(plain.read_totals().metrics.is_empty());
}

#[test]
fn top_k_accuracy_counts_targets_among_the_k_largest_logits() {
    let mut acc = accumulator(Some(2));
    // Item 1: logits rank classes 2 > 0 > 1 > 3, target 0: in the top 2, not the top 1.
    // Item 2: ranks 3 > 1 > 0 > 2, target 2: not in the top 2.
    // Item 3: ranks 1 > 2 > ..., target 1: top 1.
    acc.update(&output(
        0.5,
        vec![0.3, 0.2, 0.9, 0.1, 0.2, 0.5, 0.1, 0.8, 0.0, 0.9, 0.6, 0.1],
        vec![0, 2, 1],
    ));
    let values = acc.read();
    assert_eq!(values["accuracy"], 1.0 / 3.0);
    assert_eq!(values["top2_accuracy"], 2.0 / 3.0);
    // k larger than the classes counts every item.
    let mut wide = accumulator(Some(9));
    wide.update(&output(0.5, vec![0.3, 0.2, 0.9, 0.1], vec![3]));
    assert_eq!(wide.read()["top9_accuracy"], 1.0);
    // The count survives a reset of the window (the setting stays) and adds across read-backs.
    acc.reset();
    acc.update(&output(0.5, vec![0.3, 0.2, 0.9, 0.1], vec![3]));
    assert_eq!(acc.read()["top2_accuracy"], 0.0);
}

#[test]
fn totals_of_format_1_1_become_the_metrics_statistics() {
    // Checkpoints of 1.0 and 1.1 kept accuracy and top-k counts in fields of their own.
    let old = serde_json::json!({"loss_sum": 6.0, "items": 4, "correct": 3, "classified": 4, "top_k": 2, "top_k_correct": 4});
    let totals: trainer_core::metric::Totals = serde_json::from_value(old).unwrap();
    assert_eq!(totals.metrics["accuracy"], [3.0, 4.0]);
    assert_eq!(totals.metrics["top2_accuracy"], [4.0, 4.0]);
    let values = accumulator(Some(2)).values(&totals);
    assert_eq!(
        (values["loss"], values["accuracy"], values["top2_accuracy"]),
        (1.5, 0.75, 1.0)
    );
}
