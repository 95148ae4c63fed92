use std::sync::Arc;

use serde_json::json;

use super::*;
use crate::value::Value;

fn result(n: u64) -> CachedResult {
    let row: Map = [(Arc::from("n"), Value::Int(n as i64))].into_iter().collect();
    CachedResult { sequence: n, rows: vec![row] }
}

fn sizes(memory: usize, disk: usize, page: usize) -> CacheSizes {
    CacheSizes { memory, disk, page }
}

/// Sends everything the cache holds, in order.
fn drain(cache: &mut SinkCache) -> Vec<u64> {
    let mut sent = Vec::new();
    while let Some(front) = cache.front().unwrap() {
        sent.push(front.sequence);
        cache.pop().unwrap();
    }
    sent
}

fn page_files(dir: &Path) -> usize {
    fs::read_dir(dir).unwrap().filter(|e| e.as_ref().unwrap().path().extension() == Some("page".as_ref())).count()
}

#[test]
fn results_come_out_in_order_through_memory_and_disk() {
    let dir = tempfile::tempdir().unwrap();
    let mut cache = SinkCache::open(dir.path(), sizes(4, 100, 2), u64::MAX).unwrap();
    for n in 0..11 {
        assert_eq!(cache.push(result(n)).unwrap(), 0);
    }
    assert_eq!(cache.len(), 11);
    assert!(cache.in_memory <= 4 + 2, "{} in memory", cache.in_memory);
    assert!(page_files(dir.path()) >= 3, "the newest full pages went to disk");
    assert_eq!(drain(&mut cache), (0..11).collect::<Vec<_>>());
    assert!(cache.is_empty());
    assert_eq!(page_files(dir.path()), 0, "a page sent is deleted");
}

#[test]
fn what_was_persisted_is_there_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut cache = SinkCache::open(dir.path(), sizes(4, 100, 2), u64::MAX).unwrap();
    for n in 0..7 {
        cache.push(result(n)).unwrap();
    }
    cache.front().unwrap();
    cache.pop().unwrap();
    cache.pop().unwrap();
    cache.persist().unwrap();
    cache.push(result(7)).unwrap();
    drop(cache); // a crash: result 7 was only in memory

    let mut cache = SinkCache::open(dir.path(), sizes(4, 100, 2), u64::MAX).unwrap();
    assert_eq!(cache.len(), 5);
    assert_eq!(drain(&mut cache), vec![2, 3, 4, 5, 6]);
}

#[test]
fn past_its_bound_the_oldest_page_is_dropped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let mut cache = SinkCache::open(dir.path(), sizes(2, 4, 2), u64::MAX).unwrap();
    let dropped: usize = (0..10).map(|n| cache.push(result(n)).unwrap()).sum();
    assert_eq!(dropped, 4);
    assert_eq!(cache.len(), 6);
    assert_eq!(drain(&mut cache), vec![4, 5, 6, 7, 8, 9]);
}

#[test]
fn past_its_bound_in_bytes_the_oldest_page_is_dropped_too() {
    let dir = tempfile::tempdir().unwrap();
    let mut cache = SinkCache::open(dir.path(), sizes(2, 1000, 2), u64::MAX).unwrap();
    cache.push(result(0)).unwrap();
    cache.push(result(1)).unwrap();
    cache.persist().unwrap();
    let page_bytes = cache.disk_bytes;
    drop(cache);
    let mut cache = SinkCache::open(dir.path(), sizes(2, 1000, 2), 3 * page_bytes).unwrap();
    assert_eq!(cache.disk_bytes, page_bytes, "the pages left on disk count");
    let dropped: usize = (2..12).map(|n| cache.push(result(n)).unwrap()).sum();
    assert!(cache.disk_bytes <= 3 * page_bytes, "{} bytes on disk", cache.disk_bytes);
    assert_eq!(dropped + cache.len(), 12);
    assert!(dropped >= 4, "{dropped} dropped");
    assert_eq!(drain(&mut cache), (dropped as u64..12).collect::<Vec<_>>(), "the oldest went first");
}

#[test]
fn a_damaged_page_is_dropped_with_its_count_and_the_rest_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let mut cache = SinkCache::open(dir.path(), sizes(2, 100, 2), u64::MAX).unwrap();
    for n in 0..6 {
        cache.push(result(n)).unwrap();
    }
    cache.persist().unwrap();
    drop(cache);
    let second = dir.path().join(page_name(1, 2));
    let mut bytes = fs::read(&second).unwrap();
    *bytes.last_mut().unwrap() ^= 0xff;
    fs::write(&second, bytes).unwrap();

    let mut cache = SinkCache::open(dir.path(), sizes(2, 100, 2), u64::MAX).unwrap();
    let mut sent = Vec::new();
    let mut lost = 0;
    loop {
        match cache.front() {
            Ok(Some(front)) => sent.push(front.sequence),
            Ok(None) => break,
            Err(SinkCacheError::Damaged { lost: n, .. }) => {
                lost += n;
                continue;
            }
            Err(e) => panic!("{e}"),
        }
        cache.pop().unwrap();
    }
    assert_eq!((sent, lost), (vec![0, 1, 4, 5], 2));
}

#[test]
fn clear_drops_everything_on_disk_too() {
    let dir = tempfile::tempdir().unwrap();
    let mut cache = SinkCache::open(dir.path(), sizes(2, 100, 2), u64::MAX).unwrap();
    for n in 0..5 {
        cache.push(result(n)).unwrap();
    }
    cache.persist().unwrap();
    assert_eq!(cache.clear().unwrap(), 5);
    assert_eq!(page_files(dir.path()), 0);
    assert!(SinkCache::open(dir.path(), sizes(2, 100, 2), u64::MAX).unwrap().is_empty());
}

#[test]
fn an_action_keeps_its_cache_until_it_changes_or_its_rule_is_deleted() {
    let root = tempfile::tempdir().unwrap();
    let caches = SinkCaches::new(root.path());
    let action = |props: serde_json::Value| ActionDefinition {
        sink_type: "rest".into(),
        props: props.as_object().unwrap().clone(),
    };
    let first = caches.dir("r1", 0, &action(json!({"url": "http://a", "enableCache": true})));
    let tuned = caches.dir("r1", 0, &action(json!({"url": "http://a", "enableCache": true, "resendInterval": 9})));
    let other = caches.dir("r1", 0, &action(json!({"url": "http://b", "enableCache": true})));
    assert_eq!(first, tuned, "the cache's own properties do not change its place");
    assert_ne!(first, other);
    assert!(!first.starts_with(root.path().join("r1")), "the rule id is hex, not a path");

    let mut cache = SinkCache::open(&first, sizes(2, 100, 2), u64::MAX).unwrap();
    for n in 0..3 {
        cache.push(result(n)).unwrap();
    }
    cache.persist().unwrap();
    assert_eq!(caches.retain("r1", std::slice::from_ref(&first)).unwrap(), 0);
    assert!(first.exists());
    assert_eq!(caches.retain("r1", &[other]).unwrap(), 3, "the results of the changed action are counted");
    assert!(!first.exists());
    SinkCache::open(&first, sizes(2, 100, 2), u64::MAX).unwrap();
    caches.forget("r1").unwrap();
    assert!(!first.exists());
}

#[test]
fn the_cache_properties_are_ekuipers() {
    let config = |props: serde_json::Value| SinkCacheConfig::from_props(props.as_object().unwrap());
    assert_eq!(config(json!({"memoryCacheThreshold": 10})).unwrap(), None, "only with enableCache");
    let defaults = config(json!({"enableCache": true})).unwrap().unwrap();
    assert_eq!(defaults.sizes, sizes(1024, 1_024_000, 256));
    assert_eq!(
        (defaults.alter_queue, defaults.priority, defaults.clean_at_stop),
        (false, ResendPriority::Equal, false)
    );
    let set = config(json!({
        "enableCache": "true", "memoryCacheThreshold": 300, "maxDiskCache": 1000, "bufferPageSize": 100,
        "resendInterval": "250ms", "cleanCacheAtStop": true, "resendAlterQueue": true, "resendPriority": -1,
        "resendIndicatorField": "resent"
    }))
    .unwrap()
    .unwrap();
    assert_eq!(set.sizes, sizes(300, 1000, 100));
    assert_eq!(set.resend_interval, std::time::Duration::from_millis(250));
    assert_eq!(set.priority, ResendPriority::NewFirst);
    assert_eq!(set.indicator_field.as_deref(), Some("resent"));
    let rounded = config(json!({"enableCache": true, "memoryCacheThreshold": 150, "bufferPageSize": 100}));
    assert_eq!(rounded.unwrap().unwrap().sizes.memory, 200, "a whole number of pages, as eKuiper");
    assert_eq!(
        config(json!({"enableCache": true, "resendInterval": 40})).unwrap().unwrap().resend_interval.as_millis(),
        40
    );

    let refused = |props: serde_json::Value| config(props).unwrap_err().to_string();
    assert!(refused(json!({"enableCache": 1})).contains("`enableCache` must be true or false"));
    assert!(refused(json!({"enableCache": true, "maxDiskCache": -1})).contains("`maxDiskCache`"));
    assert!(refused(json!({"enableCache": true, "bufferPageSize": 0})).contains("at least 1"));
    assert!(refused(json!({"enableCache": true, "memoryCacheThreshold": 1u64 << 30})).contains("at most 1048576"));
    assert!(refused(json!({"enableCache": true, "bufferPageSize": 1u64 << 30})).contains("at most"));
    assert!(refused(json!({"enableCache": true, "resendPriority": 2})).contains("-1, 0 or 1"));
    assert!(refused(json!({"enableCache": true, "resendInterval": "soon"})).contains("`resendInterval`"));
    assert!(refused(json!({"enableCache": true, "resendDestination": "t2"})).contains("not supported yet"));
}
