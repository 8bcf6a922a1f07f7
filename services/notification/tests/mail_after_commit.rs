//! Mail after commit: a batch of events applied in one transaction that fails on its last
//! event is rolled back and applied again one event at a time; the mail of the good events
//! must still go out once each. Counted at a fake SMTP relay by Message-ID.

mod common;

use polyshop::{notification::v1::NotificationSent, user::v1 as user};
use polyshop_platform::events::dlq;
use polyshop_platform::testing::{EVENTUALLY, eventually_some};
use prost::Message;

use common::{RawEvent, Running, fake_smtp, message_ids, registered, start_with_backlog};

/// The Message-ID of the one notification `user_id` has.
async fn message_id_of(app: &Running, user_id: &str) -> String {
    let found = app.wait_for(user_id, 1).await;
    assert_eq!(found.len(), 1, "{found:#?}");
    format!("<{}@polyshop.local>", found[0].notification_id)
}

/// Every `NotificationSent` in the stream, by notification id.
async fn announced(app: &Running) -> Vec<(String, String)> {
    let mut stream = app
        .js
        .get_stream("POLYSHOP_NOTIFICATION")
        .await
        .expect("stream");
    let state = stream.info().await.expect("stream info").state.clone();
    let mut out = Vec::new();
    for sequence in state.first_sequence..=state.last_sequence {
        if let Ok(raw) = stream.get_raw_message(sequence).await {
            let sent = NotificationSent::decode(raw.payload).expect("NotificationSent");
            let id = sent.notification.expect("notification").notification_id;
            out.push((id, sent.channel));
        }
    }
    out
}

#[tokio::test]
async fn a_batch_with_a_poison_tenth_event_mails_each_of_the_first_nine_once() {
    batch_with_a_poison_tenth_event(None).await;
}

#[tokio::test]
async fn a_batch_with_a_poison_tenth_event_mails_each_of_the_first_nine_once_on_postgres() {
    let Some(url) = polyshop_platform::testing::postgres_database("notification").await else {
        return;
    };
    batch_with_a_poison_tenth_event(Some(url)).await;
}

/// Nine registrations and a poison event, waiting together; then each of the nine mails
/// must reach the relay once, and `NotificationSent` follow each once.
async fn batch_with_a_poison_tenth_event(database_url: Option<String>) {
    let (relay, transcript) = fake_smtp(0).await;
    let users: Vec<String> = (1..=9).map(|i| format!("u-batch-{i}")).collect();
    let mut backlog: Vec<RawEvent> = users
        .iter()
        .map(|u| RawEvent::of(&registered(u, &format!("{u}@example.com"), "Batch")))
        .collect();
    // The tenth decodes but names no user: it can never be applied, so the batch's
    // transaction fails on it and each event is applied again on its own.
    let poison = RawEvent::of(&user::UserRegistered::default());
    let poison_id = poison.id.clone();
    backlog.push(poison);
    let app = start_with_backlog(
        |s| {
            s.notification.smtp_addr = Some(relay.to_string());
            s.notification.database_url = database_url.map(Into::into);
        },
        &backlog,
    )
    .await;

    let mut expected = Vec::new();
    for u in &users {
        expected.push(message_id_of(&app, u).await);
    }
    eventually_some("nine mails at the relay", EVENTUALLY, async || {
        let seen = message_ids(&transcript);
        expected
            .iter()
            .all(|id| seen.contains_key(id))
            .then_some(())
    })
    .await;
    eventually_some("the poison event dead-lettered", EVENTUALLY, async || {
        let letters = dlq::list(&app.js).await.unwrap_or_default();
        letters
            .iter()
            .any(|l| l.event_id == poison_id)
            .then_some(())
    })
    .await;
    // Mail goes out in the order it was recorded: once a later registration's mail is at the
    // relay, anything the batch left behind would have been sent too.
    app.register("u-marker", "marker@example.com", "Marker")
        .await;
    let marker = message_id_of(&app, "u-marker").await;
    eventually_some("the marker's mail", EVENTUALLY, async || {
        message_ids(&transcript).contains_key(&marker).then_some(())
    })
    .await;

    let seen = message_ids(&transcript);
    for (user_id, id) in users.iter().zip(&expected) {
        assert_eq!(seen.get(id), Some(&1), "{user_id}'s mail {id}: {seen:#?}");
    }
    assert_eq!(seen.len(), 10, "nine, the marker, nothing else: {seen:#?}");
    assert_eq!(seen.values().sum::<usize>(), 10, "{seen:#?}");

    // NotificationSent follows each delivery once, with the SMTP channel.
    let events = eventually_some("ten NotificationSent", EVENTUALLY, async || {
        let events = announced(&app).await;
        (events.len() >= 10).then_some(events)
    })
    .await;
    assert_eq!(events.len(), 10, "{events:#?}");
    assert!(
        events.iter().all(|(_, channel)| channel == "smtp"),
        "{events:#?}"
    );
    for id in expected.iter().chain([&marker]) {
        let count = events
            .iter()
            .filter(|(n, _)| id == &format!("<{n}@polyshop.local>"))
            .count();
        assert_eq!(count, 1, "{id}: {events:#?}");
    }
    app.stop().await;
}
