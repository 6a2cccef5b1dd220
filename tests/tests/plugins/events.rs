//! Events reach each subscriber exactly once, failing ones are parked and
//! replayable, and kernel changes are events too.

use crate::{person, plugin_dir, probe, site_tree};
use lifelong_harness::TestKernel;
use serde_json::json;

/// Two subscribers, one delivered before a restart and one after: each
/// handles the event exactly once.
async fn exactly_once_across_restart(k: TestKernel) {
    let probe_p = probe(&k).await;
    let other = k.load(plugin_dir("other")).await;
    let anon = k.anonymous();
    let (s, _) = probe_p
        .post("/notes/x", Some(json!({ "body": "b" })), &anon)
        .await
        .unwrap();
    assert_eq!(s, 201);
    // Only `other` is delivered to before the "crash".
    let pass = k.deliver(&[&other]).await;
    assert_eq!(pass.delivered, 1);
    assert_eq!(
        other.get("/receipts", &anon).await.unwrap().1,
        json!({ "events": [1] })
    );
    let k = k.restart().await;
    let probe_p = probe(&k).await;
    let other = k.load(plugin_dir("other")).await;
    let pass = k.deliver(&[&probe_p, &other]).await;
    assert_eq!(
        pass.delivered, 1,
        "only the pending subscriber is delivered to"
    );
    assert_eq!(k.deliver(&[&probe_p, &other]).await.delivered, 0);
    assert_eq!(
        probe_p.get("/receipts", &anon).await.unwrap().1,
        json!({ "events": [1] })
    );
    assert_eq!(
        other.get("/receipts", &anon).await.unwrap().1,
        json!({ "events": [1] })
    );
    k.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_reach_each_subscriber_once_across_a_restart_sqlite() {
    exactly_once_across_restart(TestKernel::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_reach_each_subscriber_once_across_a_restart_postgres() {
    exactly_once_across_restart(TestKernel::postgres().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_delivery_is_parked_and_can_be_replayed() {
    let mut k = TestKernel::sqlite().await;
    k.max_attempts = 1;
    let probe_p = probe(&k).await;
    let other = k.load(plugin_dir("other")).await;
    let anon = k.anonymous();
    assert_eq!(
        probe_p
            .post("/notes/fail", Some(json!({ "body": "b" })), &anon)
            .await
            .unwrap()
            .0,
        201
    );
    let pass = k.deliver(&[&probe_p, &other]).await;
    assert_eq!((pass.delivered, pass.failed, pass.parked), (1, 1, 1));
    let parked = kernel::plugins::events::parked(&k.kernel, 10)
        .await
        .unwrap();
    assert_eq!(parked.len(), 1);
    assert_eq!(
        (parked[0].subscriber.as_str(), parked[0].name.as_str()),
        ("other", "probe.touched")
    );
    assert_eq!(
        parked[0].last_error.as_deref(),
        Some("the handler returned an error: not ready for topic fail")
    );
    assert_eq!(
        other.get("/receipts", &anon).await.unwrap().1,
        json!({ "events": [] }),
        "the failed delivery wrote nothing"
    );
    assert_eq!(
        k.deliver(&[&other]).await,
        kernel::plugins::events::Pass::default(),
        "parked stays parked"
    );
    assert_eq!(other.post("/switch", None, &anon).await.unwrap().0, 201);
    assert!(
        kernel::plugins::events::replay(&k.kernel, parked[0].event_id, "other")
            .await
            .unwrap()
    );
    assert_eq!(k.deliver(&[&other]).await.delivered, 1);
    assert_eq!(
        other.get("/receipts", &anon).await.unwrap().1,
        json!({ "events": [parked[0].event_id] })
    );
    assert!(kernel::plugins::events::parked(&k.kernel, 10)
        .await
        .unwrap()
        .is_empty());
    k.cleanup().await;
}

/// Kernel changes reach subscribing plugins as `kernel.<action>` events,
/// written with the change and carrying only masked personal data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kernel_events_reach_subscribers() {
    let k = TestKernel::sqlite().await;
    let other = k.load(plugin_dir("other")).await;
    site_tree(&k, &[("CITY", "city", None)]).await;
    let (_, id_number) = person(&k, 7, (1950, 1, 1), kernel::idnumber::Sex::Female, "CITY").await;
    let pass = k.deliver(&[&other]).await;
    assert_eq!(
        pass.delivered, 1,
        "only person.create is subscribed; site.create is not"
    );
    assert_eq!(
        other.get("/receipt-names", &k.anonymous()).await.unwrap().1,
        json!({ "names": ["kernel.person.create"] })
    );
    let (payload,): (String,) =
        sqlx::query_as("SELECT payload FROM plugin_outbox WHERE name = 'kernel.person.create'")
            .fetch_one(k.kernel.db.reader())
            .await
            .unwrap();
    assert!(
        !payload.contains(&id_number),
        "the event must not carry the full ID number"
    );
    assert!(payload.contains("**********"), "{payload}");
    assert_eq!(k.deliver(&[&other]).await.delivered, 0);
    k.cleanup().await;
}

/// Served through the registry, a subscriber gets the events of the sites
/// where it is enabled; events elsewhere are marked done without running it
/// (enabling it later does not replay them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_follow_where_the_subscriber_is_enabled() {
    let k = TestKernel::sqlite().await;
    site_tree(&k, crate::TREE).await;
    let other = k.install(&k.package(plugin_dir("other")).await).await;
    k.enable("other", "T1").await;
    person(&k, 1, (1950, 1, 1), kernel::idnumber::Sex::Female, "T1-V1").await;
    person(&k, 3, (1950, 1, 1), kernel::idnumber::Sex::Female, "T2").await;
    let pass = k.deliver(&[&other]).await;
    assert_eq!((pass.delivered, pass.skipped), (1, 1));
    let (_, v) = other
        .at("T1")
        .get("/receipt-names", &k.anonymous())
        .await
        .unwrap();
    assert_eq!(v, json!({ "names": ["kernel.person.create"] }));
    k.enable("other", "T2").await;
    let pass = k.deliver(&[&other]).await;
    assert_eq!(
        (pass.delivered, pass.skipped),
        (0, 0),
        "nothing is replayed"
    );
    person(&k, 5, (1950, 1, 1), kernel::idnumber::Sex::Male, "T2").await;
    assert_eq!(k.deliver(&[&other]).await.delivered, 1);
    k.cleanup().await;
}

/// Deliveries to a subscriber removed after they were fanned out wait a
/// minute at a time instead of crowding the head of the queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_to_a_removed_subscriber_step_aside() {
    let k = TestKernel::sqlite().await;
    site_tree(&k, crate::TREE).await;
    let other = k.install(&k.package(plugin_dir("other")).await).await;
    k.enable("other", "CITY").await;
    person(&k, 1, (1950, 1, 1), kernel::idnumber::Sex::Female, "T1").await;
    kernel::plugins::events::fan_out(&k.kernel, |e| k.runtime.subscribers_of(e))
        .await
        .unwrap();
    k.registry
        .remove(&kernel::authz::Actor::System("test"), "other", false)
        .await
        .unwrap();
    let pass = k.deliver(&[&other]).await;
    assert_eq!((pass.delivered, pass.waiting), (0, 1));
    assert_eq!(k.deliver(&[&other]).await.waiting, 0, "not due again yet");
    k.cleanup().await;
}
