//! The worker-education rules as served, on SQLite and PostgreSQL, in one
//! test city per backend: enterprises and their credit codes, staff by hand
//! and by CSV (all or nothing), programs and an order through its states,
//! hours (never verified by the person, recorded once in the credit bank,
//! reversed with a reason), compliance (59 vs 60 professional hours at 90,
//! cadre rules, a rule change that leaves a closed year alone), rates, the
//! report, funds, bad input and no ID numbers.

//! Each part of the city's story is a module under `rules/`, run in order
//! on the same city.

#[path = "rules/bad_input.rs"]
mod bad_input;
mod common;
#[path = "rules/compliance.rs"]
mod compliance;
#[path = "rules/enterprises.rs"]
mod enterprises;
#[path = "rules/funds.rs"]
mod funds;
#[path = "rules/hours.rs"]
mod hours;
#[path = "rules/orders.rs"]
mod orders;
#[path = "rules/rates.rs"]
mod rates;

use common::City;
use lifelong_harness::TestKernel;

async fn rules(k: TestKernel) {
    let c = City::new(k).await;
    enterprises::enterprises_and_staff(&c).await;
    orders::programs_and_orders(&c).await;
    hours::hours(&c).await;
    compliance::compliance(&c).await;
    rates::rates_and_report(&c).await;
    funds::funds(&c).await;
    bad_input::bad_input(&c).await;
    c.k.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_sqlite() {
    rules(TestKernel::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_postgres() {
    rules(TestKernel::postgres().await).await;
}
