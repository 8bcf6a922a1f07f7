//! Outgoing mail after commit: the Message-ID a mail is known by, where a recorded mail
//! stands ([`MailStatus`]), and when a failed one is tried again ([`after_failure`]).

use super::Mail;

/// The right-hand side of every Message-ID this service makes.
pub const MESSAGE_ID_DOMAIN: &str = "polyshop.local";

/// The first retry comes this long after a failure; each further one waits twice as long…
pub const FIRST_RETRY_MS: i64 = 1_000;
/// …up to this long.
pub const MAX_RETRY_MS: i64 = 10 * 60 * 1_000;
/// Attempts before a mail is given up ([`MailStatus::Failed`]): with the delays above, about
/// four and a half hours of a relay refusing or being away.
pub const MAX_MAIL_ATTEMPTS: u32 = 36;

/// The Message-ID of the mail for notification `notification_id`.
pub fn message_id(notification_id: &str) -> String {
    format!("<{notification_id}@{MESSAGE_ID_DOMAIN}>")
}

/// Where a recorded mail stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailStatus {
    /// Waiting for the sender (new, or retried after a failure).
    Pending,
    /// Handed over; never sent again.
    Sent,
    /// Given up after [`MAX_MAIL_ATTEMPTS`]; kept for inspection.
    Failed,
}

impl MailStatus {
    /// Stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Sent => "sent",
            Self::Failed => "failed",
        }
    }
}

/// A mail recorded for sending, and how many attempts at it failed so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedMail {
    /// The mail.
    pub mail: Mail,
    /// Failed attempts so far.
    pub attempts: u32,
}

/// What follows a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextAttempt {
    /// Try again at this epoch-ms time.
    At(i64),
    /// Stop trying: the mail becomes [`MailStatus::Failed`].
    GiveUp,
}

/// When to try again after the `attempts`-th failed attempt (1 for the first) at `now`:
/// 1 s, 2 s, 4 s… capped at 10 min, until [`MAX_MAIL_ATTEMPTS`] attempts failed.
pub fn after_failure(attempts: u32, now: i64) -> NextAttempt {
    if attempts >= MAX_MAIL_ATTEMPTS {
        return NextAttempt::GiveUp;
    }
    let doublings = attempts.saturating_sub(1).min(20);
    let delay = FIRST_RETRY_MS
        .saturating_mul(1 << doublings)
        .min(MAX_RETRY_MS);
    NextAttempt::At(now.saturating_add(delay))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_exponentially_up_to_a_cap_then_give_up() {
        let cases = [
            (1, NextAttempt::At(1_000)),
            (2, NextAttempt::At(2_000)),
            (3, NextAttempt::At(4_000)),
            (10, NextAttempt::At(512_000)),
            (11, NextAttempt::At(MAX_RETRY_MS)),
            (MAX_MAIL_ATTEMPTS - 1, NextAttempt::At(MAX_RETRY_MS)),
            (MAX_MAIL_ATTEMPTS, NextAttempt::GiveUp),
        ];
        for (attempts, expected) in cases {
            assert_eq!(after_failure(attempts, 0), expected, "after {attempts}");
        }
        assert_eq!(after_failure(1, 5_000), NextAttempt::At(6_000));
    }

    #[test]
    fn retrying_takes_hours_before_giving_up() {
        let mut at = 0;
        for attempts in 1..MAX_MAIL_ATTEMPTS {
            let NextAttempt::At(next) = after_failure(attempts, at) else {
                panic!("gave up after {attempts}");
            };
            at = next;
        }
        assert!((4 * 3_600_000..6 * 3_600_000).contains(&at), "{at} ms");
    }

    #[test]
    fn the_message_id_is_made_from_the_notification_id() {
        assert_eq!(message_id("0190-abc"), "<0190-abc@polyshop.local>");
        assert_eq!(MailStatus::Pending.as_str(), "pending");
    }
}
