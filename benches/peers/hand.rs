//! What a burn user writes by hand: shuffle per epoch, batch, forward, backward, Adam step, the
//! loss and the correct predictions kept on the device and read once per epoch, and a
//! validation pass (no autodiff) after each epoch when the workload has one.

use burn::data::dataloader::batcher::Batcher;
use burn::module::AutodiffModule;
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::ElementConversion;
use trainer_core::data::epoch_order;

use super::data::{Data, ItemBatcher, Workload, LR, SEED};
use crate::support::mlp::MlpConfig;

/// Runs the workload; returns the optimizer steps taken and the last epoch's mean loss.
pub fn run<B: AutodiffBackend>(w: Workload, data: &Data, device: &B::Device) -> (usize, f32) {
    let mut model = MlpConfig::new(w.inputs, w.hidden.to_vec(), 10).init::<B>(SEED, device);
    let mut optimizer = AdamConfig::new().init();
    let items = &data.train;
    let mut steps = 0;
    let mut last_loss = f32::NAN;
    for epoch in 0..w.epochs {
        let order = epoch_order(items.len(), Some(SEED), epoch);
        let mut loss_sum = None;
        let mut correct = None;
        for chunk in order.chunks(w.batch) {
            let batch_items = chunk.iter().map(|&i| items[i].clone()).collect();
            let batch = Batcher::<B, _, _>::batch(&ItemBatcher, batch_items, device);
            let output = model.classify(batch);
            let grads = GradientsParams::from_grads(output.loss.backward(), &model);
            let classification = output
                .classification_items()
                .cloned()
                .expect("a classifier");
            let loss = output.loss.inner().mul_scalar(chunk.len() as f64);
            loss_sum = Some(match loss_sum {
                Some(sum) => loss + sum,
                None => loss,
            });
            let hits = classification
                .logits
                .inner()
                .argmax(1)
                .reshape([-1])
                .equal(classification.targets.inner())
                .int()
                .sum();
            correct = Some(match correct {
                Some(sum) => hits + sum,
                None => hits,
            });
            model = optimizer.step(LR, model, grads);
            steps += 1;
        }
        let _ = correct.expect("batches ran").into_scalar();
        last_loss = loss_sum.expect("batches ran").into_scalar().elem::<f32>() / items.len() as f32;
        if w.validate {
            let valid_model = model.valid();
            let inner = device.clone();
            let mut valid_sum = None;
            for chunk in data.valid.chunks(w.batch) {
                let batch =
                    Batcher::<B::InnerBackend, _, _>::batch(&ItemBatcher, chunk.to_vec(), &inner);
                let loss = valid_model
                    .classify(batch)
                    .loss
                    .mul_scalar(chunk.len() as f64);
                valid_sum = Some(match valid_sum {
                    Some(sum) => loss + sum,
                    None => loss,
                });
            }
            let _ = valid_sum.expect("validation batches").into_scalar();
        }
    }
    (steps, last_loss)
}
