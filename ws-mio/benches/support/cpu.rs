//! On-CPU time of groups of this process's threads, told apart by thread name.
//!
//! Every thread in the benchmark process is named: the ws-mio loops `ws-mio-N`, the tokio
//! workers [`crate::support::servers::TOKIO_THREAD_NAME`], the load generator
//! [`crate::support::loadgen::THREAD_NAME`]`-N`. Sampling before and after a measurement and
//! taking the difference gives the CPU each side spent, which is far less sensitive to a noisy
//! shared machine than wall-clock throughput (time stolen by other processes is not counted).

use std::fs;
use std::time::Duration;

/// Sum of the on-CPU time of the live threads whose name starts with `prefix`.
///
/// Reads `/proc/self/task/*/schedstat` (nanoseconds); falls back to `stat`'s utime + stime
/// (clock ticks, assumed 100 Hz) where schedstat is missing. Zero off Linux.
pub fn threads_cpu(prefix: &str) -> Duration {
    let Ok(tasks) = fs::read_dir("/proc/self/task") else {
        return Duration::ZERO;
    };
    let mut total = Duration::ZERO;
    for task in tasks.flatten() {
        let dir = task.path();
        let Ok(comm) = fs::read_to_string(dir.join("comm")) else {
            continue;
        };
        if !comm.trim_end().starts_with(prefix) {
            continue;
        }
        if let Some(ns) = fs::read_to_string(dir.join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        {
            total += Duration::from_nanos(ns);
        } else if let Some(ticks) = fs::read_to_string(dir.join("stat"))
            .ok()
            .and_then(|s| stat_ticks(&s))
        {
            total += Duration::from_millis(ticks * 10);
        }
    }
    total
}

/// utime + stime from a `/proc/.../stat` line (fields 14 and 15; the name in field 2 may
/// contain spaces, so count from its closing parenthesis).
fn stat_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}
