//! The node's own figures for heartbeats: CPU (from /proc/stat deltas),
//! memory (/proc/meminfo) and disk (statvfs of Docker's data directory).

use std::path::Path;

/// One reading of the host.
#[derive(Debug, Clone, Copy, Default)]
pub struct HostSample {
    pub cpu_percent: f64,
    /// Millicores: 1000 per CPU.
    pub cpu_total: i32,
    pub memory_used_mb: i64,
    pub memory_total_mb: i64,
    pub disk_used_mb: i64,
    pub disk_total_mb: i64,
}

#[derive(Default)]
pub struct HostMetrics {
    previous_cpu: Option<(u64, u64)>,
}

/// (idle, total) jiffies from the first line of /proc/stat.
fn cpu_times(stat: &str) -> Option<(u64, u64)> {
    let line = stat.lines().next()?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    if fields.len() < 4 {
        return None;
    }
    let idle = fields[3] + fields.get(4).copied().unwrap_or(0);
    Some((idle, fields.iter().sum()))
}

/// (total, available) kB from /proc/meminfo.
fn memory_kb(meminfo: &str) -> Option<(u64, u64)> {
    let field = |name: &str| {
        meminfo
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
    };
    Some((field("MemTotal:")?, field("MemAvailable:")?))
}

impl HostMetrics {
    pub fn sample(&mut self) -> HostSample {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as i32;
        let mut sample = HostSample {
            cpu_total: cpus * 1000,
            ..HostSample::default()
        };
        if let Some((idle, total)) = std::fs::read_to_string("/proc/stat")
            .ok()
            .as_deref()
            .and_then(cpu_times)
        {
            if let Some((prev_idle, prev_total)) = self.previous_cpu {
                let busy = (total - prev_total).saturating_sub(idle - prev_idle);
                if total > prev_total {
                    sample.cpu_percent = busy as f64 * 100.0 / (total - prev_total) as f64;
                }
            }
            self.previous_cpu = Some((idle, total));
        }
        if let Some((total, available)) = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .as_deref()
            .and_then(memory_kb)
        {
            sample.memory_total_mb = (total / 1024) as i64;
            sample.memory_used_mb = (total.saturating_sub(available) / 1024) as i64;
        }
        let docker_root = Path::new("/var/lib/docker");
        let disk = if docker_root.exists() {
            docker_root
        } else {
            Path::new("/")
        };
        if let Ok(fs) = rustix::fs::statvfs(disk) {
            let block = fs.f_frsize;
            sample.disk_total_mb = (fs.f_blocks * block / 1024 / 1024) as i64;
            sample.disk_used_mb = ((fs.f_blocks - fs.f_bfree) * block / 1024 / 1024) as i64;
        }
        sample
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_files() {
        assert_eq!(
            cpu_times("cpu  10 0 10 70 10 0 0 0 0 0\ncpu0 1 2 3 4"),
            Some((80, 100))
        );
        let meminfo =
            "MemTotal:       16000000 kB\nMemFree:   100 kB\nMemAvailable:    4000000 kB\n";
        assert_eq!(memory_kb(meminfo), Some((16_000_000, 4_000_000)));
        assert_eq!(memory_kb("nothing"), None);
    }

    #[test]
    fn samples_this_machine() {
        let mut metrics = HostMetrics::default();
        metrics.sample();
        let s = metrics.sample();
        assert!(
            s.cpu_total >= 1000 && s.memory_total_mb > 0 && s.disk_total_mb > 0,
            "{s:?}"
        );
        assert!((0.0..=100.0).contains(&s.cpu_percent));
    }
}
