//! Identity rules: the notification id derived from (event, user), which user ids are
//! acceptable (they name mailbox files), and which email addresses may be mailed.

use uuid::{Builder, Uuid};

/// The id of the notification event `source_event_id` causes for `user_id`, and its creation
/// time (epoch ms).
///
/// The id is a UUIDv7 that keeps the first 96 bits of the source event's id (its timestamp and
/// the publisher's monotonic counter) and puts a hash of the pair in the last 32. A
/// redelivered event therefore yields the same id again, which keeps delivery idempotent: the
/// mailbox skips an id it already holds, and SMTP receivers see the same Message-ID. Lists
/// sort by id, so "newest first" follows the order in which the events were made, even for
/// events of the same millisecond. An event id that is not UUIDv7 gets `now` as its time and
/// hash bits for the rest.
pub fn notification_id(source_event_id: &str, user_id: &str, now: i64) -> (String, i64) {
    let first = fnv1a64(0, source_event_id, user_id).to_be_bytes();
    if let Some((event, millis)) = v7_event(source_event_id) {
        let mut bytes = *event.as_bytes();
        bytes[12..].copy_from_slice(&first[..4]);
        return (Uuid::from_bytes(bytes).to_string(), millis);
    }
    let millis = now.max(0);
    let second = fnv1a64(1, source_event_id, user_id).to_be_bytes();
    let mut random = [0u8; 10];
    random[..8].copy_from_slice(&first);
    random[8..].copy_from_slice(&second[..2]);
    let id = Builder::from_unix_timestamp_millis(u64::try_from(millis).unwrap_or(0), &random)
        .into_uuid();
    (id.to_string(), millis)
}

/// A UUIDv7 event id with its epoch-ms timestamp.
fn v7_event(event_id: &str) -> Option<(Uuid, i64)> {
    let uuid = Uuid::parse_str(event_id).ok()?;
    Some((uuid, event_time(event_id)?))
}

/// The epoch-ms timestamp inside a UUIDv7 event id.
fn event_time(event_id: &str) -> Option<i64> {
    let uuid = Uuid::parse_str(event_id).ok()?;
    if uuid.get_version_num() != 7 {
        return None;
    }
    let (secs, nanos) = uuid.get_timestamp()?.to_unix();
    i64::try_from(secs)
        .ok()?
        .checked_mul(1000)?
        .checked_add(i64::from(nanos / 1_000_000))
}

/// FNV-1a over `seed`, the event id, a separator and the user id: stable across builds and
/// platforms, unlike `std`'s hasher.
fn fnv1a64(seed: u8, event_id: &str, user_id: &str) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0100_0000_01b3;
    let seed = [seed];
    let bytes = seed
        .iter()
        .chain(event_id.as_bytes())
        .chain(b"\0")
        .chain(user_id.as_bytes());
    bytes.fold(OFFSET, |hash, b| (hash ^ u64::from(*b)).wrapping_mul(PRIME))
}

/// A user id from an event: non-empty, at most 64 characters of letters, digits, `-` and `_`
/// (user ids are UUIDs; the rule matters because an id names a mailbox file).
///
/// # Errors
/// A description for a field violation.
pub fn check_user_id(user_id: &str) -> Result<(), String> {
    if user_id.is_empty() {
        return Err("is required".into());
    }
    if user_id.len() > 64 {
        return Err("must be at most 64 characters".into());
    }
    if !user_id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err("may contain only letters, digits, '-' and '_'".into());
    }
    Ok(())
}

/// Whether mail may be sent to `email`: one `@` with text on both sides and nothing that
/// could break out of an SMTP command or a mail header (spaces, controls, `<>`, `,`).
pub fn is_mailable(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.is_empty()
        && !domain.contains('@')
        && email.len() <= 254
        && !email
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | ',' | '"'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVENT: &str = "0190b7a2-5c3e-7d41-9a2b-3c4d5e6f7a8b";

    #[test]
    fn the_same_event_and_user_always_get_the_same_notification_id() {
        let (a, at) = notification_id(EVENT, "u1", 1);
        let (b, bt) = notification_id(EVENT, "u1", 2);
        assert_eq!(a, b);
        assert_eq!(at, bt);
    }

    #[test]
    fn notification_ids_differ_per_user_and_per_event() {
        let (a, _) = notification_id(EVENT, "u1", 0);
        let (b, _) = notification_id(EVENT, "u2", 0);
        let (c, _) = notification_id("0190b7a2-5c3e-7d41-9a2b-3c4d5e6f7a8c", "u1", 0);
        assert_ne!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn notification_ids_are_uuid_v7_stamped_with_the_event_time() {
        let event = Uuid::now_v7().to_string();
        let expected = event_time(&event).expect("v7 time");
        let (id, created_at) = notification_id(&event, "u1", 0);
        assert_eq!(created_at, expected);
        let uuid = Uuid::parse_str(&id).expect("uuid");
        assert_eq!(uuid.get_version_num(), 7);
        assert_eq!(event_time(&id), Some(expected));
    }

    #[test]
    fn notifications_sort_like_the_events_that_caused_them_within_one_millisecond() {
        let events: Vec<_> = (0..50).map(|_| Uuid::now_v7().to_string()).collect();
        let ids: Vec<_> = events
            .iter()
            .map(|e| notification_id(e, "u1", 0).0)
            .collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
    }

    #[test]
    fn an_event_id_that_is_not_uuid_v7_falls_back_to_now() {
        let (_, created_at) = notification_id("not-a-uuid", "u1", 1_700_000_000_123);
        assert_eq!(created_at, 1_700_000_000_123);
    }

    #[test]
    fn user_ids_that_could_escape_the_mailbox_dir_are_rejected() {
        let cases = [
            ("0190b7a2-5c3e-7d41-9a2b-3c4d5e6f7a8b", true),
            ("user_1", true),
            ("", false),
            ("../etc/passwd", false),
            ("a/b", false),
            ("a b", false),
            (&"x".repeat(65), false),
        ];
        for (id, ok) in cases {
            assert_eq!(check_user_id(id).is_ok(), ok, "{id}");
        }
    }

    #[test]
    fn only_plain_addresses_are_mailable() {
        let cases = [
            ("ada@example.com", true),
            ("", false),
            ("ada", false),
            ("@example.com", false),
            ("ada@", false),
            ("ada@x@y", false),
            ("ada@example.com\r\nRCPT TO:<eve@x>", false),
            ("Ada <ada@example.com>", false),
            ("a,b@example.com", false),
        ];
        for (email, ok) in cases {
            assert_eq!(is_mailable(email), ok, "{email:?}");
        }
    }
}
