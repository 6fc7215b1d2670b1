//! The settings a resumed run must share with its checkpoint: those that fix which batch comes
//! next. Both programs of the engine (the supervised trainer and the job runtime) check them.

use crate::config::TrainerConfig;

/// The first setting that fixes the data order and differs between a checkpoint's config and
/// the run's, as `(field, checkpoint's value, run's value)`. Epochs, `max_steps` and the
/// learning rate may change: a finished run can be extended.
pub fn data_order_change(
    saved: &TrainerConfig,
    ours: &TrainerConfig,
) -> Option<(&'static str, String, String)> {
    let differ = |field: &'static str, theirs: String, mine: String| {
        (theirs != mine).then_some((field, theirs, mine))
    };
    differ("seed", saved.seed.to_string(), ours.seed.to_string())
        .or_else(|| {
            differ(
                "batch_size",
                saved.batch_size.to_string(),
                ours.batch_size.to_string(),
            )
        })
        .or_else(|| {
            differ(
                "drop_last",
                saved.drop_last.to_string(),
                ours.drop_last.to_string(),
            )
        })
        .or_else(|| {
            differ(
                "gradient_accumulation",
                saved.gradient_accumulation.to_string(),
                ours.gradient_accumulation.to_string(),
            )
        })
        .or_else(|| {
            // A cursor counts rounds of `replicas` batches.
            differ(
                "replicas",
                saved.replicas.to_string(),
                ours.replicas.to_string(),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_settings_of_the_data_order_count() {
        let base = TrainerConfig::new(0.1).with_seed(3).with_batch_size(8);
        assert_eq!(
            data_order_change(
                &base,
                &base.clone().with_epochs(Some(99)).with_max_steps(Some(5))
            ),
            None
        );
        assert_eq!(
            data_order_change(
                &base,
                &TrainerConfig {
                    learning_rate: 0.5,
                    ..base.clone()
                }
            ),
            None
        );
        assert_eq!(
            data_order_change(&base, &base.clone().with_seed(4)),
            Some(("seed", "3".into(), "4".into()))
        );
        assert_eq!(
            data_order_change(&base, &base.clone().with_batch_size(16)),
            Some(("batch_size", "8".into(), "16".into()))
        );
        let accumulated = base.clone().with_gradient_accumulation(2);
        assert_eq!(
            data_order_change(&base, &accumulated).map(|c| c.0),
            Some("gradient_accumulation")
        );
        assert_eq!(
            data_order_change(&base, &base.clone().with_replicas(2)),
            Some(("replicas", "1".into(), "2".into()))
        );
    }
}
