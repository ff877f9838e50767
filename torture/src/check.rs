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

/// A hold of a semaphore permit, a read or write hold of a read-write lock, or a multi-key
/// lock: from its grant (`acquire` ok, recorded after the server granted it) to its release
/// (`release` invoked, recorded before it is sent), so the hold certainly covers the interval.
/// A hold never released belongs to a worker killed while holding it: it counts as held until
/// the later of its worker's last event and the earliest moment its lease could have ended,
/// `asked + ttl` less 5 ms (the server counts the ttl from when it gets the request, which is
/// after `asked`, or for a hold given by a release, from that release; the 5 ms cover its
/// millisecond clock).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Hold {
    pub(crate) proc: String,
    /// The keys held: the event key split on `+`.
    pub(crate) keys: Vec<String>,
    /// `permit`, `read`, `write`, `all` (several keys at once), `one` (one key of several).
    pub(crate) role: String,
    pub(crate) asked: u64,
    pub(crate) start: u64,
    pub(crate) end: u64,
    /// Never released: its worker was killed holding it.
    pub(crate) killed: bool,
}

impl Hold {
    fn shares_key(&self, other: &Self) -> bool {
        self.keys.iter().any(|k| other.keys.contains(k))
    }

    fn is_writer(&self) -> bool {
        self.role == "write"
    }
}

/// The holds of a history, by grant time (see [`Hold`]).
pub(crate) fn holds(events: &[Event], ttl_ns: u64) -> Vec<Hold> {
    let mut out: Vec<Hold> = Vec::new();
    let mut asked: HashMap<(&str, &str), (u64, &str)> = HashMap::new();
    let mut open: HashMap<(&str, &str), usize> = HashMap::new();
    let mut last_event: HashMap<&str, u64> = HashMap::new();
    for e in events {
        last_event.insert(&e.proc, e.t);
        let slot = (e.proc.as_str(), e.key.as_str());
        match (e.op.as_str(), e.kind) {
            ("acquire", Kind::Invoke) => {
                asked.insert(slot, (e.t, &e.value));
            }
            ("acquire", Kind::Ok) => {
                let (at, role) = asked.get(&slot).copied().unwrap_or((e.t, "-"));
                open.insert(slot, out.len());
                out.push(Hold {
                    proc: e.proc.clone(),
                    keys: e.key.split('+').map(str::to_owned).collect(),
                    role: role.to_owned(),
                    asked: at,
                    start: e.t,
                    end: u64::MAX,
                    killed: false,
                });
            }
            ("release", Kind::Invoke) => {
                if let Some(i) = open.remove(&slot) {
                    out[i].end = e.t;
                }
            }
            _ => {}
        }
    }
    for ((proc, _), i) in open {
        let hold = &mut out[i];
        let last = last_event.get(proc).copied().unwrap_or(hold.start);
        let lease_floor = (hold.asked + ttl_ns).saturating_sub(5_000_000);
        hold.end = last.max(lease_floor).max(hold.start);
        hold.killed = true;
    }
    out
}

/// Sweeps the holds of each key in grant order: `bad(hold, active)` says whether a hold
/// granted while `active` (the holds of its key not yet ended) were held breaks the rule.
/// Returns the holds that broke it, and the most holds of one key held at once.
fn sweep(holds: &[Hold], bad: impl Fn(&Hold, &[&Hold]) -> bool) -> (u64, u64) {
    let mut by_key: HashMap<&str, Vec<&Hold>> = HashMap::new();
    for h in holds {
        for k in &h.keys {
            by_key.entry(k).or_default().push(h);
        }
    }
    let (mut broken, mut most) = (0, 0);
    for list in by_key.values_mut() {
        list.sort_by_key(|h| h.start);
        let mut active: Vec<&Hold> = Vec::new();
        for h in list.iter() {
            active.retain(|a| a.end > h.start);
            if bad(h, &active) {
                broken += 1;
            }
            active.push(h);
            most = most.max(active.len() as u64);
        }
    }
    (broken, most)
}

/// The semaphore's rule: returns the grants made while `limit` or more holds of the key were
/// held (each one is a holder too many), and the most holds held at once.
pub(crate) fn over_limit(holds: &[Hold], limit: u64) -> (u64, u64) {
    sweep(holds, |_, active| active.len() as u64 >= limit)
}

/// The read-write lock's rule: returns the grants that overlapped a hold they must not (a
/// writer and anyone, a reader and a writer), the most holds at once, and the most readers at
/// once.
pub(crate) fn rw_conflicts(holds: &[Hold]) -> (u64, u64, u64) {
    let (broken, most) = sweep(holds, |h, active| {
        active.iter().any(|a| h.is_writer() || a.is_writer())
    });
    let readers: Vec<Hold> = holds.iter().filter(|h| !h.is_writer()).cloned().collect();
    let (_, most_readers) = sweep(&readers, |_, _| false);
    (broken, most, most_readers)
}

/// Mutual exclusion per key: returns the grants of a key made while another hold of that key
/// was held (by anyone: a multi-key hold counts on each of its keys).
pub(crate) fn key_overlaps(holds: &[Hold]) -> u64 {
    sweep(holds, |_, active| !active.is_empty()).0
}

/// What a killed holder's hold kept from others, for [`frees_after_kills`].
#[derive(Debug, Clone, Copy)]
pub(crate) enum Needs {
    /// A permit of a semaphore of this limit: a grant needed the victim's permit if, with it,
    /// `limit` holds of workers alive at the time were held at once.
    Permit(u64),
    /// A read-write lock: a writer's hold kept everyone out, a reader's kept the writers out.
    ReadWrite,
    /// Locks on keys: any hold sharing a key.
    Keys,
}

/// After each kill (the nemesis's `op` events) of a worker holding a hold, how long until the
/// hold was free again: the first grant to another worker that needed it (see [`Needs`]),
/// counted from the kill, or from when another worker first wanted it if nobody did at the
/// kill (an acquire call of a key the victim held, and for a reader's hold, a writer's call).
/// Returns the latencies (ns), the kills of a holder, and the holds never freed (no such
/// grant by the end of the run).
pub(crate) fn frees_after_kills(
    events: &[Event],
    holds: &[Hold],
    op: &str,
    needs: Needs,
) -> (Vec<u64>, u64, u64) {
    let mut by_start: Vec<&Hold> = holds.iter().collect();
    by_start.sort_by_key(|h| h.start);
    let calls = calls(events);
    let (mut latencies, mut holder_kills, mut never) = (Vec::new(), 0, 0);
    for kill in events.iter().filter(|e| e.proc == "nemesis" && e.op == op) {
        // Its hold may have been granted between the nemesis's record of the kill and the
        // signal: a worker is killed once, so its unreleased hold is the one.
        let Some(victim) = holds.iter().find(|h| h.killed && h.proc == kill.value) else {
            continue;
        };
        holder_kills += 1;
        let needed = by_start.iter().filter(|c| c.start > kill.t).find(|c| {
            c.proc != victim.proc
                && match needs {
                    Needs::Permit(limit) => {
                        let alive = by_start
                            .iter()
                            .take_while(|h| h.start <= c.start)
                            .filter(|h| !h.killed && h.end > c.start && h.shares_key(c))
                            .count();
                        alive as u64 >= limit && c.shares_key(victim)
                    }
                    Needs::ReadWrite => {
                        c.shares_key(victim) && (victim.is_writer() || c.is_writer())
                    }
                    Needs::Keys => c.shares_key(victim),
                }
        });
        let wanted_from = calls
            .iter()
            .filter(|w| {
                w.proc != victim.proc
                    && w.to > kill.t
                    && w.key.split('+').any(|k| victim.keys.iter().any(|v| v == k))
                    && match needs {
                        Needs::ReadWrite => victim.is_writer() || w.role == "write",
                        _ => true,
                    }
            })
            .map(|w| w.from.max(kill.t))
            .min()
            .unwrap_or(kill.t);
        match needed {
            Some(c) => latencies.push(c.start.saturating_sub(wanted_from)),
            None => never += 1,
        }
    }
    (latencies, holder_kills, never)
}

/// What [`deadlocks`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Deadlocks {
    /// Waits that ran out.
    pub(crate) ran_out: u64,
    /// Of those, the waits of a worker on a cycle of the wait-for graph: deadlocked.
    pub(crate) on_cycle: u64,
    /// The waits of a worker not on a cycle, but waiting (through others) for one that is.
    pub(crate) behind: u64,
}

/// An acquire call: who, for which keys (`1+3`) and role, from its call to its answer (or the
/// end, if never answered), and whether it ran out (answered `fail`, `locked`).
#[derive(Debug, Clone)]
struct Call<'a> {
    proc: &'a str,
    key: &'a str,
    role: &'a str,
    from: u64,
    to: u64,
    ran_out: bool,
}

/// The acquire calls of a history.
fn calls(events: &[Event]) -> Vec<Call<'_>> {
    let mut asked: HashMap<(&str, &str), (u64, &str)> = HashMap::new();
    let mut out = Vec::new();
    for e in events {
        let slot = (e.proc.as_str(), e.key.as_str());
        match (e.op.as_str(), e.kind) {
            ("acquire", Kind::Invoke) => {
                asked.insert(slot, (e.t, &e.value));
            }
            ("acquire", kind) => {
                if let Some((from, role)) = asked.remove(&slot) {
                    out.push(Call {
                        proc: &e.proc,
                        key: &e.key,
                        role,
                        from,
                        to: e.t,
                        ran_out: kind == Kind::Fail && e.value == "locked",
                    });
                }
            }
            _ => {}
        }
    }
    for ((proc, key), (from, role)) in asked {
        out.push(Call {
            proc,
            key,
            role,
            from,
            to: u64::MAX,
            ran_out: false,
        });
    }
    out
}

/// Deadlocks: waits that ran out while their worker was on a cycle of the wait-for graph, just
/// before the wait ended. The graph at a moment: an edge from each worker in an acquire call
/// to each other worker that certainly held (inside its hold, see [`Hold`]) a key the call
/// was for; the caller certainly did not have that key then, whatever its call's answer.
pub(crate) fn deadlocks(events: &[Event], holds: &[Hold]) -> Deadlocks {
    let calls = calls(events);
    let (mut ran_out, mut on_cycle, mut behind) = (0, 0, 0);
    for w in calls.iter().filter(|w| w.ran_out) {
        ran_out += 1;
        let t = w.to.saturating_sub(1).max(w.from);
        // Edges at t: caller -> holders of a key it asked for.
        let mut edges: HashMap<&str, Vec<&str>> = HashMap::new();
        for x in calls.iter().filter(|x| x.from <= t && t < x.to) {
            let wanted: Vec<&str> = x.key.split('+').collect();
            for h in holds {
                if h.proc != x.proc
                    && h.start <= t
                    && t < h.end
                    && h.keys.iter().any(|k| wanted.contains(&k.as_str()))
                {
                    edges.entry(x.proc).or_default().push(&h.proc);
                }
            }
        }
        let reach = |from: &str| -> Vec<&str> {
            let mut seen: Vec<&str> = Vec::new();
            let mut todo: Vec<&str> = edges.get(from).cloned().unwrap_or_default();
            while let Some(p) = todo.pop() {
                if !seen.contains(&p) {
                    seen.push(p);
                    todo.extend(edges.get(p).into_iter().flatten());
                }
            }
            seen
        };
        let reached = reach(w.proc);
        if reached.contains(&w.proc) {
            on_cycle += 1;
        } else if reached.iter().any(|p| reach(p).contains(p)) {
            behind += 1;
        }
    }
    Deadlocks {
        ran_out,
        on_cycle,
        behind,
    }
}

/// The waits of the holds of `role`, from the acquire call to its answer (ns), granted or
/// not, and how many of them ran out.
pub(crate) fn waits(events: &[Event], role: &str) -> (Vec<u64>, u64) {
    let mut asked: HashMap<(&str, &str), u64> = HashMap::new();
    let (mut out, mut ran_out) = (Vec::new(), 0);
    for e in events {
        let slot = (e.proc.as_str(), e.key.as_str());
        match (e.op.as_str(), e.kind) {
            ("acquire", Kind::Invoke) if e.value == role => {
                asked.insert(slot, e.t);
            }
            ("acquire", Kind::Invoke) => {}
            ("acquire", kind) => {
                if let Some(at) = asked.remove(&slot) {
                    out.push(e.t - at);
                    if kind == Kind::Fail && e.value == "locked" {
                        ran_out += 1;
                    }
                }
            }
            _ => {}
        }
    }
    (out, ran_out)
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

    fn hold_events(
        proc: &str,
        key: &str,
        role: &str,
        asked: u64,
        granted: u64,
        released: Option<u64>,
    ) -> Vec<Event> {
        let mut out = vec![
            Event {
                value: role.into(),
                ..ev(asked, proc, key, "acquire", Kind::Invoke)
            },
            ev(granted, proc, key, "acquire", Kind::Ok),
            ev(granted + 1, proc, key, "cs_enter", Kind::Ok),
        ];
        if let Some(r) = released {
            out.push(ev(r - 1, proc, key, "cs_exit", Kind::Invoke));
            out.push(ev(r, proc, key, "release", Kind::Invoke));
            out.push(ev(r + 1, proc, key, "release", Kind::Ok));
        }
        out
    }

    fn sorted(mut events: Vec<Event>) -> Vec<Event> {
        events.sort_by_key(|e| e.t);
        events
    }

    #[test]
    fn a_fourth_concurrent_holder_of_a_semaphore_of_three_is_found() {
        let mut events = Vec::new();
        events.extend(hold_events("w1", "0", "permit", 0, 10, Some(100)));
        events.extend(hold_events("w2", "0", "permit", 0, 20, Some(300)));
        events.extend(hold_events("w3", "0", "permit", 0, 30, Some(300)));
        // w4 after w1 released: three at once, fine.
        events.extend(hold_events("w4", "0", "permit", 0, 110, Some(200)));
        let events = sorted(events);
        let holds = holds(&events, 1_000);
        assert_eq!(over_limit(&holds, 3), (0, 3));
        // A fifth worker granted while w2, w3 and w4 still hold: one too many.
        let mut bad = events.clone();
        bad.extend(hold_events("w5", "0", "permit", 0, 120, Some(130)));
        let holds = super::holds(&sorted(bad), 1_000);
        assert_eq!(over_limit(&holds, 3), (1, 4));
    }

    #[test]
    fn a_killed_holders_permit_counts_until_its_lease_could_have_ended() {
        let ttl = 1_000_000_000; // 1 s in ns
        let mut events = Vec::new();
        events.extend(hold_events("w1", "0", "permit", 0, 10, None)); // killed
        events.push(Event {
            value: "w1".into(),
            ..ev(50, "nemesis", "-", "kill", Kind::Info)
        });
        events.extend(hold_events("w2", "0", "permit", 60, 70, Some(ttl + 200)));
        // w3 asks at 100 and gets the permit at ttl: w1's lease (asked at 0) ended no earlier
        // than ttl - 5 ms, so this is fine; w4 at 500 would be a holder too many.
        events.extend(hold_events("w3", "0", "permit", 100, ttl, Some(ttl + 100)));
        let events = sorted(events);
        let found = holds(&events, ttl);
        assert!(found.iter().any(|h| h.killed && h.end == ttl - 5_000_000));
        assert_eq!(over_limit(&found, 2).0, 0);
        let (latencies, holder_kills, never) =
            frees_after_kills(&events, &found, "kill", Needs::Permit(2));
        assert_eq!((holder_kills, never), (1, 0));
        // Nobody was asking at the kill (50): wanted from 60, when w2 asked.
        assert_eq!(latencies, vec![ttl - 60]);

        let mut bad = events.clone();
        bad.extend(hold_events("w4", "0", "permit", 400, 500, Some(600)));
        let found = holds(&sorted(bad), ttl);
        assert_eq!(over_limit(&found, 2).0, 1);

        // Never given back: no grant ever needed w1's permit while two were held alive.
        let leaked: Vec<Event> = events.iter().filter(|e| e.proc != "w3").cloned().collect();
        let found = holds(&leaked, ttl);
        let (_, holder_kills, never) = frees_after_kills(&leaked, &found, "kill", Needs::Permit(2));
        assert_eq!((holder_kills, never), (1, 1));
    }

    #[test]
    fn a_writer_overlapping_a_reader_is_found_and_readers_may_share() {
        let mut events = Vec::new();
        events.extend(hold_events("w1", "0", "read", 0, 10, Some(100)));
        events.extend(hold_events("w2", "0", "read", 0, 20, Some(90)));
        events.extend(hold_events("w3", "0", "write", 5, 110, Some(200)));
        let good = sorted(events.clone());
        let found = holds(&good, 1_000);
        assert_eq!(rw_conflicts(&found), (0, 2, 2));
        let (w, ran_out) = waits(&good, "write");
        assert_eq!((w, ran_out), (vec![105], 0));
        // A writer granted while w1 reads.
        events.extend(hold_events("w4", "0", "write", 40, 50, Some(60)));
        let found = holds(&sorted(events), 1_000);
        assert_eq!(rw_conflicts(&found).0, 1);
    }

    #[test]
    fn a_key_held_twice_is_found_across_multi_key_holds() {
        let mut events = Vec::new();
        events.extend(hold_events("w1", "0+2", "all", 0, 10, Some(100)));
        events.extend(hold_events("w2", "1+3", "all", 0, 20, Some(100)));
        events.extend(hold_events("w3", "2+3", "all", 0, 110, Some(200)));
        let good = sorted(events.clone());
        assert_eq!(key_overlaps(&holds(&good, 1_000)), 0);
        events.extend(hold_events("w4", "3+5", "all", 0, 150, Some(160)));
        assert_eq!(key_overlaps(&holds(&sorted(events), 1_000)), 1);
    }

    #[test]
    fn a_deadlock_is_a_wait_for_cycle() {
        let failed = |t, proc: &str, key: &str| Event {
            value: "locked".into(),
            ..ev(t, proc, key, "acquire", Kind::Fail)
        };
        let mut events = Vec::new();
        // w1 holds 0 and waits for 1; w2 holds 1 and waits for 0; both run out.
        events.extend(hold_events("w1", "0", "one", 0, 10, Some(2_100)));
        events.extend(hold_events("w2", "1", "one", 0, 15, Some(2_200)));
        events.push(Event {
            value: "one".into(),
            ..ev(20, "w1", "1", "acquire", Kind::Invoke)
        });
        events.push(Event {
            value: "one".into(),
            ..ev(25, "w2", "0", "acquire", Kind::Invoke)
        });
        events.push(failed(2_020, "w1", "1"));
        // w1 gave key 0 back (at 2_100): w2, waiting for it, gets it; it was on the cycle
        // too, but did not run out.
        events.push(ev(2_101, "w2", "0", "acquire", Kind::Ok));
        // w3 waits for 5, held by w4, which waits for nothing: no cycle.
        events.extend(hold_events("w4", "5", "one", 0, 30, Some(3_000)));
        events.push(Event {
            value: "one".into(),
            ..ev(40, "w3", "5", "acquire", Kind::Invoke)
        });
        events.push(failed(2_040, "w3", "5"));
        let events = sorted(events);
        let found = holds(&events, 10_000);
        let found = deadlocks(&events, &found);
        assert_eq!((found.ran_out, found.on_cycle, found.behind), (2, 1, 0));
    }

    #[test]
    fn a_killed_holders_keys_free_for_the_next_that_needs_them() {
        let mut events = Vec::new();
        events.extend(hold_events("w1", "0+1", "all", 0, 10, None));
        events.push(Event {
            value: "w1".into(),
            ..ev(20, "nemesis", "-", "kill", Kind::Info)
        });
        // w2 does not need w1's keys; w3 asked at 5 and got key 1 at 900.
        events.extend(hold_events("w2", "2+3", "all", 30, 40, Some(50)));
        events.extend(hold_events("w3", "1+2", "all", 5, 900, Some(950)));
        let events = sorted(events);
        let found = holds(&events, 1_000);
        let (latencies, holder_kills, never) =
            frees_after_kills(&events, &found, "kill", Needs::Keys);
        assert_eq!((latencies, holder_kills, never), (vec![880], 1, 0));
    }
}
