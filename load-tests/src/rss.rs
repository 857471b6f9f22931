//! Peak resident memory of a child process, read from /proc while it runs.

use std::process::Child;
use std::time::Duration;

/// Polls the child's `VmHWM` (the kernel's own high-water mark) until it exits and
/// returns the last value seen, in bytes. Polling only needs to be frequent enough
/// to catch the last value before exit, since the kernel keeps the maximum.
pub fn watch_peak(child: &mut Child) -> std::io::Result<u64> {
    let path = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    loop {
        if let Some(hwm) = std::fs::read_to_string(&path)
            .ok()
            .and_then(|s| parse_hwm(&s))
        {
            peak = peak.max(hwm);
        }
        if child.try_wait()?.is_some() {
            return Ok(peak);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Peak RSS of this process, in bytes.
pub fn own_peak() -> Option<u64> {
    parse_hwm(&std::fs::read_to_string("/proc/self/status").ok()?)
}

fn parse_hwm(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    #[test]
    fn this_process_has_a_peak_rss() {
        let peak = super::own_peak().expect("VmHWM is readable on Linux");
        assert!(peak > 1024 * 1024, "{peak}");
    }
}
