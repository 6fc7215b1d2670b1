//! `events.jsonl` files for `trainer plot`: valid events with extreme values and steps, metric
//! names of any length, lines that are not events. Plotting draws or says why not, in time.

use crate::curves::{read_events, run_panels, XAxis};
use crate::plot::panels_svg;
use proptest::prelude::*;

fn line() -> impl Strategy<Value = String> {
    let value = prop_oneof![
        Just("1.7e308".to_string()),
        Just("-1.7e308".to_string()),
        Just("5e-324".to_string()),
        Just("null".to_string()),
        Just("1e150".to_string()),
        Just("0".to_string()),
        any::<f64>()
            .prop_filter("finite", |v| v.is_finite())
            .prop_map(|v| format!("{v:e}")),
    ];
    let step = prop_oneof![Just(0u64), Just(u64::MAX), Just(1 << 53), 0u64..1000];
    let kind = prop_oneof![
        Just("metrics"),
        Just("validation"),
        Just("epoch"),
        Just("checkpoint"),
        Just("run_ended"),
        Just("bogus")
    ];
    let split = prop_oneof![Just("train"), Just("valid"), Just("test"), Just("other")];
    let name = prop_oneof![
        Just("loss".to_string()),
        Just("accuracy".to_string()),
        Just("lr".to_string()),
        "[a-z_]{1,300}"
    ];
    prop_oneof![
        8 => (kind, step.clone(), step, split, name, value).prop_map(|(kind, step, epoch, split, name, value)| {
            format!(r#"{{"event":"{kind}","time_unix_ms":0,"step":{step},"epoch":{epoch},"split":"{split}","metrics":{{"{name}":{value}}}}}"#)
        }),
        1 => "[ -~]{0,200}",
        1 => Just(String::new()),
    ]
}

#[test]
fn plotting_any_events_file_draws_or_fails_cleanly() {
    let dir = std::env::temp_dir().join(format!("trainer-fuzz-events-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    crate::panics::install();
    crate::runner()
        .run(&proptest::collection::vec(line(), 1..40), |lines| {
            let path = dir.join("events.jsonl");
            std::fs::write(&path, lines.join("\n")).unwrap();
            crate::guarded("plot", 256 << 20, move || {
                crate::panics::expect_none(|| {
                    let Ok((file, events)) = read_events(&path) else {
                        return;
                    };
                    for x in [XAxis::Step, XAxis::Epoch] {
                        if let Ok(panels) = run_panels(&file, &events, &[], x) {
                            let _ = panels_svg("x", &panels);
                        }
                    }
                })
            })
            .map_err(|e| TestCaseError::fail(format!("{e}\nlines: {lines:?}")))
        })
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
