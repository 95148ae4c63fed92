//! What sources that replay from a broker or a database share: the holds of
//! the rules that read them, by rule id (taken by `positions`, found again by
//! `build`), and the positions handed to a rule since its last checkpoint
//! with what each one was at the source (an offset, an index value).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, Weak};

/// The holds of rules that replay, by rule id.
pub(crate) struct RuleHolds<H>(Mutex<HashMap<String, Weak<H>>>);

impl<H> Default for RuleHolds<H> {
    fn default() -> Self {
        Self(Mutex::default())
    }
}

impl<H> RuleHolds<H> {
    /// Keeps `hold` as `rule_id`'s, forgetting the holds dropped since.
    pub(crate) fn insert(&self, rule_id: &str, hold: &Arc<H>) {
        let mut holds = self.0.lock().unwrap_or_else(|p| p.into_inner());
        holds.retain(|_, hold| hold.strong_count() > 0);
        holds.insert(rule_id.to_owned(), Arc::downgrade(hold));
    }

    /// `rule_id`'s hold, while it lives.
    pub(crate) fn get(&self, rule_id: &str) -> Option<Arc<H>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).get(rule_id)?.upgrade()
    }
}

/// What each position handed to a rule since its last released checkpoint
/// was at the source, in order.
pub(crate) struct Pending<T>(VecDeque<(u64, T)>);

impl<T> Default for Pending<T> {
    fn default() -> Self {
        Self(VecDeque::new())
    }
}

impl<T> Pending<T> {
    /// Notes what `position` was.
    pub(crate) fn push(&mut self, position: u64, at: T) {
        self.0.push_back((position, at));
    }

    /// What the positions up to `position` were, in order.
    pub(crate) fn up_to(&self, position: u64) -> impl Iterator<Item = &T> {
        self.0.iter().take_while(move |(p, _)| *p <= position).map(|(_, at)| at)
    }

    /// Forgets the positions up to `position` (a checkpoint covers them).
    pub(crate) fn release(&mut self, position: u64) {
        while self.0.front().is_some_and(|(p, _)| *p <= position) {
            self.0.pop_front();
        }
    }

    /// How many positions are pending.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }
}
