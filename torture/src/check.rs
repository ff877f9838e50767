//! The checkers, run offline over the merged history and the resources' final state.

use std::collections::HashMap;

use crate::history::{Event, Kind};

/// What the resources hold at the end, per key index.
#[derive(Debug, Clone, Default)]
pub(crate) struct Resources {
    /// The unfenced counter.
    pub(crate) counter: HashMap<String, i64>,
    /// The fences the fenced resource accepted, in the order it accepted them.
    pub(crate) fence_log: HashMap<String, Vec<u64>>,
    /// Lines in the file resource.
    pub(crate) file_lines: HashMap<String, i64>,
}

/// Every figure the checkers produce.
#[derive(Debug, Clone, Default)]
pub(crate) struct Findings {
    /// Completed critical sections.
    pub(crate) sections: u64,
    /// Pairs of critical sections on one key that overlap in time.
    pub(crate) overlaps: u64,
    /// Acknowledged counter writes that are not in the final counter.
    pub(crate) lost_updates: u64,
    /// The same for the file resource.
    pub(crate) lost_file_writes: u64,
    /// Fences accepted by the resource after a higher one (stale writes accepted).
    pub(crate) inversions: u64,
    /// Fenced writes the resource rejected (stale writes attempted).
    pub(crate) stale_rejected: u64,
    /// Releases that succeeded after another worker had been granted the key since the
    /// releaser's own grant: they deleted someone else's lock.
    pub(crate) foreign_releases: u64,
    /// Losses the holders noticed (`lost` events).
    pub(crate) losses_noticed: u64,
    /// Writes whose outcome is unknown (a killed or cut-off worker).
    pub(crate) indeterminate: u64,
}

impl Findings {
    /// Violations of mutual exclusion or of the resources: what a safe run must have none of.
    pub(crate) fn violations(&self) -> u64 {
        self.overlaps
            + self.lost_updates
            + self.lost_file_writes
            + self.inversions
            + self.foreign_releases
    }
}

/// A critical section: `[cs_enter, cs_exit]` of one worker on one key.
#[derive(Debug, Clone, Copy)]
struct Section {
    start: u64,
    end: u64,
}

pub(crate) fn check(events: &[Event], resources: &Resources, end_of_run: u64) -> Findings {
    let mut findings = Findings::default();
    let mut open: HashMap<(&str, &str), u64> = HashMap::new();
    let mut sections: HashMap<&str, Vec<Section>> = HashMap::new();
    let mut acked: HashMap<&str, i64> = HashMap::new();
    let mut acked_file: HashMap<&str, i64> = HashMap::new();
    let mut pending_write: HashMap<(&str, &str), bool> = HashMap::new();
    // For the foreign-release check: per key, the grants in time order.
    let mut grants: HashMap<&str, Vec<(u64, &str)>> = HashMap::new();
    let mut my_grant: HashMap<(&str, &str), u64> = HashMap::new();
    let mut release_sent: HashMap<(&str, &str), u64> = HashMap::new();
    for e in events {
        let slot = (e.proc.as_str(), e.key.as_str());
        match (e.op.as_str(), e.kind) {
            ("acquire", Kind::Ok) => {
                grants.entry(&e.key).or_default().push((e.t, &e.proc));
                my_grant.insert(slot, e.t);
            }
            ("cs_enter", Kind::Ok) => {
                open.insert(slot, e.t);
            }
            ("cs_exit", _) => {
                if let Some(start) = open.remove(&slot) {
                    sections
                        .entry(&e.key)
                        .or_default()
                        .push(Section { start, end: e.t });
                    findings.sections += 1;
                }
            }
            ("write", Kind::Invoke) => {
                pending_write.insert(slot, true);
            }
            ("write", Kind::Ok) => {
                pending_write.remove(&slot);
                *acked.entry(&e.key).or_default() += 1;
            }
            ("write", Kind::Info) => {
                pending_write.remove(&slot);
                findings.indeterminate += 1;
            }
            ("write", Kind::Fail) => {
                pending_write.remove(&slot);
            }
            ("file", Kind::Ok) => *acked_file.entry(&e.key).or_default() += 1,
            ("fwrite", Kind::Fail) => findings.stale_rejected += 1,
            ("lost", _) => findings.losses_noticed += 1,
            ("release", Kind::Invoke) => {
                release_sent.insert(slot, e.t);
            }
            ("release", Kind::Ok) => {
                // Granted to another worker after our grant and before we even sent the
                // release: what we released was theirs. (A grant after the release was sent
                // may be the hand-off of our own release.)
                let sent = release_sent.remove(&slot).unwrap_or(e.t);
                if let Some(mine) = my_grant.remove(&slot) {
                    let others = grants.get(e.key.as_str()).map_or(0, |g| {
                        g.iter()
                            .filter(|(t, p)| *t > mine && *t < sent && *p != e.proc)
                            .count()
                    });
                    if others > 0 {
                        findings.foreign_releases += 1;
                    }
                }
            }
            _ => {}
        }
    }
    // Sections still open at the end belong to killed workers: they ran until they died,
    // which the history cannot tell; count them as ending at their last event.
    let mut last_event: HashMap<&str, u64> = HashMap::new();
    for e in events {
        last_event.insert(&e.proc, e.t);
    }
    for ((proc, key), start) in open {
        let end = last_event
            .get(proc)
            .copied()
            .unwrap_or(end_of_run)
            .max(start);
        sections
            .entry(key)
            .or_default()
            .push(Section { start, end });
    }
    // A write invoked but never answered may or may not have landed.
    findings.indeterminate += pending_write.len() as u64;

    for list in sections.values_mut() {
        list.sort_by_key(|s| s.start);
        let mut furthest = 0u64;
        for s in list.iter() {
            if s.start < furthest {
                findings.overlaps += 1;
            }
            furthest = furthest.max(s.end);
        }
    }
    for (key, &writes) in &acked {
        let final_value = resources.counter.get(*key).copied().unwrap_or(0);
        if final_value < writes {
            findings.lost_updates += u64::try_from(writes - final_value).unwrap_or(0);
        }
    }
    for (key, &writes) in &acked_file {
        let lines = resources.file_lines.get(*key).copied().unwrap_or(0);
        if lines < writes {
            findings.lost_file_writes += u64::try_from(writes - lines).unwrap_or(0);
        }
    }
    for log in resources.fence_log.values() {
        let mut highest = 0u64;
        for &fence in log {
            if fence < highest {
                findings.inversions += 1;
            }
            highest = highest.max(fence);
        }
    }
    findings
}

/// Percentiles of a list of latencies in nanoseconds: (p50, p99, max), in milliseconds.
pub(crate) fn percentiles(mut ns: Vec<u64>) -> Option<(f64, f64, f64)> {
    if ns.is_empty() {
        return None;
    }
    ns.sort_unstable();
    let at = |p: f64| ns[((ns.len() - 1) as f64 * p).round() as usize] as f64 / 1e6;
    Some((at(0.5), at(0.99), at(1.0)))
}

/// For each nemesis event `op` on a worker (its name in `value`), the time until that worker's
/// key was granted to another worker (takeover after a kill).
pub(crate) fn takeovers(events: &[Event], op: &str) -> Vec<u64> {
    let mut out = Vec::new();
    for (i, e) in events.iter().enumerate() {
        if e.proc != "nemesis" || e.op != op {
            continue;
        }
        let victim = e.value.as_str();
        // The key the victim held: its last grant before the fault.
        let Some(key) = events[..i]
            .iter()
            .rev()
            .find(|x| x.proc == victim && x.op == "acquire" && x.kind == Kind::Ok)
            .map(|x| x.key.clone())
        else {
            continue;
        };
        if let Some(next) = events[i..]
            .iter()
            .find(|x| x.key == key && x.op == "acquire" && x.kind == Kind::Ok && x.proc != victim)
        {
            out.push(next.t - e.t);
        }
    }
    out
}

/// For each `resume` of a paused worker, whether and how soon after it the worker noticed the
/// loss of its lease.
pub(crate) fn detections(events: &[Event]) -> (u64, u64, Vec<u64>) {
    let mut pauses = 0;
    let mut detected = 0;
    let mut latencies = Vec::new();
    for (i, e) in events.iter().enumerate() {
        if e.proc != "nemesis" || e.op != "resume" {
            continue;
        }
        pauses += 1;
        let victim = e.value.as_str();
        let next_release = events[i..]
            .iter()
            .position(|x| x.proc == victim && x.op == "release" && x.kind != Kind::Invoke);
        let window = next_release.map_or(&events[i..], |n| &events[i..=i + n]);
        if let Some(lost) = window.iter().find(|x| x.proc == victim && x.op == "lost") {
            detected += 1;
            latencies.push(lost.t.saturating_sub(e.t));
        } else if window
            .iter()
            .any(|x| x.proc == victim && x.op == "release" && x.kind == Kind::Fail)
        {
            // Noticed at the release at the latest: the release said the lock was gone.
            detected += 1;
        }
    }
    (pauses, detected, latencies)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(t: u64, proc: &str, key: &str, op: &str, kind: Kind) -> Event {
        Event {
            t,
            proc: proc.into(),
            key: key.into(),
            op: op.into(),
            kind,
            value: "-".into(),
        }
    }

    #[test]
    fn overlapping_sections_and_foreign_releases_are_found() {
        let events = vec![
            ev(1, "w1", "0", "acquire", Kind::Ok),
            ev(2, "w1", "0", "cs_enter", Kind::Ok),
            ev(3, "w2", "0", "acquire", Kind::Ok),
            ev(4, "w2", "0", "cs_enter", Kind::Ok),
            ev(5, "w1", "0", "cs_exit", Kind::Invoke),
            ev(6, "w1", "0", "release", Kind::Invoke),
            ev(6, "w1", "0", "release", Kind::Ok),
            ev(7, "w2", "0", "cs_exit", Kind::Invoke),
            ev(8, "w2", "0", "release", Kind::Ok),
        ];
        let found = check(&events, &Resources::default(), 9);
        assert_eq!(found.sections, 2);
        assert_eq!(found.overlaps, 1);
        assert_eq!(found.foreign_releases, 1, "w1 released after w2's grant");
    }

    #[test]
    fn lost_updates_and_inversions_are_counted() {
        let mut events = Vec::new();
        for t in 0..3 {
            events.push(ev(t, "w1", "0", "write", Kind::Ok));
        }
        let mut resources = Resources::default();
        resources.counter.insert("0".into(), 2);
        resources.fence_log.insert("0".into(), vec![1, 5, 3, 6]);
        let found = check(&events, &resources, 10);
        assert_eq!(found.lost_updates, 1);
        assert_eq!(found.inversions, 1);
        assert_eq!(found.overlaps, 0);
    }

    #[test]
    fn percentiles_of_latencies() {
        let (p50, p99, max) = percentiles(vec![1_000_000, 2_000_000, 3_000_000]).unwrap();
        assert_eq!((p50, p99, max), (2.0, 3.0, 3.0));
        assert!(percentiles(Vec::new()).is_none());
    }
}
