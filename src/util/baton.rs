//! `Baton<T>`: a value that one task of a shard holds at a time, across
//! awaits (a connection's write half that two pumps write to). Taking it
//! while another holds it waits for its return; the holder gives it back
//! by dropping the guard. Shard-local: no atomics, no lock.

use super::event::Event;
use std::cell::RefCell;
use std::ops::{Deref, DerefMut};

pub struct Baton<T> {
    value: RefCell<Option<T>>,
    returned: Event,
}

impl<T> Baton<T> {
    pub fn new(value: T) -> Baton<T> {
        Baton { value: RefCell::new(Some(value)), returned: Event::new() }
    }

    /// The value, once no other task holds it.
    pub async fn take(&self) -> Held<'_, T> {
        loop {
            if let Some(v) = self.value.borrow_mut().take() {
                return Held { baton: self, value: Some(v) };
            }
            let returned = self.returned.listen();
            if let Some(v) = self.value.borrow_mut().take() {
                return Held { baton: self, value: Some(v) };
            }
            returned.await;
        }
    }
}

/// The value while one task holds it; given back on drop.
pub struct Held<'a, T> {
    baton: &'a Baton<T>,
    value: Option<T>,
}

impl<T> Deref for Held<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.value.as_ref().expect("held until dropped")
    }
}

impl<T> DerefMut for Held<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        self.value.as_mut().expect("held until dropped")
    }
}

impl<T> Drop for Held<'_, T> {
    fn drop(&mut self) {
        *self.baton.value.borrow_mut() = self.value.take();
        self.baton.returned.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

    #[test]
    fn a_second_taker_waits_for_the_first_to_give_it_back() {
        let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new().enable_timer().build().unwrap();
        rt.block_on(async {
            let baton = Rc::new(Baton::new(Vec::<u32>::new()));
            let mut first = baton.take().await;
            first.push(1);
            let b = baton.clone();
            let second = monoio::spawn(async move {
                let mut v = b.take().await;
                v.push(2);
            });
            monoio::time::sleep(std::time::Duration::from_millis(5)).await;
            assert!(baton.value.borrow().is_none(), "the second taker must still be waiting");
            drop(first);
            second.await;
            assert_eq!(*baton.take().await, vec![1, 2]);
        });
    }
}
