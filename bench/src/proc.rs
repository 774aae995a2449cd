//! Memory of a process and its descendants from /proc (Linux): `VmRSS` (now), `VmHWM` (peak
//! resident size) and `RssAnon` (the anonymous part of the resident size now), in KiB; and the
//! CPU time a process has used.

use std::collections::HashMap;

fn status_kb(pid: u32, field: &str) -> u64 {
    let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return 0;
    };
    s.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.trim_start_matches(':').split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// `pid` and all its descendants (children of children too).
pub fn tree(pid: u32) -> Vec<u32> {
    let mut parent: HashMap<u32, Vec<u32>> = HashMap::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(p) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
                continue;
            };
            // The command name is in parentheses and may hold spaces: read after the last ')'.
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|n| n.parse::<u32>().ok());
            if let Some(pp) = ppid {
                parent.entry(pp).or_default().push(p);
            }
        }
    }
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() {
        if let Some(kids) = parent.get(&out[i]) {
            out.extend(kids);
        }
        i += 1;
    }
    out
}

/// Sum of the current resident sizes of the tree.
pub fn tree_rss_kb(pid: u32) -> u64 {
    tree(pid).into_iter().map(|p| status_kb(p, "VmRSS")).sum()
}

/// The largest [`tree_rss_kb`] seen until `deadline`, sampled every 20 ms. The tree is walked
/// again every half second (the Node peer starts kubectl children); in between only the known
/// processes' status is read, which keeps the sampler's own CPU small.
pub fn peak_tree_rss_kb(pid: u32, deadline: std::time::Instant) -> u64 {
    let mut peak = 0;
    let mut pids = Vec::new();
    let mut n = 0u32;
    while std::time::Instant::now() < deadline {
        if n.is_multiple_of(25) {
            pids = tree(pid);
        }
        n += 1;
        peak = peak.max(pids.iter().map(|&p| status_kb(p, "VmRSS")).sum());
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    peak
}

/// Sum of the peak resident sizes of the processes alive in the tree now.
pub fn tree_hwm_kb(pid: u32) -> u64 {
    tree(pid).into_iter().map(|p| status_kb(p, "VmHWM")).sum()
}

/// Sum of the resident anonymous memory (heap, stacks) of the tree now: the RSS without the
/// resident pages of mapped files such as the program itself.
pub fn tree_anon_kb(pid: u32) -> u64 {
    tree(pid).into_iter().map(|p| status_kb(p, "RssAnon")).sum()
}

/// CPU time (user + system) a process has used so far, with that of its children it has
/// waited for (kubectl runs of the Node peer), in milliseconds (`/proc/PID/stat`).
pub fn cpu_ms(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces): state is the 1st, utime the 12th,
    // then stime, cutime, cstime.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks: u64 = [11, 12, 13, 14]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|v| v.parse::<u64>().ok()))
        .sum();
    // The kernel's USER_HZ is 100 on Linux.
    ticks as f64 * 10.0
}

/// Stops a server as an operator would: SIGTERM, then at most five seconds for it to drain and
/// exit, then SIGKILL. A clean exit also lets a profiling build write its profile (bench/pgo).
pub async fn stop(child: &mut tokio::process::Child) {
    if let Some(pid) = child.id() {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
        if tokio::time::timeout(std::time::Duration::from_secs(5), child.wait())
            .await
            .is_ok()
        {
            return;
        }
    }
    let _ = child.start_kill();
    let _ = child.wait().await;
}
