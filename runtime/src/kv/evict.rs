//! The importance policy ([`super::KvPolicy::Importance`]): which ring slots a layer keeps.
//!
//! A layer under this policy has a slot table ([`super::SlotTable`]) after its K and V: the
//! position each ring slot holds, the first position whose query no longer sees it, and the
//! attention it has received so far (summed over heads and over the queries `kv_score`
//! observes: every decode step, and the last [`OBSERVED`] tokens of a prefill batch). Before
//! each step the host plans the table ([`Slots::plan`]) and uploads it; after the step it reads
//! the scores back.
//!
//! The plan keeps what a query sees at most as large as under the window policy (`window`
//! ring keys), so the two policies are compared at equal memory *and* equal attention width:
//! - a slot whose position is beyond the model's trained context from the batch's last query
//!   leaves first;
//! - of the other held slots, the newest `protect` positions are kept before any older one;
//!   older ones rank by score (least attended leave first, ties to the older);
//! - the cache is cut to `window - 1` held slots before a batch; inside a batch of `n`, the
//!   query at offset `t` stops seeing the next `t` lowest-ranked slots, which are freed before
//!   the following step. Ranked by position alone, this is exactly the sliding window.

use super::SlotTable;
use crate::{Error, Result};

/// Queries of a prefill batch (its last ones) whose attention `kv_score` adds to the scores;
/// a decode step's single query is always observed. SnapKV observes the prompt's last 32; half
/// of that keeps the scoring pass within half a batch of the default 32 tokens (not tuned).
pub const OBSERVED: u32 = 16;

/// Newest positions the policy keeps before any older, better-attended one: half the window,
/// as H2O splits its budget between recent tokens and heavy hitters.
pub fn protected(window: u32) -> u32 {
    window / 2
}

/// A position no query stops seeing.
pub const NEVER: u32 = u32::MAX;

/// One layer's slot table on the host (mirrors the words of [`SlotTable`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Slots {
    /// `1 + position` per ring slot; 0: free.
    pub pos: Vec<u32>,
    /// Per slot, the first position whose query no longer sees it.
    pub drop: Vec<u32>,
    /// Attention received, per slot, as last read back (meaningless for a free slot).
    pub score: Vec<f32>,
    /// Slots whose position or drop changed since the last [`Slots::uploads`].
    dirty: Vec<bool>,
}

impl Slots {
    /// An empty table of `ring_slots` slots (a zeroed buffer's: every slot free).
    pub fn new(ring_slots: u32) -> Self {
        let n = ring_slots as usize;
        Self {
            pos: vec![0; n],
            drop: vec![NEVER; n],
            score: vec![0.0; n],
            dirty: vec![false; n],
        }
    }

    /// The table in `words` (the region `t` describes, as stored).
    pub fn from_words(t: &SlotTable, words: &[u32]) -> Result<Self> {
        let n = t.ring_slots as usize;
        if words.len() as u64 != t.words() {
            return Err(Error::InvalidArgument(
                "kv cache: a slot table of the wrong size".into(),
            ));
        }
        let scores = &words[(t.score_off() - t.offset) as usize..];
        Ok(Self {
            pos: words[..2 * n].iter().step_by(2).copied().collect(),
            drop: words[1..2 * n].iter().step_by(2).copied().collect(),
            score: scores.iter().map(|&w| f32::from_bits(w)).collect(),
            dirty: vec![false; n],
        })
    }

    /// The words of the whole region `t`, with `wmap` (a batch's ring slots).
    pub fn to_words(&self, t: &SlotTable, wmap: &[u32]) -> Vec<u32> {
        let mut w: Vec<u32> = self
            .pos
            .iter()
            .zip(&self.drop)
            .flat_map(|(&p, &d)| [p, d])
            .collect();
        w.extend(wmap);
        w.resize((t.score_off() - t.offset) as usize, 0);
        w.extend(self.score.iter().map(|s| s.to_bits()));
        w
    }

    /// What a step must write to the region `t` after [`Slots::plan`]: (first word in the
    /// layer's buffer, words) for each run of changed slots, then the batch's slots `wmap`.
    /// Only what changed travels, so a step uploads in proportion to its tokens, not the ring.
    pub fn uploads(&mut self, t: &SlotTable, wmap: &[u32]) -> Vec<(u32, Vec<u32>)> {
        let mut out = Vec::new();
        let mut s = 0;
        while s < self.dirty.len() {
            if !self.dirty[s] {
                s += 1;
                continue;
            }
            let start = s;
            let mut words = Vec::new();
            while s < self.dirty.len() && self.dirty[s] {
                words.extend([self.pos[s], self.drop[s]]);
                self.dirty[s] = false;
                s += 1;
            }
            out.push((t.pair_off(start as u32), words));
        }
        out.push((t.wmap_off(), wmap.to_vec()));
        out
    }

    /// The position slot `s` holds, if any.
    pub fn position(&self, s: usize) -> Option<u32> {
        self.pos[s].checked_sub(1)
    }

    /// Whether a query at `p` sees slot `s` (as `kv_key` in `shaders/kv/layout.wgsl`).
    pub fn visible(&self, s: usize, p: u32) -> bool {
        self.position(s).is_some_and(|j| j <= p && p < self.drop[s])
    }

    /// Positions of the ring a query at `p` sees, ascending.
    pub fn keys(&self, p: u32) -> Vec<u32> {
        let mut keys: Vec<u32> = (0..self.pos.len())
            .filter(|&s| self.visible(s, p))
            .filter_map(|s| self.position(s))
            .collect();
        keys.sort_unstable();
        keys
    }

    /// Slots held, and so the positions the cache still has.
    pub fn held(&self) -> usize {
        self.pos.iter().filter(|&&p| p != 0).count()
    }

    fn set(&mut self, s: usize, pos: u32, drop: u32) {
        if (self.pos[s], self.drop[s]) != (pos, drop) {
            self.pos[s] = pos;
            self.drop[s] = drop;
            self.dirty[s] = true;
        }
    }

    fn free(&mut self, s: usize) {
        self.set(s, 0, NEVER);
    }

    /// Plans a step writing `n` tokens at positions `p0..p0 + n` into a layer with `sinks`
    /// sinks (positions below it are not in the ring) and a `window`: frees what leaves and
    /// returns each token's ring slot (0 for a sink token). See the module docs for the rule.
    pub fn plan(&mut self, step: Step, bounds: Bounds) -> Result<Vec<u32>> {
        let Step { p0, n } = step;
        let Bounds {
            sinks,
            window,
            protect,
            horizon,
        } = bounds;
        if n == 0 || window == 0 {
            return Err(Error::InvalidArgument(
                "kv plan: an empty step or window".into(),
            ));
        }
        let last = p0 + (n - 1);
        // What a rollback discarded, and what earlier batches' queries already stopped seeing.
        for s in 0..self.pos.len() {
            if self
                .position(s)
                .is_some_and(|j| j >= p0 || self.drop[s] <= p0)
            {
                self.free(s);
            }
        }
        // Lowest rank leaves first: (class, score, position).
        let mut held: Vec<(u8, f32, u32, usize)> = (0..self.pos.len())
            .filter_map(|s| {
                let j = self.position(s)?;
                let (class, score) = if last - j >= horizon {
                    (0, 0.0)
                } else if j + protect < p0 {
                    (1, self.score[s])
                } else {
                    (2, 0.0)
                };
                Some((class, score, j, s))
            })
            .collect();
        held.sort_by(|a, b| {
            (a.0, a.1)
                .partial_cmp(&(b.0, b.1))
                .unwrap_or(std::cmp::Ordering::Equal)
                .then(a.2.cmp(&b.2))
        });
        let too_far = held.iter().filter(|h| h.0 == 0).count();
        let evict = held.len().saturating_sub(window as usize - 1).max(too_far);
        let kept = (held.len() - evict) as u32;
        for (rank, &(_, _, _, s)) in held.iter().enumerate() {
            if rank < evict {
                self.free(s);
                continue;
            }
            // The query at offset t sees at most `window` ring keys: the t + 1 new ones and
            // kept - max(0, t + 1 + kept - window) of the held.
            let k = (rank - evict) as u32;
            let drop = u64::from(p0) + u64::from(k) + u64::from(window) - u64::from(kept);
            let drop = if drop <= u64::from(last) {
                drop as u32
            } else {
                NEVER
            };
            self.set(s, self.pos[s], drop);
        }
        let free_slots: Vec<usize> = (0..self.pos.len()).filter(|&s| self.pos[s] == 0).collect();
        let mut free = free_slots.into_iter();
        let mut wmap = Vec::with_capacity(n as usize);
        for t in 0..n {
            let j = p0 + t;
            if j < sinks {
                wmap.push(0);
                continue;
            }
            let s = free.next().ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "kv plan: a step of {n} tokens does not fit a ring of {} slots",
                    self.pos.len()
                ))
            })?;
            // kv_write zeroes the slot's score on the device as it fills it.
            self.set(s, j + 1, NEVER);
            self.score[s] = 0.0;
            wmap.push(s as u32);
        }
        Ok(wmap)
    }
}

/// The tokens of one step.
#[derive(Debug, Clone, Copy)]
pub struct Step {
    pub p0: u32,
    pub n: u32,
}

/// What bounds a layer's table.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    pub sinks: u32,
    /// Ring keys a query may see.
    pub window: u32,
    /// Newest positions kept before older ones ([`protected`]).
    pub protect: u32,
    /// Positions farther than this from a query leave first (the trained context).
    pub horizon: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bounds(window: u32, protect: u32) -> Bounds {
        Bounds {
            sinks: 2,
            window,
            protect,
            horizon: NEVER,
        }
    }

    /// Runs `steps` batch sizes through a table, with scores from `score(position)` added
    /// after each, and checks every query against `expect(p)`.
    fn run(
        ring: u32,
        b: Bounds,
        steps: &[u32],
        score: impl Fn(u32) -> f32,
        expect: impl Fn(u32) -> Vec<u32>,
    ) -> Slots {
        let mut slots = Slots::new(ring);
        let mut p0 = 0;
        for &n in steps {
            slots.plan(Step { p0, n }, b).unwrap();
            for p in p0..p0 + n {
                let keys = slots.keys(p);
                assert!(keys.len() <= b.window as usize, "{p}: {keys:?}");
                assert_eq!(keys, expect(p), "query {p}");
            }
            for s in 0..slots.pos.len() {
                if let Some(j) = slots.position(s) {
                    slots.score[s] += score(j);
                }
            }
            p0 += n;
        }
        slots
    }

    #[test]
    fn ranked_by_position_it_is_the_sliding_window() {
        // protect >= window: every held slot is in the newest band, ranked by position.
        let b = bounds(6, 100);
        let window = |p: u32| ((p + 1).saturating_sub(6).max(2)..=p).collect::<Vec<_>>();
        run(6 + 4 - 1, b, &[3, 4, 1, 4, 2, 1, 1, 4, 3], |_| 1.0, window);
    }

    #[test]
    fn a_heavy_hitter_outlives_the_window_and_the_rest_slides() {
        let b = bounds(6, 3);
        let mut slots = Slots::new(6);
        for p in 0..40 {
            slots.plan(Step { p0: p, n: 1 }, b).unwrap();
            let keys = slots.keys(p);
            assert!(keys.len() <= 6);
            assert_eq!(keys.contains(&p), p >= 2, "sinks are not in the ring");
            if p >= 5 {
                assert!(keys.contains(&5), "{p}: {keys:?}");
            }
            // The newest 3 before p are always there.
            for j in p.saturating_sub(3).max(2)..p {
                assert!(keys.contains(&j), "{p}: {keys:?}");
            }
            for s in 0..6 {
                if let Some(j) = slots.position(s) {
                    slots.score[s] += if j == 5 { 10.0 } else { 0.1 };
                }
            }
        }
    }

    #[test]
    fn a_batch_sees_no_more_than_the_window() {
        let b = bounds(8, 4);
        let mut slots = Slots::new(8 + 5 - 1);
        let mut p0 = 0;
        for n in [5, 5, 2, 5, 1, 5, 5] {
            let wmap = slots.plan(Step { p0, n }, b).unwrap();
            let mut seen = std::collections::HashSet::new();
            for (t, &s) in wmap.iter().enumerate() {
                let j = p0 + t as u32;
                if j >= 2 {
                    assert!(seen.insert(s), "slot {s} written twice");
                    assert_eq!(slots.position(s as usize), Some(j));
                }
            }
            let mut before: Option<Vec<u32>> = None;
            for p in p0..p0 + n {
                let keys = slots.keys(p);
                let full = (p + 1).saturating_sub(2);
                assert_eq!(keys.len() as u32, full.min(8), "query {p}: {keys:?}");
                // A key a query stopped seeing is not seen again.
                if let Some(prev) = before {
                    for j in prev.iter().filter(|&&j| !keys.contains(&j)) {
                        assert!(*j < p0, "{j}");
                    }
                }
                before = Some(keys);
            }
            for (s, sc) in slots.score.iter_mut().enumerate() {
                *sc += (s * 7 % 5) as f32;
            }
            p0 += n;
        }
    }

    #[test]
    fn positions_past_the_horizon_leave_first_and_rollback_frees() {
        let b = Bounds {
            horizon: 10,
            ..bounds(6, 2)
        };
        let mut slots = Slots::new(6);
        for p in 0..30 {
            slots.plan(Step { p0: p, n: 1 }, b).unwrap();
            for s in 0..6 {
                if let Some(j) = slots.position(s) {
                    slots.score[s] += if j == 3 { 100.0 } else { 0.0 };
                }
            }
            assert!(slots.keys(p).iter().all(|&j| p - j < 10), "{p}");
        }
        // Going back to position 20 forgets 20 and later.
        slots.plan(Step { p0: 20, n: 1 }, b).unwrap();
        assert!(slots.keys(20).iter().all(|&j| j <= 20));
        slots.plan(Step { p0: 0, n: 1 }, b).unwrap();
        assert_eq!(slots.held(), 0);
        let t = SlotTable {
            offset: 0,
            ring_slots: 6,
            max_batch: 1,
        };
        slots.uploads(&t, &[0]);
        let again = Slots::from_words(&t, &slots.to_words(&t, &[0])).unwrap();
        assert_eq!(again, slots);
        assert!(Slots::from_words(&t, &[0; 5]).is_err());
    }

    #[test]
    fn uploads_carry_only_what_changed_and_rebuild_the_table() {
        let t = SlotTable {
            offset: 100,
            ring_slots: 12,
            max_batch: 3,
        };
        let b = bounds(8, 4);
        let mut host = Slots::new(12);
        // What the device holds: the region's words, written only through uploads.
        let mut device = vec![0u32; t.words() as usize];
        let mut p0 = 0;
        for n in [3, 1, 1, 3, 2, 1, 3, 3, 1, 1, 1] {
            let wmap = host.plan(Step { p0, n }, b).unwrap();
            let ups = host.uploads(&t, &wmap);
            let changed: usize = ups.iter().map(|(_, w)| w.len()).sum();
            assert!(
                changed <= 2 * 3 * n as usize + wmap.len(),
                "{changed} words"
            );
            for (at, words) in ups {
                let at = (at - t.offset) as usize;
                device[at..at + words.len()].copy_from_slice(&words);
            }
            let mut on_device = Slots::from_words(&t, &device).unwrap();
            on_device.score = host.score.clone();
            for p in p0..p0 + n {
                assert_eq!(on_device.keys(p), host.keys(p), "query {p}");
            }
            for sc in host.score.iter_mut() {
                *sc += 1.0;
            }
            p0 += n;
        }
    }
}
