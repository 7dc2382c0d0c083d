//! A generational slot map: connections by [`ConnId`], where an id outlives its connection
//! harmlessly.
//!
//! Slots are reused (most recently freed first, as `slab` does), so a loop's memory follows
//! its peak number of connections, not its total. Each slot counts its generation: freeing a
//! slot moves its generation on, so an id kept after its connection closed never finds the
//! connection that reuses the slot.
//!
//! The generation lives in the slot beside the value: a lookup, which the loop does several
//! times per event, is one bounds check and one comparison on one cache line.

use crate::id::ConnId;

/// The end of the free list.
const NONE: usize = usize::MAX;

#[derive(Debug)]
enum Entry<T> {
    /// `gen` is the generation of the id that finds `value`.
    Occupied { gen: u32, value: T },
    /// `gen` is the generation the next value gets; `next` the next free slot.
    Vacant { gen: u32, next: usize },
}

#[derive(Debug)]
pub(crate) struct Slots<T> {
    entries: Vec<Entry<T>>,
    /// The most recently freed slot ([`NONE`] when none is free).
    free: usize,
    len: usize,
}

impl<T> Default for Slots<T> {
    fn default() -> Slots<T> {
        Slots {
            entries: Vec::new(),
            free: NONE,
            len: 0,
        }
    }
}

impl<T> Slots<T> {
    /// The id the next [`insert`](Self::insert) will return.
    #[inline]
    pub(crate) fn next_id(&self) -> ConnId {
        match self.entries.get(self.free) {
            Some(Entry::Vacant { gen, .. }) => ConnId {
                index: self.free,
                gen: *gen,
            },
            _ => ConnId {
                index: self.entries.len(),
                gen: 0,
            },
        }
    }

    #[inline]
    pub(crate) fn insert(&mut self, value: T) -> ConnId {
        let id = self.next_id();
        match self.entries.get(id.index) {
            Some(&Entry::Vacant { next, .. }) => {
                self.entries[id.index] = Entry::Occupied { gen: id.gen, value };
                self.free = next;
            }
            _ => self.entries.push(Entry::Occupied { gen: id.gen, value }),
        }
        self.len += 1;
        id
    }

    /// Moves the generation of a vacant slot on: the id [`next_id`](Self::next_id) gave
    /// was handed out for something that never got in (a connect that failed at once).
    pub(crate) fn burn(&mut self, id: ConnId) {
        let end = self.entries.len();
        match self.entries.get_mut(id.index) {
            Some(Entry::Vacant { gen, .. }) if *gen == id.gen => *gen = id.gen.wrapping_add(1),
            Some(_) => {}
            // The slot past the end comes into being, vacant and one generation on.
            None if id.index == end && id.gen == 0 => {
                self.entries.push(Entry::Vacant {
                    gen: 1,
                    next: self.free,
                });
                self.free = id.index;
            }
            None => {}
        }
    }

    #[inline]
    pub(crate) fn get(&self, id: ConnId) -> Option<&T> {
        match self.entries.get(id.index) {
            Some(Entry::Occupied { gen, value }) if *gen == id.gen => Some(value),
            _ => None,
        }
    }

    #[inline]
    pub(crate) fn get_mut(&mut self, id: ConnId) -> Option<&mut T> {
        match self.entries.get_mut(id.index) {
            Some(Entry::Occupied { gen, value }) if *gen == id.gen => Some(value),
            _ => None,
        }
    }

    #[inline]
    pub(crate) fn remove(&mut self, id: ConnId) -> Option<T> {
        match self.entries.get(id.index) {
            Some(Entry::Occupied { gen, .. }) if *gen == id.gen => {}
            _ => return None,
        }
        let vacant = Entry::Vacant {
            gen: id.gen.wrapping_add(1),
            next: self.free,
        };
        self.free = id.index;
        self.len -= 1;
        match std::mem::replace(&mut self.entries[id.index], vacant) {
            Entry::Occupied { value, .. } => Some(value),
            Entry::Vacant { .. } => None,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The ids of every live value (a copy: the caller may remove while it walks them).
    pub(crate) fn ids(&self) -> Vec<ConnId> {
        self.entries
            .iter()
            .enumerate()
            .filter_map(|(index, entry)| match entry {
                Entry::Occupied { gen, .. } => Some(ConnId { index, gen: *gen }),
                Entry::Vacant { .. } => None,
            })
            .collect()
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
    fn freed_slots_are_reused_most_recent_first_then_the_vector_grows() {
        let mut slots = Slots::default();
        let [a, b, c] = [1, 2, 3].map(|v| slots.insert(v));
        slots.remove(a);
        slots.remove(c);
        let burnt = slots.next_id();
        assert_eq!(burnt.index, c.index);
        slots.burn(burnt);
        assert_eq!(slots.insert(4).index, c.index);
        assert_eq!(slots.insert(5).index, a.index);
        let d = slots.insert(6);
        assert_eq!(d, ConnId { index: 3, gen: 0 });
        assert_eq!(slots.get(b), Some(&2));
        assert_eq!(slots.len(), 4);
        assert_eq!(slots.ids().len(), 4);
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
