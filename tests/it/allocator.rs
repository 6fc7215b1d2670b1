//! trainer's programs run on jemalloc with transparent huge pages (`program_allocator!`): the
//! example, asked by jemalloc's own environment variable to print its statistics at exit, reports
//! the options it ran with.
#![cfg(all(feature = "jemalloc", not(target_env = "msvc")))]

use std::process::Command;

#[test]
fn the_example_runs_on_jemalloc_with_huge_pages() {
    let run_dir = std::env::temp_dir().join(format!("trainer-allocator-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&run_dir);
    let output = Command::new(crate::kill_resume::example_binary())
        .args(["--epochs", "1", "--device", "ndarray", "--run-dir"])
        .arg(&run_dir)
        .env("_RJEM_MALLOC_CONF", "stats_print:true")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("opt.thp: \"always\""),
        "jemalloc's statistics do not show `thp:always`:\n{}",
        stderr
            .lines()
            .filter(|l| l.contains("opt."))
            .collect::<Vec<_>>()
            .join("\n")
    );
    std::fs::remove_dir_all(&run_dir).unwrap();
}
