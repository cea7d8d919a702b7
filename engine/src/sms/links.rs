//! Tracked links: a short link unique to each SMS, and what opening one
//! records.
//!
//! A template's `{link}` becomes `[links] public` + `/` + a random token;
//! the record keeps the token and where the link goes. Opening it (served
//! by the `http` stage, which hands the request here) records a click, the
//! visitor's address only as a keyed hash, and answers with the target.

use jiff::Timestamp;
use rand::Rng;

use super::{SmsError, SmsSender};
use crate::store::customer::CustomerId;
use crate::store::sms::{SmsClick, TrackedLink};

const TOKEN_ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// One opening of a link by a person, as the HTTP side saw it.
#[derive(Debug, Clone)]
pub struct Visit {
    pub at: Timestamp,
    /// The network address it came from; only its keyed hash is kept.
    pub address: String,
    pub user_agent: String,
}

/// A link that was found: where it goes, and whose it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenedLink {
    pub target: String,
    pub customer: CustomerId,
}

impl SmsSender {
    /// A new tracked link to `target` with the query `params` added: the
    /// text the SMS carries, and what its record keeps. `None` without
    /// `[links]`.
    pub fn new_link(
        &self,
        target: &str,
        params: &[(&str, &str)],
    ) -> Result<Option<(String, TrackedLink)>, SmsError> {
        let Some(links) = &self.shared.links else {
            return Ok(None);
        };
        let mut rng = rand::rng();
        // Two draws of 47 bits meeting is unlikely enough that a second
        // try is plenty; more is belt and braces.
        for _ in 0..4 {
            let token: String = (0..TrackedLink::TOKEN_LENGTH)
                .map(|_| char::from(TOKEN_ALPHABET[rng.random_range(0..TOKEN_ALPHABET.len())]))
                .collect();
            if self.shared.store.sms_by_link(&token)?.is_none() {
                let text = format!("{}/{token}", links.public);
                return Ok(Some((
                    text,
                    TrackedLink {
                        token,
                        target: with_query(target, params),
                    },
                )));
            }
        }
        Err(SmsError::NoFreeLink)
    }

    /// The link `token` opened: its target, with the click recorded (and
    /// made the customer's latest) when `visit` is a person's. `None` for a
    /// token no SMS has. Blocking: run it off the reactor.
    pub fn open_link(
        &self,
        token: &str,
        visit: Option<&Visit>,
    ) -> Result<Option<OpenedLink>, SmsError> {
        let shared = &self.shared;
        let found = match shared.store.sms_by_link(token)? {
            Some(id) => shared.store.sms(id)?,
            None => None,
        };
        let Some((record, link)) = found.and_then(|record| {
            let link = record.link.clone()?;
            Some((record, link))
        }) else {
            shared.metrics.link_opened("", "unknown");
            return Ok(None);
        };
        let Some(customer) = CustomerId::parse(&record.customer) else {
            return Ok(None);
        };
        match visit {
            Some(visit) => {
                let click = SmsClick {
                    sms: record.id,
                    at: visit.at,
                    visitor: shared.directory.visitor_key(&visit.address),
                    user_agent: truncate(&visit.user_agent, SmsClick::MAX_USER_AGENT),
                };
                shared.store.record_sms_click(&click, &customer)?;
                shared.store.flush()?;
                shared.metrics.link_opened(&record.campaign, "click");
            }
            None => shared.metrics.link_opened(&record.campaign, "preview"),
        }
        Ok(Some(OpenedLink {
            target: link.target,
            customer,
        }))
    }
}

/// `target` with `params` appended to its query, form-encoded.
fn with_query(target: &str, params: &[(&str, &str)]) -> String {
    if params.is_empty() {
        return target.to_owned();
    }
    let (base, fragment) = match target.split_once('#') {
        Some((base, fragment)) => (base, Some(fragment)),
        None => (target, None),
    };
    let mut query = form_urlencoded::Serializer::new(String::new());
    query.extend_pairs(params);
    let separator = if !base.contains('?') {
        "?"
    } else if base.ends_with('?') || base.ends_with('&') {
        ""
    } else {
        "&"
    };
    let mut url = format!("{base}{separator}{}", query.finish());
    if let Some(fragment) = fragment {
        url.push('#');
        url.push_str(fragment);
    }
    url
}

/// At most `max` bytes of `text`, cut at a character boundary.
fn truncate(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_join_the_query_the_target_already_has_and_keep_its_fragment() {
        let params = [("customer", "C 01/é"), ("campaign", "cart")];
        assert_eq!(
            with_query("https://shop.example.cn/cart", &params),
            "https://shop.example.cn/cart?customer=C+01%2F%C3%A9&campaign=cart"
        );
        assert_eq!(
            with_query("https://shop.example.cn/cart?src=sms#pay", &params),
            "https://shop.example.cn/cart?src=sms&customer=C+01%2F%C3%A9&campaign=cart#pay"
        );
        assert_eq!(
            with_query("https://shop.example.cn/cart?", &params[1..]),
            "https://shop.example.cn/cart?campaign=cart"
        );
        assert_eq!(with_query("https://a.cn/x", &[]), "https://a.cn/x");
    }

    #[test]
    fn a_long_user_agent_is_cut_at_a_character_boundary() {
        assert_eq!(truncate("浏览器", 4), "浏");
        assert_eq!(truncate("abc", 10), "abc");
    }
}
