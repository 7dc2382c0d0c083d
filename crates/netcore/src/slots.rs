//! A generational slot map: connections by [`ConnId`], where an id outlives its connection
//! harmlessly.
//!
//! Slots are reused (most recently freed first, as `slab` does), so a loop's memory follows
//! its peak number of connections, not its total. Each slot counts its generation: freeing a
//! slot moves its generation on, so an id kept after its connection closed never finds the
//! connection that reuses the slot.

use slab::Slab;

use crate::id::ConnId;

#[derive(Debug)]
pub(crate) struct Slots<T> {
    entries: Slab<T>,
    /// The generation the next value in each slot gets (and the live value has).
    gens: Vec<u32>,
}

impl<T> Default for Slots<T> {
    fn default() -> Slots<T> {
        Slots {
            entries: Slab::new(),
            gens: Vec::new(),
        }
    }
}

impl<T> Slots<T> {
    /// The id the next [`insert`](Self::insert) will return.
    #[inline]
    pub(crate) fn next_id(&self) -> ConnId {
        let index = self.entries.vacant_key();
        ConnId {
            index,
            gen: self.gens.get(index).copied().unwrap_or(0),
        }
    }

    #[inline]
    pub(crate) fn insert(&mut self, value: T) -> ConnId {
        let id = self.next_id();
        self.entries.insert(value);
        if self.gens.len() <= id.index {
            self.gens.resize(id.index + 1, 0);
        }
        id
    }

    /// Moves the generation of a vacant slot on: the id [`next_id`](Self::next_id) gave
    /// was handed out for something that never got in (a connect that failed at once).
    pub(crate) fn burn(&mut self, id: ConnId) {
        if self.entries.contains(id.index) || self.gen(id.index) != id.gen {
            return;
        }
        if self.gens.len() <= id.index {
            self.gens.resize(id.index + 1, 0);
        }
        self.gens[id.index] = id.gen.wrapping_add(1);
    }

    #[inline]
    pub(crate) fn get(&self, id: ConnId) -> Option<&T> {
        if self.gen(id.index) != id.gen {
            return None;
        }
        self.entries.get(id.index)
    }

    #[inline]
    pub(crate) fn get_mut(&mut self, id: ConnId) -> Option<&mut T> {
        if self.gen(id.index) != id.gen {
            return None;
        }
        self.entries.get_mut(id.index)
    }

    #[inline]
    pub(crate) fn remove(&mut self, id: ConnId) -> Option<T> {
        if self.gen(id.index) != id.gen {
            return None;
        }
        let value = self.entries.try_remove(id.index)?;
        self.gens[id.index] = id.gen.wrapping_add(1);
        Some(value)
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The ids of every live value (a copy: the caller may remove while it walks them).
    pub(crate) fn ids(&self) -> Vec<ConnId> {
        self.entries
            .iter()
            .map(|(index, _)| ConnId {
                index,
                gen: self.gens[index],
            })
            .collect()
    }

    #[inline]
    fn gen(&self, index: usize) -> u32 {
        self.gens.get(index).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_freed_id_never_reaches_the_value_that_reuses_its_slot() {
        let mut slots = Slots::default();
        let a = slots.insert("a");
        assert_eq!(slots.remove(a), Some("a"));
        let b = slots.insert("b");
        assert_eq!(b.index, a.index, "slots are reused");
        assert_ne!(b.gen, a.gen);
        assert_eq!(slots.get(a), None);
        assert_eq!(slots.get_mut(a), None);
        assert_eq!(slots.remove(a), None);
        assert_eq!(slots.get(b), Some(&"b"));
    }

    #[test]
    fn next_id_is_what_insert_returns() {
        let mut slots = Slots::default();
        let first = slots.insert(1);
        slots.remove(first);
        let predicted = slots.next_id();
        assert_eq!(slots.insert(2), predicted);
    }

    #[test]
    fn a_burnt_id_is_never_handed_out_again() {
        let mut slots: Slots<u8> = Slots::default();
        let burnt = slots.next_id();
        slots.burn(burnt);
        let next = slots.insert(7);
        assert_eq!(next.index, burnt.index);
        assert_ne!(next, burnt);
        // Burning a live id does nothing.
        slots.burn(next);
        assert_eq!(slots.get(next), Some(&7));
    }

    #[test]
    fn ids_lists_the_live_values() {
        let mut slots = Slots::default();
        let a = slots.insert('a');
        let b = slots.insert('b');
        let c = slots.insert('c');
        slots.remove(b);
        assert_eq!(slots.ids(), vec![a, c]);
        assert_eq!(slots.len(), 2);
        assert!(!slots.is_empty());
    }
}
