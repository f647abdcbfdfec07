//! The server's one policy for a poisoned lock: take it anyway.
//!
//! A lock is poisoned when a thread panicked while holding it. Every `std` lock in
//! this server guards state that each critical section changes in one step (an
//! insert, a slot, a flag, a handle swapped whole), so what a panicking holder left
//! behind is still consistent. Refusing it would turn one panicked task into a
//! server that fails every later request that needs the lock, and silently skipping
//! the update (the other common choice) would lose it. So every lock is taken
//! through these, and none through `lock().unwrap()` or `lock().ok()`.

use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// [`Mutex::lock`] under this module's policy.
pub trait Locked<T> {
    fn locked(&self) -> MutexGuard<'_, T>;
}

impl<T> Locked<T> for Mutex<T> {
    fn locked(&self) -> MutexGuard<'_, T> {
        self.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// [`RwLock::read`] and [`RwLock::write`] under this module's policy.
pub trait ReadWriteLocked<T> {
    fn reading(&self) -> RwLockReadGuard<'_, T>;
    fn writing(&self) -> RwLockWriteGuard<'_, T>;
}

impl<T> ReadWriteLocked<T> for RwLock<T> {
    fn reading(&self) -> RwLockReadGuard<'_, T> {
        self.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn writing(&self) -> RwLockWriteGuard<'_, T> {
        self.write().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_poisoned_by_a_panic_is_still_taken_with_its_data() {
        let mutex = std::sync::Arc::new(Mutex::new(1));
        let poisoner = mutex.clone();
        let _ = std::thread::spawn(move || {
            let mut value = poisoner.lock().unwrap();
            *value = 2;
            panic!("poisons the lock");
        })
        .join();
        assert!(mutex.is_poisoned());
        assert_eq!(*mutex.locked(), 2);
    }
}
