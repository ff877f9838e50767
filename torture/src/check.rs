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
    /// Fencing tokens out of order: grants that came strictly after another grant of the same
    /// key (their request was sent after the other's reply) with a token not above it; and
    /// fences the resource accepted after a higher one.
    pub(crate) inversions: u64,
    /// Fenced writes the resource accepted from a holder whose key had, before the write was
    /// sent, been granted to someone else with a higher token: stale writes that got through.
    pub(crate) stale_accepted: u64,
    /// Fenced writes the resource rejected (stale writes attempted).
    pub(crate) stale_rejected: u64,
    /// Releases that succeeded after another worker had been granted the key since the
    /// releaser's own grant: they deleted someone else's lock.
    pub(crate) foreign_releases: u64,
    /// Extends that succeeded after another worker had been granted the key since the
    /// extender's own grant: they lengthened someone else's lock.
    pub(crate) foreign_extends: u64,
    /// Losses the holders noticed (`lost` events).
    pub(crate) losses_noticed: u64,
    /// Writes whose outcome is unknown (a killed or cut-off worker).
    pub(crate) indeterminate: u64,
    /// Acquires that ended in a backend error (Redis down, too slow, no quorum): the lock was
    /// not available, which is no violation, but shows what a fault costs.
    pub(crate) acquire_errors: u64,
}

impl Findings {
    /// Violations of mutual exclusion or of the resources: what a safe run must have none of.
    pub(crate) fn violations(&self) -> u64 {
        self.overlaps
            + self.lost_updates
            + self.lost_file_writes
            + self.inversions
            + self.stale_accepted
            + self.foreign_releases
            + self.foreign_extends
    }
}

/// A grant, for the fencing checks: when it was asked for, when it was answered, its token.
#[derive(Debug, Clone, Copy)]
struct Grant {
    asked: u64,
    answered: u64,
    fence: i64,
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
    // For the foreign release and extend checks: per key, the grants (asked, answered, by).
    let mut grants: HashMap<&str, Vec<(u64, u64, &str)>> = HashMap::new();
    let mut my_grant: HashMap<(&str, &str), u64> = HashMap::new();
    let mut release_sent: HashMap<(&str, &str), u64> = HashMap::new();
    let mut extend_sent: HashMap<(&str, &str), u64> = HashMap::new();
    // For the fencing checks.
    let mut asked: HashMap<(&str, &str), u64> = HashMap::new();
    let mut fenced_grants: HashMap<&str, Vec<Grant>> = HashMap::new();
    let mut fwrite_sent: HashMap<(&str, &str), u64> = HashMap::new();
    let mut fwrites: Vec<(&str, u64, i64)> = Vec::new();
    for e in events {
        let slot = (e.proc.as_str(), e.key.as_str());
        match (e.op.as_str(), e.kind) {
            ("acquire", Kind::Info) => findings.acquire_errors += 1,
            ("acquire", Kind::Invoke) => {
                asked.insert(slot, e.t);
            }
            ("acquire", Kind::Ok) => {
                let asked_at = asked.get(&slot).copied().unwrap_or(e.t);
                grants
                    .entry(&e.key)
                    .or_default()
                    .push((asked_at, e.t, &e.proc));
                my_grant.insert(slot, e.t);
                // The value is `token fence`; -1 without fencing.
                let fence = e
                    .value
                    .rsplit(' ')
                    .next()
                    .and_then(|f| f.parse::<i64>().ok())
                    .unwrap_or(-1);
                if fence >= 0 {
                    fenced_grants.entry(&e.key).or_default().push(Grant {
                        asked: asked.get(&slot).copied().unwrap_or(e.t),
                        answered: e.t,
                        fence,
                    });
                }
            }
            ("fwrite", Kind::Invoke) => {
                fwrite_sent.insert(slot, e.t);
            }
            ("fwrite", Kind::Ok) => {
                if let (Some(sent), Ok(fence)) = (fwrite_sent.remove(&slot), e.value.parse()) {
                    fwrites.push((&e.key, sent, fence));
                }
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
            ("extend", Kind::Invoke) => {
                extend_sent.insert(slot, e.t);
            }
            ("extend", Kind::Ok) => {
                // Granted to another worker between our grant and the extend's sending.
                let sent = extend_sent.remove(&slot).unwrap_or(e.t);
                if let Some(&mine) = my_grant.get(&slot)
                    && granted_to_others(&grants, &e.key, &e.proc, mine, sent) > 0
                {
                    findings.foreign_extends += 1;
                }
            }
            ("release", Kind::Invoke) => {
                release_sent.insert(slot, e.t);
            }
            ("release", Kind::Ok) => {
                // Granted to another worker after our grant and before we even sent the
                // release: what we released was theirs. (A grant after the release was sent
                // may be the hand-off of our own release.)
                let sent = release_sent.remove(&slot).unwrap_or(e.t);
                if let Some(mine) = my_grant.remove(&slot)
                    && granted_to_others(&grants, &e.key, &e.proc, mine, sent) > 0
                {
                    findings.foreign_releases += 1;
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
    // Per key, the grants by answer time, with the highest token answered so far.
    let mut answered: HashMap<&str, (Vec<u64>, Vec<i64>)> = HashMap::new();
    for (key, list) in &mut fenced_grants {
        list.sort_by_key(|g| g.answered);
        let times = list.iter().map(|g| g.answered).collect();
        let highest = list
            .iter()
            .scan(i64::MIN, |high, g| {
                *high = (*high).max(g.fence);
                Some(*high)
            })
            .collect();
        answered.insert(key, (times, highest));
    }
    let highest_before = |key: &str, t: u64| -> Option<i64> {
        let (times, highest) = answered.get(key)?;
        let n = times.partition_point(|&at| at < t);
        n.checked_sub(1).map(|i| highest[i])
    };
    for (key, list) in &fenced_grants {
        for g in list {
            if highest_before(key, g.asked).is_some_and(|high| high >= g.fence) {
                findings.inversions += 1;
            }
        }
    }
    for &(key, sent, fence) in &fwrites {
        if highest_before(key, sent).is_some_and(|high| high > fence) {
            findings.stale_accepted += 1;
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

/// How many grants of `key` went to a worker other than `me` certainly between `after` and
/// `before`: asked for after `after` and answered before `before`. (A grant answered after
/// `after` may have happened on the server before it, if its worker was slow to record it.)
fn granted_to_others(
    grants: &HashMap<&str, Vec<(u64, u64, &str)>>,
    key: &str,
    me: &str,
    after: u64,
    before: u64,
) -> usize {
    grants.get(key).map_or(0, |g| {
        g.iter()
            .filter(|(asked, answered, by)| *asked > after && *answered < before && *by != me)
            .count()
    })
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

/// Takeover latency after each kill of a worker that was inside a critical section (the
/// nemesis picks holders from the workers' reports, which can be a moment late: a worker that
/// had just left its section is not a holder kill and is not counted). Latency: from the kill,
/// or from the moment the next holder started asking if that was later, to the grant of the
/// victim's key to another worker; so a key nobody wanted for a while does not count as slow.
/// Returns the latencies and the number of holder kills.
pub(crate) fn takeovers(events: &[Event], op: &str) -> (Vec<u64>, u64) {
    let mut out = Vec::new();
    let mut holder_kills = 0;
    for (i, e) in events.iter().enumerate() {
        if e.proc != "nemesis" || e.op != op {
            continue;
        }
        let victim = e.value.as_str();
        // Inside a section: the victim's last section event is an entry (it may have entered
        // between the nemesis's record of the kill and the signal: all its events come before
        // its death).
        let Some(key) = events
            .iter()
            .rev()
            .find(|x| x.proc == victim && (x.op == "cs_enter" || x.op == "cs_exit"))
            .filter(|x| x.op == "cs_enter")
            .map(|x| x.key.clone())
        else {
            continue;
        };
        holder_kills += 1;
        let Some(at) = events[i..].iter().position(|x| {
            x.key == key && x.op == "acquire" && x.kind == Kind::Ok && x.proc != victim
        }) else {
            continue;
        };
        let grant = &events[i + at];
        let asked = events[..i + at]
            .iter()
            .rev()
            .find(|x| x.proc == grant.proc && x.op == "acquire" && x.kind == Kind::Invoke)
            .map_or(e.t, |x| x.t);
        out.push(grant.t - asked.max(e.t));
    }
    (out, holder_kills)
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
            ev(2, "w2", "0", "acquire", Kind::Invoke),
            ev(3, "w2", "0", "acquire", Kind::Ok),
            ev(4, "w2", "0", "cs_enter", Kind::Ok),
            ev(4, "w1", "0", "extend", Kind::Invoke),
            ev(5, "w1", "0", "extend", Kind::Ok),
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
        assert_eq!(found.foreign_extends, 1, "w1 extended after w2's grant");

        // w2 asked before w1 was answered: its grant may have come first on the server (and
        // been deleted by then), so nothing certain about w1's release and extend.
        let mut events = events;
        events[2].t = 0;
        events.sort_by_key(|e| e.t);
        let found = check(&events, &Resources::default(), 9);
        assert_eq!((found.foreign_releases, found.foreign_extends), (0, 0));
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
    fn fencing_tokens_out_of_order_and_stale_writes_accepted_are_found() {
        let grant = |t, proc: &str, fence: i64| Event {
            value: format!("token {fence}"),
            ..ev(t, proc, "0", "acquire", Kind::Ok)
        };
        let fwrite = |t, proc: &str, kind, fence: i64| Event {
            value: fence.to_string(),
            ..ev(t, proc, "0", "fwrite", kind)
        };
        let events = vec![
            ev(0, "w1", "0", "acquire", Kind::Invoke),
            grant(1, "w1", 10),
            fwrite(2, "w1", Kind::Invoke, 10),
            fwrite(3, "w1", Kind::Ok, 10),
            // w2 asked after w1's grant and got a higher token: in order.
            ev(4, "w2", "0", "acquire", Kind::Invoke),
            grant(5, "w2", 11),
            // w1, paused, writes after w2's grant and gets through: stale.
            fwrite(6, "w1", Kind::Invoke, 10),
            fwrite(7, "w1", Kind::Ok, 10),
            // w3 asked after w2's grant and got a lower token: out of order.
            ev(8, "w3", "0", "acquire", Kind::Invoke),
            grant(9, "w3", 9),
            // Rejected stale writes are no finding.
            fwrite(10, "w1", Kind::Invoke, 10),
            fwrite(11, "w1", Kind::Fail, 10),
        ];
        let found = check(&events, &Resources::default(), 12);
        assert_eq!(found.inversions, 1);
        assert_eq!(found.stale_accepted, 1);
        assert_eq!(found.stale_rejected, 1);
    }

    #[test]
    fn takeovers_count_holder_kills_from_when_the_next_holder_asked() {
        let nemesis = |t, victim: &str| Event {
            value: victim.into(),
            ..ev(t, "nemesis", "-", "kill", Kind::Info)
        };
        let events = vec![
            ev(0, "w1", "0", "cs_enter", Kind::Ok),
            ev(5, "w2", "0", "acquire", Kind::Invoke),
            nemesis(10, "w1"),
            ev(1_010, "w2", "0", "acquire", Kind::Ok),
            ev(1_020, "w2", "0", "cs_enter", Kind::Ok),
            ev(1_030, "w2", "0", "cs_exit", Kind::Invoke),
            // w2 has left its section: killing it now is not a holder kill.
            nemesis(1_040, "w2"),
            ev(2_000, "w3", "1", "cs_enter", Kind::Ok),
            nemesis(2_010, "w3"),
            // Nobody wanted key 1 until 5_000; granted 50 later.
            ev(5_000, "w4", "1", "acquire", Kind::Invoke),
            ev(5_050, "w4", "1", "acquire", Kind::Ok),
        ];
        let (latencies, holder_kills) = takeovers(&events, "kill");
        assert_eq!(holder_kills, 2);
        assert_eq!(latencies, vec![1_000, 50]);
    }

    #[test]
    fn percentiles_of_latencies() {
        let (p50, p99, max) = percentiles(vec![1_000_000, 2_000_000, 3_000_000]).unwrap();
        assert_eq!((p50, p99, max), (2.0, 3.0, 3.0));
        assert!(percentiles(Vec::new()).is_none());
    }
}
