//! Panics that code under test catches itself (the trainer contains panics in user code and
//! turns them into errors) are still panics in burn or in our decoding: the fuzz oracle counts
//! every panic, caught or not.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Once;

static PANICS: AtomicUsize = AtomicUsize::new(0);

/// Counts every panic of the process from now on (then reports it as the default hook does).
pub fn install() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.fetch_add(1, Ordering::SeqCst);
            default(info);
        }));
    });
}

/// Runs `f` and panics if any panic happened meanwhile, even one that was caught.
pub fn expect_none(f: impl FnOnce()) {
    let before = PANICS.load(Ordering::SeqCst);
    f();
    let after = PANICS.load(Ordering::SeqCst);
    assert_eq!(
        after,
        before,
        "{} panic(s) happened and were caught (see the messages above)",
        after - before
    );
}
