//! [`SmtpSender`]: a minimal plain-SMTP client (RFC 5321) over `tokio::net::TcpStream`:
//! greeting, EHLO (HELO if refused), MAIL FROM, RCPT TO, DATA, QUIT, checking every reply
//! code. There is no TLS and no AUTH: it is meant for a relay on the local host or network
//! (Postfix, MailHog, a sidecar) that forwards mail onwards. The body is sent as 8-bit UTF-8.
//! Every mail carries its fixed Message-ID ([`Mail::message_id`]), so a mail sent again
//! after a crash between hand-over and record can be recognised by the receiving side.

use std::time::Duration;

use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{
        TcpStream,
        tcp::{OwnedReadHalf, OwnedWriteHalf},
    },
};

use crate::{
    app::Sender,
    domain::{Mail, NotificationError},
};

/// Longest reply line accepted, and most lines in one reply.
const MAX_LINE: usize = 1024;
const MAX_REPLY_LINES: usize = 64;

/// Why a mail could not be handed to the relay.
#[derive(Debug, thiserror::Error)]
pub enum SmtpError {
    /// Connecting, reading or writing failed.
    #[error("SMTP I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The relay answered a step with an unexpected code.
    #[error("SMTP {step} refused: {code} {text}")]
    Refused {
        /// Which step, e.g. `RCPT TO`.
        step: &'static str,
        /// The reply code.
        code: u16,
        /// The reply text.
        text: String,
    },
    /// The relay's reply was not SMTP.
    #[error("SMTP protocol: {0}")]
    Protocol(String),
    /// The whole exchange took too long.
    #[error("SMTP exchange timed out")]
    Timeout,
}

/// Sends each mail in its own SMTP session to `addr`.
#[derive(Debug, Clone)]
pub struct SmtpSender {
    addr: String,
    from: String,
    hello: String,
    timeout: Duration,
}

impl SmtpSender {
    /// Mail to the relay at `addr` (`host:port`) from `from` (`Name <address>` or an address).
    /// A whole exchange may take 10 s; it runs in the mail dispatcher, outside any
    /// transaction, so a slow relay delays only mail.
    pub fn new(addr: impl Into<String>, from: impl Into<String>) -> Self {
        Self {
            addr: addr.into(),
            from: from.into(),
            hello: "polyshop-notification.localdomain".into(),
            timeout: Duration::from_secs(10),
        }
    }

    /// Sends `mail` in one session.
    ///
    /// # Errors
    /// [`SmtpError`] for a refused step, broken connection or timeout.
    pub async fn deliver(&self, mail: &Mail) -> Result<(), SmtpError> {
        tokio::time::timeout(self.timeout, self.session(mail))
            .await
            .map_err(|_| SmtpError::Timeout)?
    }

    async fn session(&self, mail: &Mail) -> Result<(), SmtpError> {
        let (read, write) = TcpStream::connect(&self.addr).await?.into_split();
        let mut c = Conversation {
            reader: BufReader::new(read),
            writer: write,
        };
        c.expect("greeting", &[220]).await?;
        c.send(&format!("EHLO {}", self.hello)).await?;
        if let Err(SmtpError::Refused {
            code: 500..=599, ..
        }) = c.expect("EHLO", &[250]).await
        {
            c.send(&format!("HELO {}", self.hello)).await?;
            c.expect("HELO", &[250]).await?;
        }
        c.send(&format!("MAIL FROM:<{}>", address_of(&self.from)))
            .await?;
        c.expect("MAIL FROM", &[250]).await?;
        c.send(&format!("RCPT TO:<{}>", mail.to_email)).await?;
        c.expect("RCPT TO", &[250, 251]).await?;
        c.send("DATA").await?;
        c.expect("DATA", &[354]).await?;
        c.writer
            .write_all(message(&self.from, mail, chrono::Utc::now()).as_bytes())
            .await?;
        c.expect("message", &[250]).await?;
        // The mail is accepted; a relay that hangs up without answering QUIT changes nothing.
        if c.send("QUIT").await.is_ok() {
            let _ = c.expect("QUIT", &[221]).await;
        }
        Ok(())
    }
}

impl Sender for SmtpSender {
    fn channel(&self) -> &'static str {
        "smtp"
    }

    async fn send(&self, mail: &Mail) -> Result<(), NotificationError> {
        self.deliver(mail)
            .await
            .map_err(|e| NotificationError::Delivery(e.to_string()))
    }
}

struct Conversation {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

impl Conversation {
    async fn send(&mut self, command: &str) -> Result<(), SmtpError> {
        self.writer
            .write_all(format!("{command}\r\n").as_bytes())
            .await?;
        Ok(())
    }

    /// Reads one (possibly multi-line) reply and checks its code.
    async fn expect(&mut self, step: &'static str, codes: &[u16]) -> Result<(), SmtpError> {
        let mut text = String::new();
        for _ in 0..MAX_REPLY_LINES {
            let mut line = String::new();
            let n = (&mut self.reader)
                .take(MAX_LINE as u64)
                .read_line(&mut line)
                .await?;
            if n == 0 {
                return Err(SmtpError::Protocol(format!("connection closed at {step}")));
            }
            let line = line.trim_end_matches(['\r', '\n']);
            let (code, last, rest) = parse_reply_line(line)
                .ok_or_else(|| SmtpError::Protocol(format!("bad reply to {step}: {line:?}")))?;
            text.push_str(rest);
            if last {
                return if codes.contains(&code) {
                    Ok(())
                } else {
                    Err(SmtpError::Refused { step, code, text })
                };
            }
            text.push(' ');
        }
        Err(SmtpError::Protocol(format!("endless reply to {step}")))
    }
}

/// `250-text` → (250, false, "text"); `250 text` or `250` → (250, true, "text").
fn parse_reply_line(line: &str) -> Option<(u16, bool, &str)> {
    let code = line.get(..3)?;
    if !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let code = code.parse().ok()?;
    match line.as_bytes().get(3) {
        None => Some((code, true, "")),
        Some(b' ') => Some((code, true, &line[4..])),
        Some(b'-') => Some((code, false, &line[4..])),
        Some(_) => None,
    }
}

/// The address inside `Name <address>`, or the whole (trimmed) value.
fn address_of(mailbox: &str) -> &str {
    match (mailbox.rfind('<'), mailbox.rfind('>')) {
        (Some(open), Some(close)) if open < close => &mailbox[open + 1..close],
        _ => mailbox.trim(),
    }
}

/// A header value: as is when it is printable ASCII, else RFC 2047 `Q` encoded words (at
/// most 75 characters each, folded). Line breaks never survive, so nothing can be injected.
fn header_value(value: &str) -> String {
    let value: String = value.chars().filter(|c| !c.is_control()).collect();
    if value.is_ascii() {
        return value;
    }
    let mut words = Vec::new();
    let mut word = String::new();
    for c in value.chars() {
        let mut buf = [0u8; 4];
        let encoded: String = c
            .encode_utf8(&mut buf)
            .bytes()
            .map(|b| match b {
                b' ' => "_".to_owned(),
                b if b.is_ascii_alphanumeric() || b"!*+-/".contains(&b) => char::from(b).into(),
                b => format!("={b:02X}"),
            })
            .collect();
        // "=?UTF-8?Q?" + word + "?=" stays within 75 characters.
        if word.len() + encoded.len() > 63 {
            words.push(std::mem::take(&mut word));
        }
        word.push_str(&encoded);
    }
    words.push(word);
    words
        .iter()
        .map(|w| format!("=?UTF-8?Q?{w}?="))
        .collect::<Vec<_>>()
        .join("\r\n ")
}

/// The `To` header: the name encoded when it needs to be.
fn to_header(mail: &Mail) -> String {
    let to = mail.to();
    match to.rsplit_once(" <") {
        Some((name, address)) if !name.is_ascii() => {
            format!("{} <{address}", header_value(name.trim_matches('"')))
        }
        _ => header_value(&to),
    }
}

/// The DATA section: headers, the body with CRLF line ends and leading dots doubled, and
/// the terminating `.` line.
fn message(from: &str, mail: &Mail, now: chrono::DateTime<chrono::Utc>) -> String {
    let mut out = format!(
        "From: {}\r\nTo: {}\r\nSubject: {}\r\nDate: {}\r\nMessage-ID: {}\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Transfer-Encoding: 8bit\r\n\r\n",
        header_value(from),
        to_header(mail),
        header_value(&mail.subject),
        now.to_rfc2822(),
        mail.message_id(),
    );
    for line in mail.body.lines() {
        if line.starts_with('.') {
            out.push('.');
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str(".\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mail() -> Mail {
        Mail {
            notification_id: "n1".into(),
            user_id: "u1".into(),
            to_email: "ada@example.com".into(),
            to_name: "Ada".into(),
            subject: "Welcome to Polyshop".into(),
            body: "Hello\n.hidden line\r\nbye".into(),
        }
    }

    #[test]
    fn reply_lines_give_code_continuation_and_text() {
        assert_eq!(
            parse_reply_line("250-PIPELINING"),
            Some((250, false, "PIPELINING"))
        );
        assert_eq!(parse_reply_line("250 OK"), Some((250, true, "OK")));
        assert_eq!(parse_reply_line("354"), Some((354, true, "")));
        assert_eq!(parse_reply_line("hello"), None);
        assert_eq!(parse_reply_line("25"), None);
    }

    #[test]
    fn the_envelope_sender_is_the_address_inside_the_angle_brackets() {
        assert_eq!(
            address_of("Polyshop <no-reply@polyshop.local>"),
            "no-reply@polyshop.local"
        );
        assert_eq!(address_of(" shop@example.com "), "shop@example.com");
    }

    #[test]
    fn the_message_has_headers_crlf_lines_doubled_leading_dots_and_a_final_dot() {
        let text = message("Polyshop <shop@example.com>", &mail(), chrono::Utc::now());
        assert!(
            text.contains("\r\nSubject: Welcome to Polyshop\r\n"),
            "{text}"
        );
        assert!(
            text.contains("\r\nTo: \"Ada\" <ada@example.com>\r\n"),
            "{text}"
        );
        assert!(
            text.contains("\r\nMessage-ID: <n1@polyshop.local>\r\n"),
            "{text}"
        );
        assert!(
            text.ends_with("\r\n\r\nHello\r\n..hidden line\r\nbye\r\n.\r\n"),
            "{text}"
        );
    }

    #[test]
    fn non_ascii_headers_are_encoded_words_that_cannot_inject_lines() {
        assert_eq!(
            header_value("Your order 0190… is"),
            "=?UTF-8?Q?Your_order_0190=E2=80=A6_is?="
        );
        assert_eq!(header_value("a\r\nBcc: eve@x"), "aBcc: eve@x");
        let long = header_value(&"é".repeat(40));
        assert!(long.split("\r\n ").all(|w| w.len() <= 75), "{long}");
        let mut m = mail();
        m.to_name = "Zoë".into();
        assert_eq!(to_header(&m), "=?UTF-8?Q?Zo=C3=AB?= <ada@example.com>");
    }
}
