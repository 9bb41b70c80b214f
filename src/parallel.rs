//! Work spread over the cores, for the few steps whose cost grows with the number of stacks
//! (loading them, rendering their drop-ins).

use std::sync::atomic::{AtomicUsize, Ordering};

/// `f` of every item, in the items' order, on up to one thread per core but no more than one per
/// `per_thread` items (a thread costs about what a few items do). Each thread, the caller's
/// included, takes the next item when it is done with one: items differ in cost (a stack that
/// requires 50 others, one that requires none), and fixed shares would leave a core idle.
pub fn map<T: Sync, R: Send>(items: &[T], per_thread: usize, f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism()
        .map_or(1, std::num::NonZero::get)
        .min(items.len().div_ceil(per_thread.max(1)))
        .max(1);
    if threads == 1 {
        return items.iter().map(f).collect();
    }
    let next = AtomicUsize::new(0);
    let work = || {
        let mut done = Vec::new();
        loop {
            let index = next.fetch_add(1, Ordering::Relaxed);
            let Some(item) = items.get(index) else {
                break done;
            };
            done.push((index, f(item)));
        }
    };
    let mut results: Vec<(usize, R)> = std::thread::scope(|scope| {
        let helpers: Vec<_> = (1..threads).map(|_| scope.spawn(work)).collect();
        let mut results = work();
        for helper in helpers {
            results.extend(
                helper
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            );
        }
        results
    });
    results.sort_by_key(|(index, _)| *index);
    results.into_iter().map(|(_, result)| result).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn results_come_back_in_the_items_order_whatever_each_costs() {
        let items: Vec<u64> = (0..100).collect();
        let squares = super::map(&items, 1, |&n| {
            // Uneven work, so threads finish items out of order.
            std::thread::sleep(std::time::Duration::from_micros((n % 7) * 50));
            n * n
        });
        assert_eq!(squares, items.iter().map(|n| n * n).collect::<Vec<_>>());
        assert!(super::map(&[] as &[u64], 8, |&n| n).is_empty());
    }
}
