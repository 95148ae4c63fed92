//! Tests of the parent module, against a real etcd.

use oort_testkit::etcd::EtcdServer;

use super::*;
use crate::ownership::OwnershipEvent;
use crate::suite::{rule, stream};

fn connect(etcd: &EtcdServer, prefix: &str) -> EtcdCatalog {
    let config = EtcdConfig::parse(&format!("etcd://{}/{prefix}", etcd.endpoint)).unwrap();
    EtcdCatalog::connect(&config).unwrap()
}

/// The next ownership event, if one comes `within`.
fn next(events: &mut tokio::sync::mpsc::Receiver<OwnershipEvent>, within: Duration) -> Option<OwnershipEvent> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async { tokio::time::timeout(within, events.recv()).await }).ok().flatten()
}

/// Waits until `done`, at most 5 s.
fn eventually(what: &str, done: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "{what}: not within 5 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn urls_name_the_members_and_the_prefix() {
    let config = EtcdConfig::parse("etcd://a:2379,b:2379").unwrap();
    assert_eq!((config.endpoints, config.prefix.as_str()), (vec!["a:2379".into(), "b:2379".into()], "/oort/"));
    assert_eq!(EtcdConfig::parse("etcd://a:2379/plant/one/").unwrap().prefix, "/plant/one/");
    assert!(EtcdConfig::parse("etcd:///x").unwrap_err().contains("names no etcd member"));
    assert!(EtcdConfig::parse("http://a:2379").is_err());
}

#[test]
fn the_catalog_suite_on_a_real_etcd() {
    let etcd = EtcdServer::start();
    crate::suite::run(&connect(&etcd, "suite"));
}

#[test]
fn instances_with_one_prefix_share_the_catalog_and_its_relations() {
    let etcd = EtcdServer::start();
    let (one, two, other) = (connect(&etcd, "plant"), connect(&etcd, "plant"), connect(&etcd, "elsewhere"));
    one.create_stream(&stream("a")).unwrap();
    two.create_rule(&rule("r"), &["a".into()]).unwrap();
    match one.delete_stream("a") {
        Err(StoreError::InUse { users, .. }) => assert_eq!(users, ["r"]),
        other => panic!("expected InUse, got {other:?}"),
    }
    assert!(matches!(two.create_stream(&stream("a")), Err(StoreError::AlreadyExists { .. })));
    assert!(other.list_streams().unwrap().is_empty(), "another prefix is another catalog");

    // Writers on both instances at once: the limit on keys holds across them.
    let value = |key: String| KeyedValue { key, value: None };
    let (one_ref, two_ref) = (&one, &two);
    let (a, b) = std::thread::scope(|s| {
        let put = move |catalog: &'static str, c: &EtcdCatalog| {
            (0..20).filter(|i| c.put_keyed_state(&[value(format!("{catalog}/{i}"))], 30).is_ok()).count()
        };
        let a = s.spawn(move || put("one", one_ref));
        let b = s.spawn(move || put("two", two_ref));
        (a.join().unwrap(), b.join().unwrap())
    });
    assert_eq!(a + b, 30, "{a} + {b} keys stored");
    assert_eq!(one.list_keyed_state("", None, 100).unwrap().len(), 30);
}

#[test]
fn a_watch_reports_every_instance_s_changes_in_order() {
    let etcd = EtcdServer::start();
    let (one, two) = (connect(&etcd, "w"), connect(&etcd, "w"));
    one.create_stream(&stream("a")).unwrap();
    let mut changes = one.watch().unwrap().expect("a shared catalog is watched");
    two.create_rule(&rule("r"), &["a".into()]).unwrap();
    let mut stopped = rule("r");
    stopped.triggered = Some(false);
    two.update_rule(&stopped, &["a".into()]).unwrap();
    let plant = Connection { name: "plant".into(), r#type: "mqtt".into(), ..Default::default() };
    two.create_connection(&plant).unwrap();
    one.delete_rule("r").unwrap();
    two.delete_connection("plant").unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let seen: Vec<CatalogChange> = runtime.block_on(async {
        let mut seen = Vec::new();
        while seen.len() < 5 {
            let next = tokio::time::timeout(Duration::from_secs(10), changes.recv()).await;
            seen.push(next.expect("a change in time").expect("the watch goes on"));
        }
        seen
    });
    assert_eq!(
        seen,
        [
            CatalogChange::Rule(Box::new(rule("r"))),
            CatalogChange::Rule(Box::new(stopped)),
            CatalogChange::Connection(plant),
            CatalogChange::Deleted(EntityKind::Rule, "r".into()),
            CatalogChange::Deleted(EntityKind::Connection, "plant".into()),
        ]
    );
}

#[test]
fn a_rule_has_one_owner_and_a_dead_owner_s_rules_are_released() {
    let etcd = EtcdServer::start();
    let (one, two) = (connect(&etcd, "o"), connect(&etcd, "o"));
    let a = one.ownership("a").unwrap().unwrap();
    let b = two.ownership("b").unwrap().unwrap();
    let mut events = b.events().expect("the events, once");
    assert!(b.events().is_none());
    assert!(a.claim("r").unwrap());
    assert!(a.claim("r").unwrap(), "claiming again what it owns");
    assert!(!b.claim("r").unwrap());
    assert_eq!(b.owner("r").as_deref(), Some("a"), "a claim that fails learns the owner");
    b.release("r");
    assert_eq!(a.owner("r").as_deref(), Some("a"), "only the owner gives a rule up");
    a.release("r");
    assert_eq!(next(&mut events, Duration::from_secs(10)), Some(OwnershipEvent::Released("r".into())));
    assert!(b.claim("r").unwrap());
    // The owner dies (its lease is no longer kept alive): its rules are freed.
    drop(b);
    assert!(a.claim("s").unwrap());
    drop((a, one));
    let started = std::time::Instant::now();
    assert_eq!(next(&mut events, Duration::from_secs(20)), Some(OwnershipEvent::Released("s".into())));
    assert!(started.elapsed() >= Duration::from_secs(2), "after the lease's time to live");
    assert_eq!(two.ownership("c").unwrap().unwrap().owner("s"), None);
}

#[test]
fn each_server_knows_the_owners_from_its_watch_without_asking_etcd() {
    let etcd = EtcdServer::start();
    let (one, two) = (connect(&etcd, "k"), connect(&etcd, "k"));
    let a = one.ownership("a").unwrap().unwrap();
    assert!(a.claim("before").unwrap());
    let b = two.ownership("b").unwrap().unwrap();
    assert_eq!(b.owner("before").as_deref(), Some("a"), "read at start");

    assert!(a.claim("r").unwrap());
    assert_eq!(a.owner("r").as_deref(), Some("a"), "its own claim, at once");
    eventually("b hears of a's claim", || b.owner("r").as_deref() == Some("a"));
    a.release("r");
    assert_eq!(a.owner("r"), None, "its own release, at once");
    eventually("b hears of a's release", || b.owner("r").is_none());
    assert!(b.claim("r").unwrap());
    eventually("a hears of b's claim", || a.owner("r").as_deref() == Some("b"));
    b.resign();
    eventually("a hears that b gave up its rules", || a.owner("r").is_none());
    assert_eq!(a.owner("before").as_deref(), Some("a"));

    // No call to etcd: the answers come with etcd gone.
    drop(etcd);
    let started = std::time::Instant::now();
    assert_eq!((a.owner("before").as_deref(), b.owner("before").as_deref()), (Some("a"), Some("a")));
    assert!(started.elapsed() < Duration::from_millis(100), "{:?}", started.elapsed());
}

#[test]
fn a_restart_request_reaches_the_other_servers_and_leaves_no_key() {
    let etcd = EtcdServer::start();
    let (one, two, three) = (connect(&etcd, "x"), connect(&etcd, "x"), connect(&etcd, "x"));
    let (a, b, c) = (
        one.ownership("a").unwrap().unwrap(),
        two.ownership("b").unwrap().unwrap(),
        three.ownership("c").unwrap().unwrap(),
    );
    let (mut a_events, mut b_events) = (a.events().unwrap(), b.events().unwrap());
    let mut c_events = c.events().unwrap();
    b.request_restart("r").unwrap();
    a.request_restart("s").unwrap();
    let within = Duration::from_secs(10);
    assert_eq!(next(&mut a_events, within), Some(OwnershipEvent::Restart("r".into())));
    assert_eq!(next(&mut b_events, within), Some(OwnershipEvent::Restart("s".into())), "not its own request");
    assert_eq!(next(&mut c_events, within), Some(OwnershipEvent::Restart("r".into())), "every other server hears");
    assert_eq!(next(&mut c_events, within), Some(OwnershipEvent::Restart("s".into())));
    assert_eq!(next(&mut a_events, Duration::from_millis(500)), None, "not its own request");
    assert!(one.scan("restarts/", None, 0).unwrap().is_empty(), "no key outlives its request");
}

#[test]
fn each_server_reports_on_a_rule_until_it_withdraws_or_dies() {
    let etcd = EtcdServer::start();
    let (one, two) = (connect(&etcd, "o"), connect(&etcd, "o"));
    let a = one.ownership("a").unwrap().unwrap();
    let b = two.ownership("b").unwrap().unwrap();
    a.report("r", Some(b"0,1".to_vec())).unwrap();
    b.report("r", Some(b"2".to_vec())).unwrap();
    b.report("other", Some(b"3".to_vec())).unwrap();
    let reports = |o: &std::sync::Arc<dyn Ownership>| o.reports("r").unwrap();
    assert_eq!(reports(&a), [("a".to_owned(), b"0,1".to_vec()), ("b".to_owned(), b"2".to_vec())]);
    a.report("r", None).unwrap();
    assert_eq!(reports(&b), [("b".to_owned(), b"2".to_vec())]);
    a.report("r", Some(b"0".to_vec())).unwrap();
    drop((b, two));
    let started = std::time::Instant::now();
    while reports(&a).len() > 1 {
        assert!(started.elapsed() < Duration::from_secs(20), "a dead server's reports go with its lease");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(reports(&a), [("a".to_owned(), b"0".to_vec())]);
}

#[test]
fn a_plugin_archive_is_kept_in_chunks_and_checked_against_its_hash() {
    let etcd = EtcdServer::start();
    let catalog = connect(&etcd, "archives");
    // Three chunks and a bit, of bytes that differ from chunk to chunk.
    let archive: Vec<u8> = (0..ARCHIVE_CHUNK * 3 + 100).map(|i| (i % 251) as u8).collect();
    let sha = sha256_hex(&archive);
    catalog.put_plugin_archive(&sha, &archive).unwrap();
    assert_eq!(catalog.get_plugin_archive(&sha).unwrap(), archive);
    let other = sha256_hex(b"other");
    assert!(matches!(catalog.get_plugin_archive(&other), Err(StoreError::Corrupt { .. })), "none kept");
    catalog.delete_plugin_archive(&sha).unwrap();
    assert!(catalog.get_plugin_archive(&sha).is_err());
    // A record names its archive; the watch reports plugins.
    let mut changes = catalog.watch().unwrap().unwrap();
    let record = PluginRecord { name: "p".into(), sha256: sha.clone(), ..Default::default() };
    catalog.put_plugin(&record).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let change = runtime.block_on(async { tokio::time::timeout(Duration::from_secs(5), changes.recv()).await });
    assert_eq!(change.unwrap(), Some(CatalogChange::Plugin(record)));
}

#[test]
fn calls_go_on_through_the_other_members_when_one_dies() {
    let mut cluster = oort_testkit::etcd::EtcdCluster::start(3);
    let config = EtcdConfig::parse(&format!("etcd://{}/members", cluster.endpoints())).unwrap();
    let catalog = EtcdCatalog::connect(&config).unwrap();
    catalog.create_stream(&stream("before")).unwrap();
    cluster.kill(0);
    // Once the others have a leader (if it was the one that died) and the
    // dead member is out of the balance (within a check), every call goes to them.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut in_a_row = 0;
    while in_a_row < 5 {
        in_a_row = if catalog.list_streams().is_ok() { in_a_row + 1 } else { 0 };
        assert!(std::time::Instant::now() < deadline, "calls still fail 10 s after a member died");
        std::thread::sleep(Duration::from_millis(100));
    }
    catalog.create_stream(&stream("after0")).unwrap();
    for i in 1..20 {
        catalog.create_stream(&stream(&format!("after{i}"))).unwrap();
        assert_eq!(catalog.list_streams().unwrap().len(), i + 2);
    }
    // A catalog started while a member is down does not wait for it.
    let again = EtcdCatalog::connect(&config).unwrap();
    assert_eq!(again.list_streams().unwrap().len(), 21);
}

#[test]
fn an_etcd_that_does_not_answer_is_an_error_in_time() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut config = EtcdConfig::parse(&format!("etcd://127.0.0.1:{port}")).unwrap();
    config.timeout = Duration::from_millis(500);
    let started = std::time::Instant::now();
    let error = EtcdCatalog::connect(&config).err().expect("nothing listens there");
    assert!(matches!(error, StoreError::Etcd(_)), "{error}");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
}
