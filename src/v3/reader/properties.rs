//! What must hold for [`parse`], the reading of a /v3 record, on any payload.
//!
//! Anyone who can write to the topic can send any bytes, and a record that is
//! read wrong reaches the wrong user's streams: `parse` must split exactly at the
//! first colon and say why it skips the rest. And what a POST to /v3 publishes
//! must read back as what was posted, or the two ends of the topic disagree. The
//! `record` fuzz target runs [`record`]; the tests below try it on near-valid
//! records and posts.

use bytes::Bytes;

use super::{Malformed, parse};

/// `data` as the payload of a /v3 record; and, split at its first NUL byte, as the
/// username and body of a /v3 POST whose record must read back as what was posted.
pub(crate) fn record(data: &[u8]) {
    read(data);
    if let Some(nul) = data.iter().position(|&b| b == 0)
        && let (Ok(username), Ok(text)) = (
            std::str::from_utf8(&data[..nul]),
            std::str::from_utf8(&data[nul + 1..]),
        )
    {
        post(username, text);
    }
}

/// A /v3 record is read as `username:message` split at the first colon, with the
/// username trimmed and neither part blank; anything else is skipped, and why.
fn read(payload: &[u8]) {
    let parsed = parse(payload);
    let expected = match std::str::from_utf8(payload) {
        Err(_) => Err(Malformed::NotUtf8),
        Ok(text) => match text.find(':') {
            None => Err(Malformed::NoColon),
            Some(colon) if text[..colon].trim().is_empty() => Err(Malformed::EmptyUsername),
            Some(colon) if text[colon + 1..].trim().is_empty() => Err(Malformed::EmptyMessage),
            Some(colon) => Ok((text[..colon].trim(), &text[colon + 1..])),
        },
    };
    assert_eq!(parsed, expected, "{payload:?}");
    if let Ok((username, message)) = parsed {
        assert!(!username.contains(':'));
        let again = format!("{username}:{message}");
        assert_eq!(parse(again.as_bytes()), Ok((username, message)));
    }
}

/// What a POST to /v3 accepts (a valid username other than `*` and without a
/// colon, a body of non-blank UTF-8) is published as `username:text`, which the
/// consumer reads back as the same username and text.
fn post(username: &str, text: &str) {
    let Ok(username) = crate::limits::username(username) else {
        return;
    };
    // `*` addresses everyone: /v3/broadcast publishes it, /v3/message refuses it.
    if username.contains(':')
        || crate::channels::message_text(&Bytes::from(text.to_owned())).is_err()
    {
        return;
    }
    let payload = format!("{username}:{text}");
    assert_eq!(
        parse(payload.as_bytes()),
        Ok((username, text)),
        "{payload:?}"
    );
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::strategies::{config, mutated, text};

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn records_split_at_the_first_colon(
            bytes in mutated("[ *a-z]{0,6}:[ a-z:\r\n]{0,12}".prop_map(String::into_bytes))
        ) {
            read(&bytes);
        }

        #[test]
        fn posts_read_back(username in "[ *:a-zé\t]{0,8}", text in text()) {
            post(&username, &text);
        }
    }
}
