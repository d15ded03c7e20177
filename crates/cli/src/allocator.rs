//! The process's allocator: mimalloc, and the one option Ventral sets on it.

/// mimalloc keeps freed pages for reuse. A training step allocates and frees the same large
/// activation buffers every time; the system allocator hands each one back to the kernel and
/// faults it in zeroed again (page faults were ~15 % of a LeNet-5 step). Measured on 12,800
/// MNIST images, 1 thread: 5,900 img/s against 3,900 with the system allocator, for 128 MB
/// peak memory against 69 MB.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc.h's `mi_option_e` (the same in its v2 and v3).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// How long freed memory stays committed before mimalloc returns it to the OS, unless
/// `MIMALLOC_PURGE_DELAY` says otherwise. mimalloc purges every free range once the first
/// one pending is this old (1 s by default), so a run refaulted all its activation buffers
/// every second: each 2 MiB huge page cleared again by the kernel. Measured on the AMD EPYC
/// (2 threads): ResNet-50 batch-1 inference made ~110 page faults per image, none at 10 s;
/// ResNet-20 training 700-815 -> 838-863 img/s, and inference 2.9-3.0k -> 3.4-3.6k img/s.
const PURGE_DELAY_MS: std::ffi::c_long = 10_000;

/// Applies [`PURGE_DELAY_MS`]; call it first thing in `main`, before any other thread starts.
#[allow(unsafe_code)]
pub fn tune() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: mi_option_set only stores the value in mimalloc's option table; it runs
        // before any other thread exists, so nothing reads the option concurrently.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) };
    }
}

#[cfg(test)]
mod tests {
    use super::MI_OPTION_PURGE_DELAY;

    /// Option 15 is the purge delay: a child run of this test with `MIMALLOC_PURGE_DELAY`
    /// set (which mimalloc reads at start-up) must find that value there.
    #[test]
    #[allow(unsafe_code)]
    fn option_15_is_the_purge_delay() {
        const CHILD: &str = "VENTRAL_PURGE_DELAY_CHILD";
        if let Some(want) = std::env::var_os(CHILD) {
            // SAFETY: mi_option_get only reads mimalloc's option table.
            let got = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
            assert_eq!(Some(got.to_string().as_str()), want.to_str());
            return;
        }
        let exe = std::env::current_exe().unwrap();
        let out = std::process::Command::new(exe)
            .args(["--exact", "allocator::tests::option_15_is_the_purge_delay"])
            .env("MIMALLOC_PURGE_DELAY", "4321")
            .env(CHILD, "4321")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains("1 passed"),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
