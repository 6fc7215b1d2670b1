//! The names of the files in a checkpoint folder. A name read back from `index.json` or
//! `latest` is trusted only if it is one of the forms written here: a plain file name, never a
//! path, so that nothing outside the folder is ever read or deleted through them.

/// The file of a checkpoint taken after `epoch` epochs and `step` optimizer steps:
/// `epoch-EEEE-step-SSSSSS.ckpt`.
pub fn step_file_name(epoch: usize, step: usize) -> String {
    format!("epoch-{epoch:04}-step-{step:06}.ckpt")
}

/// The file of the best checkpoint of a monitored metric named `metric` (`valid/loss` becomes
/// `best-valid-loss.ckpt`).
pub fn best_file_name(metric: &str) -> String {
    let name: String = metric
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("best-{name}.ckpt")
}

/// Whether `name` is a step checkpoint's file name (`epoch-EEEE-step-SSSSSS.ckpt`).
pub fn is_step_file_name(name: &str) -> bool {
    let Some(rest) = name
        .strip_prefix("epoch-")
        .and_then(|r| r.strip_suffix(".ckpt"))
    else {
        return false;
    };
    let Some((epoch, step)) = rest.split_once("-step-") else {
        return false;
    };
    let digits = |s: &str, min: usize| {
        s.len() >= min && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit())
    };
    digits(epoch, 4) && digits(step, 6)
}

/// Whether `name` is a best checkpoint's file name (`best-<metric>.ckpt`, the metric in ASCII
/// letters, digits, `_` and `-`).
pub fn is_best_file_name(name: &str) -> bool {
    name.strip_prefix("best-")
        .and_then(|r| r.strip_suffix(".ckpt"))
        .is_some_and(|metric| {
            !metric.is_empty()
                && metric.len() <= 200
                && metric
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        })
}

/// Whether `name` is the name of a checkpoint file the checkpointing callback writes.
pub fn is_checkpoint_file_name(name: &str) -> bool {
    is_step_file_name(name) || is_best_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_names_are_recognised_and_paths_are_not() {
        assert!(is_checkpoint_file_name(&step_file_name(3, 450)));
        assert!(is_checkpoint_file_name(&step_file_name(12345, 12345678)));
        assert!(is_checkpoint_file_name(&best_file_name("valid/loss")));
        for bad in [
            "",
            "latest",
            "index.json",
            "../epoch-0001-step-000001.ckpt",
            "/etc/passwd",
            "epoch-0001-step-000001.ckpt/..",
            "sub/epoch-0001-step-000001.ckpt",
            "best-.ckpt",
            "best-../x.ckpt",
            "epoch-1-step-1.ckpt",
            "epoch-0001-step-00000a.ckpt",
            ".checkpoint-x.tmp",
            "best-a b.ckpt",
            "epoch-0001-step-000001.ckpt\0",
        ] {
            assert!(!is_checkpoint_file_name(bad), "{bad:?} accepted");
        }
    }
}
