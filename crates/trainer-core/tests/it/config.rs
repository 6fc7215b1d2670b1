use trainer_core::{Frequency, GradientClipping, TrainerConfig, TrainerError};

fn rejects(config: TrainerConfig, field: &str, value: &str) {
    match config.validate() {
        Err(TrainerError::InvalidConfig {
            field: f, value: v, ..
        }) => {
            assert_eq!(f, field);
            assert_eq!(v, value, "field {field}");
        }
        other => panic!("expected {field} to be rejected, got {other:?}"),
    }
}

fn base() -> TrainerConfig {
    TrainerConfig::new(0.01)
}

#[test]
fn the_defaults_are_valid() {
    base().validate().unwrap();
}

#[test]
fn every_bad_field_is_named_with_its_value() {
    rejects(
        base().with_epochs(None).with_max_steps(None),
        "epochs",
        "None",
    );
    rejects(base().with_epochs(Some(0)), "epochs", "Some(0)");
    rejects(base().with_max_steps(Some(0)), "max_steps", "Some(0)");
    rejects(base().with_batch_size(0), "batch_size", "0");
    rejects(base().with_learning_rate(0.0), "learning_rate", "0.0");
    rejects(base().with_learning_rate(-1.0), "learning_rate", "-1.0");
    rejects(base().with_learning_rate(f64::NAN), "learning_rate", "NaN");
    rejects(
        base().with_learning_rate(f64::INFINITY),
        "learning_rate",
        "inf",
    );
    rejects(
        base().with_validation(Some(Frequency::Steps(0))),
        "validation",
        "Steps(0)",
    );
    rejects(
        base().with_validation(Some(Frequency::Epochs(0))),
        "validation",
        "Epochs(0)",
    );
    rejects(
        base().with_checkpoint(Some(Frequency::Steps(0))),
        "checkpoint",
        "Steps(0)",
    );
    rejects(
        base()
            .with_validation(None)
            .with_early_stopping_patience(Some(3)),
        "early_stopping_patience",
        "Some(3)",
    );
    rejects(
        base().with_gradient_accumulation(0),
        "gradient_accumulation",
        "0",
    );
    rejects(
        base().with_gradient_clipping(Some(GradientClipping::Norm(0.0))),
        "gradient_clipping",
        "Some(Norm(0.0))",
    );
    rejects(
        base().with_gradient_clipping(Some(GradientClipping::Value(-1.0))),
        "gradient_clipping",
        "Some(Value(-1.0))",
    );
    rejects(
        base().with_gradient_clipping(Some(GradientClipping::Norm(f64::NAN))),
        "gradient_clipping",
        "Some(Norm(NaN))",
    );
    rejects(base().with_log_every(0), "log_every", "0");
    rejects(base().with_prefetch_batches(0), "prefetch_batches", "0");
    rejects(
        base().with_prefetch_batches(1_000_000_000_000),
        "prefetch_batches",
        "1000000000000",
    );
}

#[test]
fn the_message_says_field_value_and_remedy() {
    let err = base()
        .with_batch_size(0)
        .validate()
        .unwrap_err()
        .to_string();
    assert_eq!(err, "invalid config: `batch_size` = 0: must be at least 1");
}

#[test]
fn max_steps_alone_is_enough() {
    base()
        .with_epochs(None)
        .with_max_steps(Some(10))
        .validate()
        .unwrap();
}

#[test]
fn json_round_trip_and_unknown_fields() {
    let json = r#"{"epochs": 3, "learning_rate": 0.1, "validation": {"steps": 50},
                   "gradient_clipping": {"norm": 1.0}, "checkpoint": {"epochs": 1}}"#;
    let config: TrainerConfig = serde_json::from_str(json).unwrap();
    assert_eq!(config.validation, Some(Frequency::Steps(50)));
    assert_eq!(config.gradient_clipping, Some(GradientClipping::Norm(1.0)));
    assert_eq!(config.batch_size, 32);
    let back: TrainerConfig =
        serde_json::from_str(&serde_json::to_string(&config).unwrap()).unwrap();
    assert_eq!(back, config);

    let err = serde_json::from_str::<TrainerConfig>(r#"{"learning_rate": 0.1, "epoch": 3}"#)
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown field `epoch`"), "{err}");
}
