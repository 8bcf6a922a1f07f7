//! The shared test helpers themselves: the waits return as soon as their condition holds and
//! give up at their deadline, also on a check that never finishes; the stream readers find
//! the stream that captures a subject.

use std::{
    future,
    time::{Duration, Instant},
};

use polyshop_platform::testing::{
    NatsServer, eventually, eventually_some, expect_published, jetstream, last_event, last_message,
    poll_until, published,
};

#[tokio::test]
async fn a_wait_returns_the_first_value_its_check_yields() {
    let mut checks = 0;
    let value = eventually_some("the third check", Duration::from_secs(5), async || {
        checks += 1;
        (checks == 3).then_some(checks * 10)
    })
    .await;
    assert_eq!(value, 30);
    let mut more = 0;
    eventually("the second check", async || {
        more += 1;
        more == 2
    })
    .await;
}

#[tokio::test]
async fn a_wait_gives_up_at_its_deadline_even_on_a_check_that_never_finishes() {
    let started = Instant::now();
    let never = poll_until(Duration::from_millis(200), async || None::<()>).await;
    assert!(never.is_none());
    let hung = poll_until(Duration::from_millis(200), async || {
        future::pending::<Option<()>>().await
    })
    .await;
    assert!(hung.is_none());
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
#[should_panic(expected = "waiting for: the impossible")]
async fn a_wait_that_times_out_panics_with_what_it_waited_for() {
    eventually_some("the impossible", Duration::from_millis(50), async || {
        None::<()>
    })
    .await;
}

#[tokio::test]
async fn the_stream_readers_find_the_stream_that_captures_a_subject() {
    let nats = NatsServer::start().await;
    assert_eq!(published(&nats, "test.a").await, 0, "no stream yet");
    assert!(last_message(&nats, "test.a").await.is_none());

    let js = jetstream(&nats).await;
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "TEST".into(),
        subjects: vec!["test.>".into()],
        ..Default::default()
    })
    .await
    .expect("stream");
    for seconds in [1, 2] {
        let payload = prost::Message::encode_to_vec(&prost_types::Duration { seconds, nanos: 0 });
        js.publish("test.a", payload.into())
            .await
            .expect("publish")
            .await
            .expect("ack");
    }
    expect_published(&nats, "test.a", 2).await;
    assert_eq!(published(&nats, "test.b").await, 0, "another subject");
    let last: prost_types::Duration = last_event(&nats, "test.a").await;
    assert_eq!(last.seconds, 2);
}
