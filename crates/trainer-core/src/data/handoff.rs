//! The bounded queue between a loader's background thread and the training loop, built so that
//! the two threads rarely wake each other: the producer fills the queue to its capacity, then
//! sleeps until the consumer has drained it below half (not after every batch), and each side
//! signals the other only when the other is asleep. With steps of tens of microseconds, a wake
//! per batch (what a plain bounded channel costs) is a tenth of the step (docs/benchmarks.md).

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

struct State<T> {
    queue: VecDeque<T>,
    producer_done: bool,
    consumer_gone: bool,
    producer_asleep: bool,
    consumer_asleep: bool,
}

/// A single-producer, single-consumer queue of at most `capacity` items.
pub(crate) struct Handoff<T> {
    state: Mutex<State<T>>,
    ready: Condvar,
    room: Condvar,
    capacity: usize,
    refill_below: usize,
}

impl<T> Handoff<T> {
    /// A queue holding at most `capacity` (at least 1) items.
    pub(crate) fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            state: Mutex::new(State {
                queue: VecDeque::with_capacity(capacity),
                producer_done: false,
                consumer_gone: false,
                producer_asleep: false,
                consumer_asleep: false,
            }),
            ready: Condvar::new(),
            room: Condvar::new(),
            capacity,
            // A full queue is refilled once it holds fewer than half its items (at least one
            // slot free): capacity 2 wakes the producer every second item.
            refill_below: capacity.div_ceil(2),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds an item, waiting while the queue is full; false when the consumer has gone (the
    /// item is dropped).
    pub(crate) fn push(&self, item: T) -> bool {
        let mut state = self.lock();
        if state.queue.len() >= self.capacity {
            while state.queue.len() >= self.refill_below && !state.consumer_gone {
                state.producer_asleep = true;
                state = self
                    .room
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
                state.producer_asleep = false;
            }
        }
        if state.consumer_gone {
            return false;
        }
        state.queue.push_back(item);
        if state.consumer_asleep {
            self.ready.notify_one();
        }
        true
    }

    /// The producer will push nothing more (it finished or failed).
    pub(crate) fn close(&self) {
        let mut state = self.lock();
        state.producer_done = true;
        if state.consumer_asleep {
            self.ready.notify_one();
        }
    }

    /// The next item, waiting for one; `None` once the producer closed the queue and it is empty.
    pub(crate) fn pop(&self) -> Option<T> {
        let mut state = self.lock();
        loop {
            if let Some(item) = state.queue.pop_front() {
                if state.producer_asleep && state.queue.len() < self.refill_below {
                    self.room.notify_one();
                }
                return Some(item);
            }
            if state.producer_done {
                return None;
            }
            state.consumer_asleep = true;
            state = self
                .ready
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
            state.consumer_asleep = false;
        }
    }

    /// The consumer takes nothing more: a waiting producer wakes and stops.
    pub(crate) fn abandon(&self) {
        let mut state = self.lock();
        state.consumer_gone = true;
        state.queue.clear();
        if state.producer_asleep {
            self.room.notify_one();
        }
    }
}

/// Closes the queue when the producer's thread ends, also by a panic.
pub(crate) struct CloseOnDrop<T>(pub(crate) std::sync::Arc<Handoff<T>>);

impl<T> Drop for CloseOnDrop<T> {
    fn drop(&mut self) {
        self.0.close();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::{CloseOnDrop, Handoff};

    #[test]
    fn every_item_arrives_in_order_and_the_end_is_seen() {
        for capacity in [1, 2, 3, 8] {
            let queue = Arc::new(Handoff::new(capacity));
            let producer = {
                let queue = queue.clone();
                std::thread::spawn(move || {
                    let _close = CloseOnDrop(queue.clone());
                    for i in 0..1000 {
                        assert!(queue.push(i));
                    }
                })
            };
            let received: Vec<i32> = std::iter::from_fn(|| queue.pop()).collect();
            producer.join().unwrap();
            assert_eq!(
                received,
                (0..1000).collect::<Vec<_>>(),
                "capacity {capacity}"
            );
        }
    }

    #[test]
    fn a_producer_never_holds_more_than_the_capacity() {
        let queue = Arc::new(Handoff::new(3));
        let producer = {
            let queue = queue.clone();
            std::thread::spawn(move || {
                let _close = CloseOnDrop(queue.clone());
                for i in 0..50 {
                    queue.push(i);
                }
            })
        };
        for _ in 0..50 {
            std::thread::sleep(std::time::Duration::from_micros(200));
            assert!(queue.lock().queue.len() <= 3);
            queue.pop().unwrap();
        }
        producer.join().unwrap();
    }

    #[test]
    fn a_panicking_producer_ends_the_stream_and_a_gone_consumer_stops_the_producer() {
        let queue = Arc::new(Handoff::<i32>::new(2));
        let producer = {
            let queue = queue.clone();
            std::thread::spawn(move || {
                let _close = CloseOnDrop(queue.clone());
                queue.push(1);
                panic!("the data set failed");
            })
        };
        assert_eq!(queue.pop(), Some(1));
        assert_eq!(queue.pop(), None);
        assert!(producer.join().is_err());

        let queue = Arc::new(Handoff::new(1));
        let producer = {
            let queue = queue.clone();
            std::thread::spawn(move || (0..).take_while(|&i| queue.push(i)).count())
        };
        assert_eq!(queue.pop(), Some(0));
        queue.abandon();
        let pushed = producer.join().unwrap();
        assert!(pushed <= 3, "the producer stopped after {pushed} items");
    }
}
