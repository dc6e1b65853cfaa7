//! Records read from the durable store and used for a few seconds before they are read
//! again: the token endpoint would otherwise read and parse its client and citizen on every
//! request. A change made by another process (a client removed, a profile corrected) takes
//! effect within the time-to-live.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A map of recently read records, each kept for `ttl`, at most `max` of them.
pub(crate) struct ShortCache<T> {
    ttl: Duration,
    max: usize,
    entries: Mutex<HashMap<String, (Instant, Arc<T>)>>,
}

impl<T> ShortCache<T> {
    pub(crate) fn new(ttl: Duration, max: usize) -> Self {
        ShortCache { ttl, max, entries: Mutex::new(HashMap::new()) }
    }

    /// The record under `key`, if it was read less than `ttl` ago.
    fn get(&self, key: &str) -> Option<Arc<T>> {
        let entries = self.entries.lock().ok()?;
        let (read, value) = entries.get(key)?;
        (read.elapsed() < self.ttl).then(|| Arc::clone(value))
    }

    /// The record under `key`: the cached one, or the one `read` finds (then cached; a
    /// record `read` does not find is forgotten).
    pub(crate) async fn get_or_read<E, F>(&self, key: &str, read: impl FnOnce() -> F) -> Result<Option<Arc<T>>, E>
    where
        F: Future<Output = Result<Option<T>, E>>,
    {
        if let Some(value) = self.get(key) {
            return Ok(Some(value));
        }
        match read().await? {
            Some(value) => {
                let value = Arc::new(value);
                self.put(key, Arc::clone(&value));
                Ok(Some(value))
            }
            None => {
                self.forget(key);
                Ok(None)
            }
        }
    }

    /// Keeps `value` under `key` from now; when full, expired records go first, and if
    /// none has expired, all of them.
    fn put(&self, key: &str, value: Arc<T>) {
        let Ok(mut entries) = self.entries.lock() else { return };
        if entries.len() >= self.max && !entries.contains_key(key) {
            let ttl = self.ttl;
            entries.retain(|_, (read, _)| read.elapsed() < ttl);
            if entries.len() >= self.max {
                entries.clear();
            }
        }
        entries.insert(key.to_owned(), (Instant::now(), value));
    }

    fn forget(&self, key: &str) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_expire_and_the_cache_stays_bounded() {
        let cache = ShortCache::new(Duration::from_millis(50), 2);
        cache.put("a", Arc::new(1));
        assert_eq!(cache.get("a").as_deref(), Some(&1));
        cache.forget("a");
        assert_eq!(cache.get("a"), None);
        cache.put("a", Arc::new(1));
        cache.put("b", Arc::new(2));
        cache.put("c", Arc::new(3));
        let held = ["a", "b", "c"].iter().filter(|k| cache.get(k).is_some()).count();
        assert!(held <= 2, "never more than max records");
        assert_eq!(cache.get("c").as_deref(), Some(&3), "the newest is kept");
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(cache.get("c"), None, "expired");
    }
}
