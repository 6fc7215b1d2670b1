//! The allocator of trainer's programs (the `trainer` command line, the examples, the benches):
//! jemalloc, asked for transparent huge pages.
//!
//! A training step or a checkpoint allocates tensors of megabytes that the system allocator maps
//! fresh from the kernel each time and unmaps on free: the kernel then zeroes and maps every 4 KiB
//! page on first touch, which costs more than the arithmetic on them (a 40 MB copy into fresh
//! memory: 16 ms of page faults for 1.5 ms of copying on the benchmark machine). jemalloc with
//! `thp:always` backs its mappings with 2 MiB pages, 512 times fewer faults, and still returns
//! freed memory to the system. Figures in `docs/benchmarks.md`.
//!
//! A program opts in with [`program_allocator!`](crate::program_allocator) at its root. Libraries
//! never choose the allocator; without the `jemalloc` feature (or on MSVC) the macro expands to
//! nothing and the system allocator stays.

/// jemalloc's options for trainer's programs, as its `malloc_conf` string (NUL-terminated).
pub const MALLOC_CONF: &[u8; 11] = b"thp:always\0";

#[cfg(all(feature = "jemalloc", not(target_env = "msvc")))]
pub use tikv_jemallocator::Jemalloc;

/// Makes jemalloc with [`MALLOC_CONF`] the global allocator of the program that invokes it (at
/// its crate root, once).
#[cfg(all(feature = "jemalloc", not(target_env = "msvc")))]
#[macro_export]
macro_rules! program_allocator {
    () => {
        #[global_allocator]
        static GLOBAL_ALLOCATOR: $crate::allocator::Jemalloc = $crate::allocator::Jemalloc;

        // jemalloc reads its options from this symbol (a C `const char *`) at start-up.
        #[export_name = "_rjem_malloc_conf"]
        static JEMALLOC_OPTIONS: &[u8; 11] = $crate::allocator::MALLOC_CONF;
    };
}

/// Without the `jemalloc` feature: the system allocator stays.
#[cfg(not(all(feature = "jemalloc", not(target_env = "msvc"))))]
#[macro_export]
macro_rules! program_allocator {
    () => {};
}
