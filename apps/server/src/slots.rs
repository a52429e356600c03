//! The server's sessions (`--parallel N`, all planned inside the budget when the engine
//! loads), handed to requests one at a time. A request goes to the free session whose cache
//! holds the longest prefix of its tokens, so the next turn of a conversation reuses what the
//! previous one evaluated (llama-server's slots with prompt caching). Requests beyond N wait
//! in a bounded queue; beyond that they are refused at once.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use voyager_runtime::Session;

use crate::error::ApiError;

pub struct Slots {
    free: Mutex<Vec<Slot>>,
    permits: Arc<Semaphore>,
    parallel: usize,
    waiting: AtomicUsize,
    queue: usize,
    clock: AtomicU64,
}

/// One session and when it last served.
pub struct Slot {
    pub id: usize,
    pub session: Session,
    last_used: u64,
}

/// A slot lent to a request; it goes back (with its cache) when the guard is dropped.
pub struct SlotGuard {
    slot: Option<Slot>,
    slots: Arc<Slots>,
    _permit: OwnedSemaphorePermit,
}

impl SlotGuard {
    pub fn slot(&mut self) -> &mut Slot {
        self.slot
            .as_mut()
            .expect("a lent slot is present until dropped")
    }
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        if let Some(mut slot) = self.slot.take() {
            slot.last_used = self.slots.clock.fetch_add(1, Ordering::Relaxed);
            self.slots
                .free
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(slot);
        }
        // The permit is released after the slot is back in the free list.
    }
}

/// Leaves the queue when the waiting request is dropped (its client went away).
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Slots {
    /// `sessions` become the slots; `queue` requests may wait for one.
    pub fn new(sessions: Vec<Session>, queue: usize) -> Arc<Self> {
        let parallel = sessions.len();
        let free = sessions
            .into_iter()
            .enumerate()
            .map(|(id, session)| Slot {
                id,
                session,
                last_used: 0,
            })
            .collect();
        Arc::new(Self {
            free: Mutex::new(free),
            permits: Arc::new(Semaphore::new(parallel)),
            parallel,
            waiting: AtomicUsize::new(0),
            queue,
            clock: AtomicU64::new(1),
        })
    }

    pub fn parallel(&self) -> usize {
        self.parallel
    }

    /// Requests waiting for a slot now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }

    /// Slots not lent now.
    pub fn idle(&self) -> usize {
        self.free.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// A slot for a request that will evaluate `tokens`: at once when one is free, after
    /// waiting in the queue when not, or a 503 when the queue is full.
    pub async fn acquire(self: &Arc<Self>, tokens: &[u32]) -> Result<SlotGuard, ApiError> {
        let permit = match Arc::clone(&self.permits).try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                if self.waiting.fetch_add(1, Ordering::SeqCst) >= self.queue {
                    self.waiting.fetch_sub(1, Ordering::SeqCst);
                    return Err(ApiError::busy(self.parallel, self.queue));
                }
                let _waiting = Waiting(&self.waiting);
                Arc::clone(&self.permits)
                    .acquire_owned()
                    .await
                    .map_err(|_| ApiError::busy(self.parallel, self.queue))?
            }
        };
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        let best = best_slot(&free, tokens).expect("a permit means a free slot");
        let slot = free.swap_remove(best);
        drop(free);
        Ok(SlotGuard {
            slot: Some(slot),
            slots: Arc::clone(self),
            _permit: permit,
        })
    }
}

/// Which free slot serves `tokens`: the one whose cache holds the longest prefix of them,
/// provided that prefix is at least half of what the slot holds (the request goes on from
/// that conversation); otherwise the slot unused the longest, so a request that merely shares
/// a system prompt does not overwrite another conversation's cache while older ones sit idle.
fn best_slot(free: &[Slot], tokens: &[u32]) -> Option<usize> {
    let candidates: Vec<(&[u32], u64)> = free
        .iter()
        .map(|s| (s.session.history(), s.last_used))
        .collect();
    choose(&candidates, tokens)
}

fn choose(slots: &[(&[u32], u64)], tokens: &[u32]) -> Option<usize> {
    let continuing = slots
        .iter()
        .enumerate()
        .map(|(i, (history, used))| (i, common_prefix(history, tokens), history.len(), *used))
        .filter(|&(_, shared, held, _)| shared > 0 && 2 * shared >= held)
        .max_by_key(|&(_, shared, _, used)| (shared, std::cmp::Reverse(used)));
    match continuing {
        Some((i, ..)) => Some(i),
        None => slots
            .iter()
            .enumerate()
            .min_by_key(|(_, (_, used))| *used)
            .map(|(i, _)| i),
    }
}

pub fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_continued_conversation_finds_its_slot() {
        let a: &[u32] = &[1, 2, 3, 4, 5, 6];
        let b: &[u32] = &[1, 2, 9, 9, 9, 9];
        let slots = [(a, 5), (b, 7), (&[][..], 0)];
        // The request extends conversation `a`.
        assert_eq!(choose(&slots, &[1, 2, 3, 4, 5, 6, 7, 8]), Some(0));
        // An edit late in `b` still goes to `b`.
        assert_eq!(choose(&slots, &[1, 2, 9, 9, 8]), Some(1));
        // A new conversation sharing only the first tokens takes the slot unused the
        // longest (the empty one), leaving both conversations' caches alone.
        assert_eq!(choose(&slots, &[1, 2, 7]), Some(2));
        // With no empty slot, the least recently used one.
        assert_eq!(choose(&slots[..2], &[5]), Some(0));
        assert_eq!(choose(&[], &[5]), None);
    }
}
