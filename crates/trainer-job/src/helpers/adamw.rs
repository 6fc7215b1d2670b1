//! PyTorch's AdamW and the usual fine-tuning schedule, in one call.

use burn::optim::AdamWConfig;
use trainer_core::schedule::{LrSchedule, ScheduleConfig};

use crate::error::HookResult;

/// An AdamW config with PyTorch's defaults and a linear-warmup → cosine schedule: what
/// [`default_adamw_bundle`] makes.
pub struct AdamWBundle {
    /// `torch.optim.AdamW(lr, betas=(0.9, 0.999), eps=1e-8, weight_decay)`; build it with
    /// `bundle.optimizer.init()`. burn's own defaults differ (`eps` 1e-5, weight decay 1e-4).
    pub optimizer: AdamWConfig,
    /// The schedule, ready to step once per optimizer step.
    pub schedule: Box<dyn LrSchedule>,
    /// The same schedule as a config (for `hyperparams.lr_schedule`, or to show it).
    pub schedule_config: ScheduleConfig,
    /// The peak learning rate (the schedule's base).
    pub learning_rate: f64,
}

/// AdamW with PyTorch's defaults and weight decay `weight_decay`, and a schedule that warms
/// the lr up linearly over `warmup_steps` optimizer steps (the first step uses
/// `learning_rate / warmup_steps`), then follows a cosine from `learning_rate` to 0 over the
/// remaining `max_steps − warmup_steps` steps (`CosineAnnealingLR`, `T_max` = that count).
/// `warmup_steps` 0: the cosine alone. Bad values are errors naming them.
///
/// ```
/// let bundle = trainer_job::helpers::default_adamw_bundle(1e-3, 0.01, 10, 100).unwrap();
/// assert_eq!(bundle.schedule.lr(), 1e-4); // the first step's lr
/// let optimizer = serde_json::to_value(&bundle.optimizer).unwrap();
/// assert_eq!(optimizer["epsilon"].as_f64().unwrap() as f32, 1e-8);
/// ```
pub fn default_adamw_bundle(
    learning_rate: f64,
    weight_decay: f64,
    warmup_steps: u64,
    max_steps: u64,
) -> HookResult<AdamWBundle> {
    if !(learning_rate.is_finite() && learning_rate > 0.0) {
        return Err(format!("learning_rate {learning_rate}: give a finite number > 0").into());
    }
    if !(weight_decay.is_finite() && weight_decay >= 0.0) {
        return Err(format!("weight_decay {weight_decay}: give a finite number >= 0").into());
    }
    if warmup_steps >= max_steps {
        return Err(format!(
            "warmup_steps {warmup_steps} must be fewer than max_steps {max_steps}"
        )
        .into());
    }
    let cosine = serde_json::json!({
        "scheduler": "CosineAnnealingLR",
        "params": {"T_max": max_steps - warmup_steps},
    });
    let json = if warmup_steps == 0 {
        cosine
    } else {
        serde_json::json!({
            "scheduler": "Warmup",
            "params": {"warmup_steps": warmup_steps, "mode": "linear", "then": cosine},
        })
    };
    let schedule_config: ScheduleConfig =
        serde_json::from_value(json).map_err(|e| format!("the schedule: {e}"))?;
    let schedule = schedule_config
        .build(learning_rate)
        .map_err(|e| e.to_string())?;
    let optimizer = AdamWConfig::new()
        .with_beta_1(0.9)
        .with_beta_2(0.999)
        .with_epsilon(1e-8)
        .with_weight_decay(weight_decay as f32);
    Ok(AdamWBundle {
        optimizer,
        schedule,
        schedule_config,
        learning_rate,
    })
}
