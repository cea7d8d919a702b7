//! The dialog state of RFC 3261 §12, seen from the caller's side, and the
//! builders for the requests and responses that travel inside it.
//!
//! A dialog is known by Call-ID, our tag and the callee's tag. Until the callee
//! answers with a tag it is "early"; the first 1xx or 2xx carrying a To tag
//! fixes the remote tag, the remote target (its Contact) and the route set (its
//! Record-Route, reversed). Everything sent inside the dialog is built here so
//! that BYE, ACK, PRACK and CANCEL agree on the same headers.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::str::FromStr;

use rsip::headers::UntypedHeader;

use crate::message::{Response, method_name};

/// The caller's half of a dialog plus what the callee told us so far.
#[derive(Debug, Clone)]
pub struct Dialog {
    pub call_id: String,
    /// Our From header value without the tag, e.g. `<sip:dialhound@10.0.0.1>`.
    pub local_uri: String,
    pub local_tag: String,
    /// The To header value of the INVITE, e.g. `<sip:+8613800138000@carrier>`.
    pub remote_uri: String,
    /// Set by the first 1xx or 2xx with a To tag.
    pub remote_tag: Option<String>,
    /// Where in-dialog requests go, as it goes in their Request-URI: the
    /// callee's Contact (a plain URI as the callee wrote it, any other as
    /// rsip prints it), else the INVITE's URI.
    pub remote_target: String,
    /// Record-Route of the dialog-creating response, in the order we send it.
    pub route_set: Vec<String>,
    /// Our CSeq counter; each new request (except ACK and CANCEL) takes the next.
    pub local_cseq: u32,
    /// The highest CSeq the callee used in a request to us.
    pub remote_cseq: Option<u32>,
    /// Our address as written in Via and Contact.
    pub local_addr: SocketAddr,
}

impl Dialog {
    /// Learns the remote tag, target and route set from a response that
    /// carries a To tag. A 2xx overrides what an earlier 1xx set (RFC 3261
    /// §13.2.2.4: the final response's values win).
    pub fn learn_from_response(&mut self, response: &Response) {
        let Some(tag) = response.header("To").and_then(tag_param) else {
            return;
        };
        let final_response = response.status() >= 200;
        if self.remote_tag.is_some() && !final_response {
            return;
        }
        self.remote_tag = Some(tag.to_owned());
        if let Some(contact) = response.header("Contact").and_then(first_uri)
            // The same plain Contact again (a 200 after a 180) is not read again.
            && self.remote_target != contact
            && let Some(target) = match read_plain_uri(contact) {
                // A plain URI goes back as the callee wrote it.
                Some(_) => Some(contact.to_owned()),
                None => rsip::Uri::try_from(contact).ok().map(|uri| uri.to_string()),
            }
        {
            self.remote_target = target;
        }
        let mut routes: Vec<String> = response
            .headers_named("Record-Route")
            .flat_map(split_header_list)
            .map(str::to_owned)
            .collect();
        routes.reverse();
        self.route_set = routes;
    }

    /// A request inside the dialog as it goes on the wire: the dialog's
    /// headers, then `extra` in order, then the body with its Content-Type
    /// and Content-Length. Written straight to bytes; rsip reads the text
    /// back and prints it the same.
    pub fn request_bytes(
        &self,
        method: rsip::Method,
        cseq: u32,
        branch: &str,
        extra: &[(&str, &str)],
        body: Option<(&str, &[u8])>,
    ) -> Vec<u8> {
        const START_LINE_AND_HEADERS: usize = 512;
        let extra_size: usize = extra
            .iter()
            .map(|(name, value)| name.len() + value.len() + 4)
            .sum();
        let body_size = body.map_or(0, |(_, bytes)| bytes.len());
        let mut text = String::with_capacity(START_LINE_AND_HEADERS + extra_size + body_size);
        let _ = write!(
            text,
            "{} {} SIP/2.0\r\n",
            method_name(method),
            self.remote_target
        );
        let mut header = |name: &str, value: &str| {
            text.push_str(name);
            text.push_str(": ");
            text.push_str(value);
            text.push_str("\r\n");
        };
        self.each_header(method, cseq, branch, &mut header);
        for (name, value) in extra {
            header(name, value);
        }
        match body {
            Some((content_type, bytes)) => {
                let _ = write!(
                    text,
                    "Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
                    bytes.len()
                );
                let mut encoded = text.into_bytes();
                encoded.extend_from_slice(bytes);
                encoded
            }
            None => {
                text.push_str("Content-Length: 0\r\n\r\n");
                text.into_bytes()
            }
        }
    }

    /// The headers every request inside the dialog starts with, in order,
    /// each handed to `header` as its name and value.
    fn each_header(
        &self,
        method: rsip::Method,
        cseq: u32,
        branch: &str,
        mut header: impl FnMut(&str, &str),
    ) {
        let mut value = String::with_capacity(128);
        write_via_value(&mut value, self.local_addr, branch);
        header("Via", &value);
        header("Max-Forwards", "70");
        for route in &self.route_set {
            header("Route", route);
        }
        value.clear();
        let _ = write!(value, "{};tag={}", self.local_uri, self.local_tag);
        header("From", &value);
        value.clear();
        value.push_str(&self.remote_uri);
        if let Some(tag) = &self.remote_tag {
            value.push_str(";tag=");
            value.push_str(tag);
        }
        header("To", &value);
        header("Call-ID", &self.call_id);
        value.clear();
        let _ = write!(value, "{cseq} {}", method_name(method));
        header("CSeq", &value);
    }

    /// Takes the next CSeq number for a new request.
    pub fn next_cseq(&mut self) -> u32 {
        self.local_cseq += 1;
        self.local_cseq
    }
}

/// rsip's reading of a URI in the shape a carrier's Contact nearly always
/// has, `sip:[user@]IPv4[:port][;param[=value]]...`, without rsip's general
/// tokenizer: parameters are typed by rsip's own table, so the result is what
/// rsip gives. `None` for anything else, which rsip then reads.
fn read_plain_uri(text: &str) -> Option<rsip::Uri> {
    let rest = text.strip_prefix("sip:")?;
    let (address, params) = match rest.split_once(';') {
        Some((address, params)) => (address, Some(params)),
        None => (rest, None),
    };
    let (user, host_port) = match address.split_once('@') {
        Some((user, host_port)) => (Some(user), host_port),
        None => (None, address),
    };
    let plain = |text: &str| {
        !text.is_empty()
            && text
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || b"+-._".contains(&byte))
    };
    // rsip reads a user with a dot as a host name: leave those to it.
    if user.is_some_and(|user| !plain(user) || user.contains('.')) {
        return None;
    }
    let host_with_port = match host_port.split_once(':') {
        Some((host, port)) => {
            if port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let address = std::net::SocketAddrV4::new(host.parse().ok()?, port.parse().ok()?);
            SocketAddr::V4(address).into()
        }
        None => rsip::HostWithPort {
            host: rsip::Host::IpAddr(std::net::Ipv4Addr::from_str(host_port).ok()?.into()),
            port: None,
        },
    };
    let mut read = Vec::new();
    for param in params.into_iter().flat_map(|params| params.split(';')) {
        let (name, value) = match param.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (param, None),
        };
        if !plain(name) || value.is_some_and(|value| !plain(value)) {
            return None;
        }
        read.push(rsip::Param::try_from((name, value)).ok()?);
    }
    Some(rsip::Uri {
        scheme: Some(rsip::Scheme::Sip),
        auth: user.map(|user| rsip::Auth {
            user: user.to_owned(),
            password: None,
        }),
        host_with_port,
        params: read,
        headers: Vec::new(),
    })
}

/// Whether the plain-URI reader gives what rsip gives, wherever it reads
/// at all: the property the tests and the fuzzer hold it to.
#[doc(hidden)]
pub fn plain_uri_reading_agrees_with_rsip(text: &str) -> bool {
    read_plain_uri(text).is_none_or(|read| rsip::Uri::try_from(text).ok() == Some(read))
}

/// The Via value for a request we originate. `rport` asks the peer to answer
/// to the port the request came from (RFC 3581).
fn write_via_value(out: &mut String, local_addr: SocketAddr, branch: &str) {
    let _ = write!(out, "SIP/2.0/UDP {local_addr};branch={branch};rport");
}

/// A response to a request we received: the request's Vias, From, To (with
/// `to_tag` added when the request's To has none), Call-ID and CSeq.
pub fn response_to(
    request: &rsip::Request,
    status: u16,
    to_tag: Option<&str>,
    extra: Vec<rsip::Header>,
    body: Option<(&str, Vec<u8>)>,
) -> rsip::Response {
    let mut headers = rsip::Headers::default();
    for header in request.headers.iter() {
        match header {
            rsip::Header::Via(_)
            | rsip::Header::From(_)
            | rsip::Header::CallId(_)
            | rsip::Header::CSeq(_) => headers.push(header.clone()),
            rsip::Header::To(to) => {
                let value = to.value();
                match to_tag {
                    Some(tag) if tag_param(value).is_none() => headers.push(rsip::Header::To(
                        rsip::headers::To::new(format!("{value};tag={tag}")),
                    )),
                    _ => headers.push(header.clone()),
                }
            }
            _ => {}
        }
    }
    headers.extend(extra);
    let body = finish_body(&mut headers, body);
    rsip::Response {
        status_code: rsip::StatusCode::from(status),
        version: rsip::Version::V2,
        headers,
        body,
    }
}

/// Adds Content-Type and Content-Length for a body (or `Content-Length: 0`).
fn finish_body(headers: &mut rsip::Headers, body: Option<(&str, Vec<u8>)>) -> Vec<u8> {
    match body {
        Some((content_type, bytes)) => {
            headers.push(rsip::Header::ContentType(rsip::headers::ContentType::new(
                content_type,
            )));
            headers.push(rsip::Header::ContentLength(
                rsip::headers::ContentLength::new(bytes.len().to_string()),
            ));
            bytes
        }
        None => {
            headers.push(rsip::Header::ContentLength(
                rsip::headers::ContentLength::new("0"),
            ));
            Vec::new()
        }
    }
}

/// The value of the first header with this name (case-insensitive), typed
/// or not.
pub fn header_value<'a>(headers: &'a rsip::Headers, name: &str) -> Option<&'a str> {
    headers.iter().find_map(|header| {
        let (header_name, value) = crate::message::header_text(header)?;
        header_name.eq_ignore_ascii_case(name).then_some(value)
    })
}

/// The `tag` parameter of a From or To value, looking only after the URI so
/// that a `;tag=` inside `<...>` is not mistaken for it.
pub fn tag_param(value: &str) -> Option<&str> {
    let params = match value.rfind('>') {
        Some(end) => &value[end + 1..],
        None => value,
    };
    params.split(';').skip(1).find_map(|param| {
        let (name, tag) = param.split_once('=')?;
        (name.trim().eq_ignore_ascii_case("tag") && !tag.trim().is_empty()).then(|| tag.trim())
    })
}

/// The URI in a name-addr (`"Bob" <sip:bob@host>;expires=60`) or an addr-spec
/// (`sip:bob@host;transport=udp`).
pub fn first_uri(value: &str) -> Option<&str> {
    let first = split_header_list(value).next()?;
    match (first.find('<'), first.find('>')) {
        (Some(start), Some(end)) if start < end => Some(first[start + 1..end].trim()),
        _ => Some(first.split(';').next().unwrap_or(first).trim()),
    }
}

/// Splits a comma-separated header value, keeping commas inside `<...>` and
/// quotes.
pub fn split_header_list(value: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(value);
    std::iter::from_fn(move || {
        let text = rest?;
        let mut angled = false;
        let mut quoted = false;
        for (index, byte) in text.bytes().enumerate() {
            match byte {
                b'"' => quoted = !quoted,
                b'<' if !quoted => angled = true,
                b'>' if !quoted => angled = false,
                b',' if !quoted && !angled => {
                    rest = Some(&text[index + 1..]);
                    return Some(text[..index].trim());
                }
                _ => {}
            }
        }
        rest = None;
        Some(text.trim())
    })
    .filter(|part| !part.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Message;

    fn parse_response(text: &str) -> Response {
        match Message::parse(text.as_bytes()).unwrap() {
            Message::Response(response) => response,
            Message::Request(_) => unreachable!(),
        }
    }

    fn dialog() -> Dialog {
        Dialog {
            call_id: "c1@127.0.0.1".into(),
            local_uri: "<sip:dialhound@127.0.0.1>".into(),
            local_tag: "ours".into(),
            remote_uri: "<sip:+8613800138000@127.0.0.1:5070>".into(),
            remote_tag: None,
            remote_target: "sip:+8613800138000@127.0.0.1:5070".into(),
            route_set: Vec::new(),
            local_cseq: 1,
            remote_cseq: None,
            local_addr: "127.0.0.1:5060".parse().unwrap(),
        }
    }

    const OK: &str = "SIP/2.0 200 OK\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKa\r\n\
Record-Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\n\
Record-Route: <sip:p3.example.com;lr>\r\n\
From: <sip:dialhound@127.0.0.1>;tag=ours\r\n\
To: <sip:+8613800138000@127.0.0.1:5070>;tag=theirs\r\n\
Call-ID: c1@127.0.0.1\r\n\
CSeq: 1 INVITE\r\n\
Contact: \"Callee\" <sip:callee@192.0.2.7:5080;transport=udp>;expires=60\r\n\
Content-Length: 0\r\n\r\n";

    #[test]
    fn a_2xx_fixes_tag_target_and_reversed_route_set() {
        let mut dialog = dialog();
        dialog.learn_from_response(&parse_response(OK));
        assert_eq!(dialog.remote_tag.as_deref(), Some("theirs"));
        assert_eq!(
            dialog.remote_target,
            "sip:callee@192.0.2.7:5080;transport=udp"
        );
        assert_eq!(
            dialog.route_set,
            [
                "<sip:p3.example.com;lr>",
                "<sip:p2.example.com;lr>",
                "<sip:p1.example.com;lr>"
            ]
        );
    }

    #[test]
    fn in_dialog_requests_carry_both_tags_and_the_route_set() {
        let mut dialog = dialog();
        dialog.learn_from_response(&parse_response(OK));
        let cseq = dialog.next_cseq();
        let bytes = dialog.request_bytes(rsip::Method::Bye, cseq, "z9hG4bKbye", &[], None);
        let text = String::from_utf8(bytes).unwrap();
        // The remote target goes back as the callee wrote it; the rest is
        // what rsip prints of what it reads.
        let Message::Request(bye) = Message::parse(text.as_bytes()).unwrap() else {
            panic!("a request");
        };
        assert_eq!(
            text.replace("transport=udp", "transport=UDP"),
            bye.to_string()
        );
        assert!(text.starts_with("BYE sip:callee@192.0.2.7:5080;transport=udp SIP/2.0\r\n"));
        assert!(text.contains("From: <sip:dialhound@127.0.0.1>;tag=ours\r\n"));
        assert!(text.contains("To: <sip:+8613800138000@127.0.0.1:5070>;tag=theirs\r\n"));
        assert!(text.contains("CSeq: 2 BYE\r\n"));
        let p3 = text.find("Route: <sip:p3").unwrap();
        let p1 = text.find("Route: <sip:p1").unwrap();
        assert!(p3 < p1, "route set order: {text}");
        // What we build parses back with every mandatory header.
        Message::parse(text.as_bytes()).unwrap();
    }

    #[test]
    fn extra_headers_and_a_body_follow_the_dialog_headers() {
        let dialog = dialog();
        let bytes = dialog.request_bytes(
            rsip::Method::Invite,
            1,
            "z9hG4bKinv",
            &[
                ("Contact", "<sip:dialhound@127.0.0.1:5060>"),
                ("RAck", "1 1 INVITE"),
            ],
            Some(("application/sdp", b"v=0\r\n")),
        );
        let Message::Request(invite) = Message::parse(&bytes).unwrap() else {
            panic!("a request");
        };
        assert_eq!(String::from_utf8(bytes).unwrap(), invite.to_string());
        assert_eq!(invite.body, b"v=0\r\n");
        let text = invite.to_string();
        let cseq = text.find("CSeq: 1 INVITE").unwrap();
        let rack = text.find("RAck: 1 1 INVITE").unwrap();
        let content_type = text.find("Content-Type: application/sdp\r\nContent-Length: 5\r\n\r\n");
        assert!(cseq < rack && rack < content_type.unwrap(), "{text}");
    }

    #[test]
    fn a_provisional_does_not_override_an_established_tag() {
        let mut dialog = dialog();
        dialog.learn_from_response(&parse_response(OK));
        let ringing = OK
            .replace("200 OK", "180 Ringing")
            .replace("tag=theirs", "tag=other");
        dialog.learn_from_response(&parse_response(&ringing));
        assert_eq!(dialog.remote_tag.as_deref(), Some("theirs"));
    }

    #[test]
    fn responses_echo_the_request_and_add_our_tag_once() {
        let request = "OPTIONS sip:dialhound@127.0.0.1:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKopt\r\n\
Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKup\r\n\
Max-Forwards: 70\r\n\
From: <sip:sipp@127.0.0.1:5070>;tag=1\r\n\
To: <sip:dialhound@127.0.0.1:5060>\r\n\
Call-ID: opt@127.0.0.1\r\n\
CSeq: 7 OPTIONS\r\n\
Content-Length: 0\r\n\r\n";
        let Message::Request(request) = Message::parse(request.as_bytes()).unwrap() else {
            unreachable!()
        };
        let response = response_to(&request, 200, Some("mine"), Vec::new(), None);
        let text = response.to_string();
        assert!(text.starts_with("SIP/2.0 200 OK\r\n"));
        assert!(text.contains("To: <sip:dialhound@127.0.0.1:5060>;tag=mine\r\n"));
        assert!(text.contains("CSeq: 7 OPTIONS\r\n"));
        assert_eq!(text.matches("Via:").count(), 2);
        Message::parse(text.as_bytes()).unwrap();
    }

    #[test]
    fn plain_uris_read_as_rsip_reads_them() {
        let plain = [
            "sip:127.0.0.1:5070;transport=UDP",
            "sip:127.0.0.1",
            "sip:callee@192.0.2.7:5080;transport=udp;lr",
            "sip:+8613800138000@10.0.0.1;user=phone",
            "sip:a-c_d@10.0.0.1:65535;x=y;ttl=5;maddr=10.0.0.2",
        ];
        for text in plain {
            assert!(read_plain_uri(text).is_some(), "{text}");
            assert!(plain_uri_reading_agrees_with_rsip(text), "{text}");
        }
        for other in [
            "sips:127.0.0.1",
            "sip:host.example.com",
            "sip:127.0.0.1:99999",
            "sip:127.0.0.1:",
            "sip:a@b@127.0.0.1",
            "sip:127.0.0.1;=x",
            "sip:127.0.0.1;transport=carrier-pigeon",
            "sip:user:pass@127.0.0.1",
            "sip:a.b@10.0.0.1",
        ] {
            assert!(plain_uri_reading_agrees_with_rsip(other), "{other}");
        }
        assert!(read_plain_uri("sip:host.example.com").is_none());
    }

    #[test]
    fn header_value_helpers() {
        assert_eq!(tag_param("<sip:a@b;tag=no>;tag=yes"), Some("yes"));
        assert_eq!(tag_param("sip:a@b;tag=x"), Some("x"));
        assert_eq!(tag_param("<sip:a@b;tag=no>"), None);
        assert_eq!(first_uri("\"A, B\" <sip:a@b>, <sip:c@d>"), Some("sip:a@b"));
        assert_eq!(first_uri("sip:a@b;expires=3"), Some("sip:a@b"));
        assert_eq!(
            split_header_list("<sip:a,b>, \"x,y\" <sip:c>").collect::<Vec<_>>(),
            ["<sip:a,b>", "\"x,y\" <sip:c>"]
        );
    }
}
