//! SIP messages: rsip does the parsing and printing; this module decides what a
//! usable message is and gives the rest of dialhound our own view of it, so the
//! parser can be swapped without touching the state machines.

use std::fmt::Write as _;

use rsip::headers::UntypedHeader;
use rsip::message::HeadersExt;

/// A request or response that parsed and carries every mandatory header.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    Request(rsip::Request),
    Response(Response),
}

/// A response from the wire: its text, read once into where each header's
/// name and value lie in it. The state machines ask it for values by name;
/// nothing is copied per header. Every response we take arrives at one of
/// our own requests, so this is the message dialhound reads most.
#[derive(Clone, PartialEq, Eq)]
pub struct Response {
    status: u16,
    /// The status line and the header lines, without the blank line after.
    head: String,
    headers: Vec<HeaderSpan>,
    body: Vec<u8>,
    /// The identity, read once the headers are checked: where the Call-ID
    /// and the top Via's branch lie in `head`, and the CSeq.
    call_id: (u32, u32),
    branch: Option<(u32, u32)>,
    cseq: u32,
    cseq_method: rsip::Method,
}

/// Where a header's name and value lie in a response's head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct HeaderSpan {
    name: (u32, u32),
    value: (u32, u32),
}

impl Response {
    /// A response in the shape nearly every response has: a `SIP/2.0`
    /// status line with one space either side of the code, at least one
    /// header line of a token, a colon and a value, then a blank line. The
    /// grammar is the one rsip reads; `None` for anything else.
    fn read_plain(bytes: &[u8]) -> Option<Response> {
        let rest = bytes.strip_prefix(b"SIP/2.0 ")?;
        let (code, rest) = rest.split_at_checked(3)?;
        if !code.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let status = code
            .iter()
            .fold(0u16, |status, digit| status * 10 + u16::from(digit - b'0'));
        let rest = rest.strip_prefix(b" ")?;
        let status_line_end = STATUS_LINE_PREFIX + find_crlf(rest)?;
        let rest = &bytes[status_line_end + 2..];
        if rest.starts_with(b"\r\n") {
            return None;
        }
        let head_end = status_line_end + 2 + find_blank_line(rest)?;
        let head = std::str::from_utf8(&bytes[..head_end]).ok()?;
        let mut headers = Vec::with_capacity(16);
        let mut line_start = status_line_end + 2;
        loop {
            let line_end =
                find_crlf(&bytes[line_start..head_end]).map_or(head_end, |end| line_start + end);
            let line = &bytes[line_start..line_end];
            let name_end = line.iter().position(|byte| !is_token_byte(*byte))?;
            if name_end == 0 || line[name_end] != b':' {
                return None;
            }
            let value_start = line[name_end + 1..]
                .iter()
                .position(|byte| !is_wsp(*byte))
                .map_or(line_end, |at| line_start + name_end + 1 + at);
            let at = |offset: usize| u32::try_from(offset).ok();
            headers.push(HeaderSpan {
                name: (at(line_start)?, at(line_start + name_end)?),
                value: (at(value_start)?, at(line_end)?),
            });
            if line_end == head_end {
                break;
            }
            line_start = line_end + 2;
        }
        Some(Response {
            status,
            head: head.to_owned(),
            headers,
            body: bytes[head_end + 4..].to_vec(),
            // Set by `identified`.
            call_id: (0, 0),
            branch: None,
            cseq: 0,
            cseq_method: rsip::Method::Invite,
        })
    }

    /// The status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    pub fn call_id(&self) -> &str {
        self.text(self.call_id)
    }

    /// The top Via's branch: the transaction the response belongs to.
    pub fn branch(&self) -> Option<&str> {
        self.branch.map(|span| self.text(span))
    }

    pub fn cseq(&self) -> u32 {
        self.cseq
    }

    pub fn cseq_method(&self) -> rsip::Method {
        self.cseq_method
    }

    pub fn identity(&self) -> Identity {
        IdentityRef {
            call_id: self.call_id(),
            cseq: self.cseq,
            cseq_method: self.cseq_method,
            branch: self.branch(),
        }
        .to_owned_identity()
    }

    /// The reason phrase as the peer wrote it.
    pub fn reason(&self) -> &str {
        // The status line ends at the first CRLF; a bare LF is part of it.
        let line_end = self.head.find("\r\n").unwrap_or(self.head.len());
        self.head
            .get(STATUS_LINE_PREFIX..line_end)
            .unwrap_or_default()
    }

    /// Every header's name and value, in order.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.headers
            .iter()
            .map(|span| (self.text(span.name), self.text(span.value)))
    }

    /// The first value of the header with this (long) name, whose case
    /// does not matter.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers()
            .find(|(header, _)| header.eq_ignore_ascii_case(name))
            .map(|(_, value)| value)
    }

    /// Every value of the headers with this (long) name, in order.
    pub fn headers_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers()
            .filter(move |(header, _)| header.eq_ignore_ascii_case(name))
            .map(|(_, value)| value)
    }

    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The response as it came (after the head's normalising), body held to
    /// Content-Length.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(self.head.len() + 4 + self.body.len());
        bytes.extend_from_slice(self.head.as_bytes());
        bytes.extend_from_slice(b"\r\n\r\n");
        bytes.extend_from_slice(&self.body);
        bytes
    }

    /// rsip's form of the response: its headers typed by rsip's own table.
    pub fn to_rsip(&self) -> rsip::Response {
        let headers: Vec<rsip::Header> = self
            .headers()
            .map(|(name, value)| typed_header(name, value))
            .collect();
        // rsip keeps the reason only for a code it does not know.
        let status_code = match rsip::StatusCode::from(self.status) {
            rsip::StatusCode::Other(..) => {
                rsip::StatusCode::Other(self.status, self.reason().to_owned())
            }
            known => known,
        };
        rsip::Response {
            status_code,
            version: rsip::Version::V2,
            headers: headers.into(),
            body: self.body.clone(),
        }
    }

    fn text(&self, (start, end): (u32, u32)) -> &str {
        self.head
            .get(start as usize..end as usize)
            .unwrap_or_default()
    }

    /// The checked response, its identity read and its body held to
    /// Content-Length.
    fn identified(mut self) -> Result<Message, MessageError> {
        // Read on the way through the headers, before the body is framed.
        let identity = check_headers(self.headers())?.identity(None)?;
        let call_id = self.span_of(identity.call_id);
        let branch = identity.branch.map(|branch| self.span_of(branch));
        let (cseq, cseq_method) = (identity.cseq, identity.cseq_method);
        let declared = self
            .header("Content-Length")
            .map(content_length)
            .transpose()?;
        frame(declared, &mut self.body)?;
        self.call_id = call_id;
        self.branch = branch;
        self.cseq = cseq;
        self.cseq_method = cseq_method;
        Ok(Message::Response(self))
    }

    /// Where `part`, a slice of the head, lies in it.
    fn span_of(&self, part: &str) -> (u32, u32) {
        let start = (part.as_ptr() as usize).saturating_sub(self.head.as_ptr() as usize);
        let end = start + part.len();
        match (u32::try_from(start), u32::try_from(end)) {
            (Ok(start), Ok(end)) if end as usize <= self.head.len() => (start, end),
            _ => (0, 0),
        }
    }
}

impl std::fmt::Debug for Response {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Response")
            .field("head", &self.head)
            .field("body", &String::from_utf8_lossy(&self.body))
            .finish()
    }
}

impl std::fmt::Display for Response {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            formatter,
            "{}\r\n\r\n{}",
            self.head,
            String::from_utf8_lossy(&self.body)
        )
    }
}

/// `SIP/2.0 200 `: where a status line's reason starts.
const STATUS_LINE_PREFIX: usize = 12;

/// Why bytes from the wire are not a usable SIP message. The message is dropped
/// and counted; nothing else happens.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("not a SIP message: {0}")]
    Unparsable(String),
    #[error("the message has no `{0}` header")]
    MissingHeader(&'static str),
    #[error("the `{header}` header is malformed: {reason}")]
    InvalidHeader {
        header: &'static str,
        reason: String,
    },
    #[error("the CSeq method `{cseq}` does not match the request method `{method}`")]
    CseqMismatch { cseq: String, method: String },
    #[error("the `{0}` header appears more than once")]
    DuplicateHeader(&'static str),
    #[error("the body has {actual} bytes where Content-Length says {declared}")]
    TruncatedBody { declared: usize, actual: usize },
    #[error("the Request-URI is malformed: {0}")]
    InvalidRequestUri(String),
}

/// The identity of a message within its call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub call_id: String,
    pub cseq: u32,
    pub cseq_method: rsip::Method,
    /// The top Via's branch: the transaction a message belongs to.
    pub branch: Option<String>,
}

impl Message {
    /// Parses bytes from the wire. Never panics: a panic inside the parser is
    /// caught and reported as an unparsable message.
    pub fn parse(bytes: &[u8]) -> Result<Message, MessageError> {
        let normalized = normalize_head(bytes);
        let bytes = normalized.as_ref();
        if let Some(response) = Response::read_plain(bytes) {
            return response.identified();
        }
        let parsed = std::panic::catch_unwind(|| rsip::SipMessage::try_from(bytes))
            .map_err(|_| MessageError::Unparsable("the parser failed on this input".into()))?
            .map_err(|error| MessageError::Unparsable(error.to_string()))?;
        let mut request = match parsed {
            rsip::SipMessage::Request(request) => request,
            rsip::SipMessage::Response(response) => {
                // An odd shape (say, two spaces after `SIP/2.0`), which rsip
                // has read: our reading of rsip's print of it.
                return Response::read_plain(&encode_response(&response))
                    .ok_or_else(|| MessageError::Unparsable("a response without headers".into()))?
                    .identified();
            }
        };
        if let Some(uri) = request_uri(bytes) {
            check_request_uri(uri)?;
        }
        // A request's identity must read; the call reads it again when it
        // takes the request, which is seldom.
        check_headers(request.headers.iter().filter_map(header_text))?
            .identity(Some(&request.method))?;
        let declared = request.headers.iter().find_map(|header| match header {
            rsip::Header::ContentLength(h) => Some(content_length(h.value())),
            _ => None,
        });
        frame(declared.transpose()?, &mut request.body)?;
        let max_forwards = request
            .max_forwards_header()
            .map_err(|_| MessageError::MissingHeader("Max-Forwards"))?;
        max_forwards
            .num()
            .map_err(|error| invalid("Max-Forwards", error))?;
        Ok(Message::Request(request))
    }

    /// Call-ID, CSeq and branch; checks From and To on the way.
    pub fn identity(&self) -> Result<Identity, MessageError> {
        match self {
            Message::Request(request) => request_identity(request),
            Message::Response(response) => Ok(response.identity()),
        }
    }

    /// The Call-ID, which every message that parsed has.
    pub fn call_id(&self) -> &str {
        match self {
            Message::Request(request) => request
                .call_id_header()
                .map_or("", |call_id| call_id.value().trim()),
            Message::Response(response) => response.call_id(),
        }
    }

    /// The status of a response.
    pub fn status(&self) -> Option<u16> {
        match self {
            Message::Response(response) => Some(response.status()),
            Message::Request(_) => None,
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            Message::Request(request) => encode_request(request),
            Message::Response(response) => response.to_bytes(),
        }
    }
}

/// Headers that may appear once appear once, and the addresses and Vias are
/// well formed beyond what the parser checks (RFC 3261 sections 7.3 and 25.1).
fn check_headers<'a>(
    headers: impl Iterator<Item = (&'a str, &'a str)>,
) -> Result<IdentityHeaders<'a>, MessageError> {
    // Which of SINGLE_HEADERS a header is, and what else to check of it.
    enum Check {
        Nothing,
        Address(&'static str),
        Via,
    }
    // The value of each of SINGLE_HEADERS, once seen, and the top Via.
    let mut single_values: [Option<&str>; SINGLE_HEADERS.len()] = [None; SINGLE_HEADERS.len()];
    let mut top_via = None;
    for (name, value) in headers {
        let is = |known: &str| name.eq_ignore_ascii_case(known);
        let (single, check) = match name.len() {
            2 if is("To") => (Some(1), Check::Address("To")),
            3 if is("Via") => (None, Check::Via),
            4 if is("From") => (Some(2), Check::Address("From")),
            4 if is("CSeq") => (Some(3), Check::Nothing),
            7 if is("Call-ID") => (Some(0), Check::Nothing),
            7 if is("Contact") => (None, Check::Address("Contact")),
            12 if is("Max-Forwards") => (Some(4), Check::Nothing),
            14 if is("Content-Length") => (Some(5), Check::Nothing),
            _ => continue,
        };
        if let Some(index) = single
            && single_values[index].replace(value).is_some()
        {
            return Err(MessageError::DuplicateHeader(SINGLE_HEADERS[index]));
        }
        match check {
            Check::Nothing => {}
            Check::Address(name) => check_address(value).map_err(|reason| invalid(name, reason))?,
            Check::Via => {
                top_via.get_or_insert(value);
                check_via(value).map_err(|reason| invalid("Via", reason))?
            }
        }
    }
    let [call_id, to, from, cseq, _, _] = single_values;
    Ok(IdentityHeaders {
        via: top_via,
        from: from.is_some(),
        to: to.is_some(),
        call_id,
        cseq,
    })
}

/// A Content-Length value's number of bytes.
fn content_length(value: &str) -> Result<usize, MessageError> {
    let value = value.trim();
    value
        .parse()
        .map_err(|_| invalid("Content-Length", format!("`{value}` is not a length")))
}

/// Holds a body to its Content-Length: a body shorter than declared is an
/// error, and bytes past it are dropped, as RFC 3261 section 18.3 asks of a
/// datagram.
fn frame(declared: Option<usize>, body: &mut Vec<u8>) -> Result<(), MessageError> {
    let Some(declared) = declared else {
        return Ok(());
    };
    if body.len() < declared {
        return Err(MessageError::TruncatedBody {
            declared,
            actual: body.len(),
        });
    }
    body.truncate(declared);
    Ok(())
}

/// Whether the plain-response reader gives what rsip gives, wherever it
/// reads at all: the property the tests and the fuzzer hold it to.
#[doc(hidden)]
pub fn plain_response_reading_agrees_with_rsip(bytes: &[u8]) -> bool {
    Response::read_plain(bytes).is_none_or(|read| {
        rsip::SipMessage::try_from(bytes).ok() == Some(rsip::SipMessage::Response(read.to_rsip()))
    })
}

/// A header typed by rsip's own table of names, as rsip reads it (an unknown
/// name becomes `Other`).
pub(crate) fn typed_header(name: &str, value: &str) -> rsip::Header {
    let tokenizer = rsip::headers::header::tokenizer::Tokenizer {
        name: name.as_bytes(),
        value: value.as_bytes(),
    };
    // Only bytes that are not UTF-8 fail, and these came as text.
    tokenizer
        .try_into()
        .unwrap_or_else(|_| rsip::Header::Other(name.to_owned(), value.to_owned()))
}

/// `format!` into a buffer of `capacity`: `format!` sizes its buffer from
/// its literal text alone and grows it two or three times for a URI or an
/// identifier, which on a call's path is most of its allocations.
pub fn format_sized(capacity: usize, args: std::fmt::Arguments<'_>) -> String {
    let mut text = String::with_capacity(capacity);
    let _ = text.write_fmt(args);
    text
}

/// Where the first CRLF CRLF in `text` is, which ends a message's head.
fn find_blank_line(text: &[u8]) -> Option<usize> {
    memchr::memchr_iter(b'\r', text).find(|&at| text.get(at + 1..at + 4) == Some(b"\n\r\n"))
}

/// A method's name as it goes on the wire (rsip's `Display` builds a
/// `String` for it).
pub(crate) fn method_name(method: rsip::Method) -> &'static str {
    match method {
        rsip::Method::Ack => "ACK",
        rsip::Method::Bye => "BYE",
        rsip::Method::Cancel => "CANCEL",
        rsip::Method::Info => "INFO",
        rsip::Method::Invite => "INVITE",
        rsip::Method::Message => "MESSAGE",
        rsip::Method::Notify => "NOTIFY",
        rsip::Method::Options => "OPTIONS",
        rsip::Method::PRack => "PRACK",
        rsip::Method::Publish => "PUBLISH",
        rsip::Method::Refer => "REFER",
        rsip::Method::Register => "REGISTER",
        rsip::Method::Subscribe => "SUBSCRIBE",
        rsip::Method::Update => "UPDATE",
    }
}

/// Where the first CRLF in `text` is: a wide scan for each CR, with no
/// searcher to set up for a needle this short.
fn find_crlf(text: &[u8]) -> Option<usize> {
    memchr::memchr_iter(b'\r', text).find(|&at| text.get(at + 1) == Some(&b'\n'))
}

/// A request built as rsip's type, as it goes on the wire: the text of
/// rsip's `Display`, written into one buffer sized up front, and the body as
/// its raw bytes. A call's own requests are written straight to bytes by its
/// dialog instead.
pub fn encode_request(request: &rsip::Request) -> Vec<u8> {
    let mut text = String::with_capacity(encoded_size(&request.headers, &request.body));
    // The start line's parts print themselves; a URI is not plain text.
    let _ = write!(
        text,
        "{} {} {}\r\n",
        request.method, request.uri, request.version
    );
    finish_encoding(text, &request.headers, &request.body)
}

/// A response as it goes on the wire; see [`encode_request`].
pub fn encode_response(response: &rsip::Response) -> Vec<u8> {
    let mut text = String::with_capacity(encoded_size(&response.headers, &response.body));
    let _ = write!(text, "{} {}\r\n", response.version, response.status_code);
    finish_encoding(text, &response.headers, &response.body)
}

/// Room for the start line, the headers and the body, so that the buffer
/// is allocated once.
fn encoded_size(headers: &rsip::Headers, body: &[u8]) -> usize {
    const START_LINE_AND_NAMES: usize = 128;
    const PER_HEADER: usize = 24;
    START_LINE_AND_NAMES
        + headers
            .iter()
            .map(|header| PER_HEADER + header_text(header).map_or(64, |(_, value)| value.len()))
            .sum::<usize>()
        + body.len()
}

fn finish_encoding(mut text: String, headers: &rsip::Headers, body: &[u8]) -> Vec<u8> {
    for header in headers.iter() {
        match header_text(header) {
            Some((name, value)) => {
                text.push_str(name);
                text.push_str(": ");
                text.push_str(value);
            }
            None => {
                let _ = write!(text, "{header}");
            }
        }
        text.push_str("\r\n");
    }
    text.push_str("\r\n");
    let mut bytes = text.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// The name and value of the headers we send, echo or read, as rsip prints
/// them; `None` for the rest, which print themselves.
pub(crate) fn header_text(header: &rsip::Header) -> Option<(&str, &str)> {
    Some(match header {
        rsip::Header::Via(h) => ("Via", h.value()),
        rsip::Header::MaxForwards(h) => ("Max-Forwards", h.value()),
        rsip::Header::Route(h) => ("Route", h.value()),
        rsip::Header::RecordRoute(h) => ("Record-Route", h.value()),
        rsip::Header::From(h) => ("From", h.value()),
        rsip::Header::To(h) => ("To", h.value()),
        rsip::Header::CallId(h) => ("Call-ID", h.value()),
        rsip::Header::CSeq(h) => ("CSeq", h.value()),
        rsip::Header::Contact(h) => ("Contact", h.value()),
        rsip::Header::Supported(h) => ("Supported", h.value()),
        rsip::Header::Require(h) => ("Require", h.value()),
        rsip::Header::Allow(h) => ("Allow", h.value()),
        rsip::Header::UserAgent(h) => ("User-Agent", h.value()),
        rsip::Header::ContentType(h) => ("Content-Type", h.value()),
        rsip::Header::ContentLength(h) => ("Content-Length", h.value()),
        rsip::Header::Authorization(h) => ("Authorization", h.value()),
        rsip::Header::ProxyAuthorization(h) => ("Proxy-Authorization", h.value()),
        rsip::Header::RetryAfter(h) => ("Retry-After", h.value()),
        rsip::Header::WwwAuthenticate(h) => ("WWW-Authenticate", h.value()),
        rsip::Header::ProxyAuthenticate(h) => ("Proxy-Authenticate", h.value()),
        rsip::Header::Other(name, value) => (name.as_str(), value.as_str()),
        _ => return None,
    })
}

/// The headers RFC 3261 allows once in a message (section 7.3.1: only headers
/// whose grammar is a comma-separated list may repeat).
const SINGLE_HEADERS: [&str; 6] = [
    "Call-ID",
    "To",
    "From",
    "CSeq",
    "Max-Forwards",
    "Content-Length",
];

/// The compact header names of RFC 3261 section 7.3.3 (and the registered ones
/// rsip knows by their long name), which rsip does not know.
fn long_name(name: &[u8]) -> Option<&'static [u8]> {
    let [letter] = name else {
        return None;
    };
    Some(match letter.to_ascii_lowercase() {
        b'c' => b"Content-Type",
        b'e' => b"Content-Encoding",
        b'f' => b"From",
        b'i' => b"Call-ID",
        b'k' => b"Supported",
        b'l' => b"Content-Length",
        b'm' => b"Contact",
        b's' => b"Subject",
        b't' => b"To",
        b'v' => b"Via",
        _ => return None,
    })
}

fn is_wsp(byte: u8) -> bool {
    byte == b' ' || byte == b'\t'
}

/// Rewrites the start line and headers into the plain form rsip reads, leaving
/// their meaning alone (RFC 3261 section 7.3.1): folded lines are joined with a
/// single space, whitespace between a header name and its colon is dropped, and
/// compact names become long ones. The body is not touched.
fn normalize_head(bytes: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    let head_end = find_blank_line(bytes).map_or(bytes.len(), |at| at + 2);
    let (head, rest) = bytes.split_at(head_end);
    // Most messages need nothing: read them as they came.
    if !needs_normalizing(head) {
        return std::borrow::Cow::Borrowed(bytes);
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut lines = head.split_inclusive(|byte| *byte == b'\n').peekable();
    let mut first = true;
    while let Some(line) = lines.next() {
        if first {
            first = false;
            out.extend_from_slice(line);
            continue;
        }
        let mut line = line.to_vec();
        // Join the continuation lines that follow.
        while let Some(next) = lines.peek() {
            if !next.first().copied().is_some_and(is_wsp) || !line.ends_with(b"\r\n") {
                break;
            }
            line.truncate(line.len() - 2);
            line.push(b' ');
            let next = lines.next().unwrap_or_default();
            let start = next
                .iter()
                .position(|byte| !is_wsp(*byte))
                .unwrap_or(next.len());
            line.extend_from_slice(&next[start..]);
        }
        if let Some(colon) = line.iter().position(|byte| *byte == b':') {
            let name_end = line[..colon]
                .iter()
                .rposition(|byte| !is_wsp(*byte))
                .map_or(0, |at| at + 1);
            let name = &line[..name_end];
            if !name.is_empty() && !name.iter().any(|byte| is_wsp(*byte)) {
                let name = long_name(name).unwrap_or(name);
                out.extend_from_slice(name);
                if name.eq_ignore_ascii_case(b"Via") {
                    out.extend_from_slice(&tighten_slashes(&line[colon..]));
                } else {
                    out.extend_from_slice(&line[colon..]);
                }
                continue;
            }
        }
        out.extend_from_slice(&line);
    }
    out.extend_from_slice(rest);
    std::borrow::Cow::Owned(out)
}

/// Whether a head has anything [`normalize_head`] rewrites: a folded line, a
/// compact or space-padded header name, or spaces around a Via's slashes.
fn needs_normalizing(head: &[u8]) -> bool {
    // The lines after the start line, found with a wide scan for the line
    // feeds: this runs on every message.
    let mut line_feeds = memchr::memchr_iter(b'\n', head);
    let Some(mut start) = line_feeds.next().map(|at| at + 1) else {
        return false;
    };
    loop {
        let next = line_feeds.next();
        let end = next.unwrap_or(head.len());
        if line_needs_normalizing(&head[start..end]) {
            return true;
        }
        match next {
            Some(at) => start = at + 1,
            None => return false,
        }
    }
}

fn line_needs_normalizing(line: &[u8]) -> bool {
    if line.first().copied().is_some_and(is_wsp) {
        return true;
    }
    let Some(colon) = memchr::memchr(b':', line) else {
        return false;
    };
    let name = &line[..colon];
    if name.last().copied().is_some_and(is_wsp) || long_name(name).is_some() {
        return true;
    }
    name.eq_ignore_ascii_case(b"Via")
        && line[colon..]
            .windows(2)
            .any(|pair| pair == b"/ " || pair == b" /" || pair == b"/\t" || pair == b"\t/")
}

/// Drops the whitespace around the slashes of a Via's sent-protocol, which
/// RFC 3261 allows (`SLASH = SWS "/" SWS`) and rsip does not. A slash appears in
/// a Via nowhere else outside a quoted string.
fn tighten_slashes(value: &[u8]) -> Vec<u8> {
    let mut out: Vec<u8> = Vec::with_capacity(value.len());
    let mut quoted = false;
    let mut after_slash = false;
    for &byte in value {
        if byte == b'"' {
            quoted = !quoted;
        }
        if !quoted && byte == b'/' {
            while out.last().copied().is_some_and(is_wsp) {
                out.pop();
            }
            after_slash = true;
        } else if after_slash && is_wsp(byte) {
            continue;
        } else {
            after_slash = false;
        }
        out.push(byte);
    }
    out
}

/// The Request-URI of a request we wrote ourselves (see [`written_headers`]).
pub(crate) fn written_request_uri(request: &[u8]) -> &str {
    request_uri(request)
        .and_then(|uri| std::str::from_utf8(uri).ok())
        .unwrap_or_default()
}

/// The headers of a message we wrote ourselves, as names and values: every
/// message we send is in the plain form, one `Name: value` line per header.
pub(crate) fn written_headers(message: &[u8]) -> impl Iterator<Item = (&str, &str)> {
    let head_end = find_blank_line(message).unwrap_or(message.len());
    let head = std::str::from_utf8(&message[..head_end]).unwrap_or_default();
    head.split("\r\n")
        .skip(1)
        .filter_map(|line| line.split_once(": "))
}

/// The Request-URI as it stands on the request line, if this is a request.
fn request_uri(bytes: &[u8]) -> Option<&[u8]> {
    let line_end = bytes.iter().position(|byte| *byte == b'\r')?;
    let line = &bytes[..line_end];
    if line.starts_with(b"SIP/") {
        return None;
    }
    let mut parts = line.splitn(3, |byte| *byte == b' ');
    parts.next()?;
    parts.next()
}

/// Angle brackets, quotes and whitespace never appear raw in a URI (RFC 3261
/// section 25.1); a Request-URI with them is a name-addr or worse.
fn check_request_uri(uri: &[u8]) -> Result<(), MessageError> {
    match uri
        .iter()
        .find(|byte| matches!(byte, b'<' | b'>' | b'"') || byte.is_ascii_whitespace())
    {
        Some(byte) => Err(MessageError::InvalidRequestUri(format!(
            "`{}` may not appear in it",
            char::from(*byte)
        ))),
        None => Ok(()),
    }
}

/// Splits on `separator` (ASCII) outside quoted strings.
fn split_unquoted(value: &str, separator: u8) -> impl Iterator<Item = &str> {
    let mut rest = Some(value);
    std::iter::from_fn(move || {
        let text = rest?;
        let bytes = text.as_bytes();
        let mut quoted = false;
        let mut from = 0;
        // Every byte looked for is ASCII, and no byte of a longer UTF-8
        // sequence is, so a match is a character boundary.
        while let Some(found) = memchr::memchr3(b'"', b'\\', separator, &bytes[from..]) {
            let at = from + found;
            from = at + 1;
            match bytes[at] {
                // A quoted pair: the next byte is taken as it is.
                b'\\' if quoted => from = (at + 2).min(bytes.len()),
                b'"' => quoted = !quoted,
                byte if byte == separator && !quoted => {
                    rest = Some(&text[at + 1..]);
                    return Some(&text[..at]);
                }
                _ => {}
            }
        }
        rest = None;
        Some(text)
    })
}

/// A To, From or Contact value: quotes balanced, no whitespace inside the
/// angle brackets, and a URI with headers (`?`) only inside them (RFC 3261
/// sections 20.10 and 25.1).
fn check_address(value: &str) -> Result<(), String> {
    // Every character the check looks for is ASCII but whitespace, which
    // takes decoding only beyond ASCII.
    if value.is_ascii() {
        // Only these bytes, and the one after a backslash, can change the
        // check's state: it skips the rest.
        let mut after_backslash = false;
        let telling = value.bytes().filter(move |&byte| {
            let keep = after_backslash
                || matches!(
                    byte,
                    b'\\' | b'"' | b'<' | b'>' | b'?' | b'\t'..=b'\r' | b' '
                );
            after_backslash = !after_backslash && byte == b'\\';
            keep
        });
        check_address_characters(telling.map(char::from))
    } else {
        check_address_characters(value.chars())
    }
}

fn check_address_characters(characters: impl Iterator<Item = char>) -> Result<(), String> {
    let mut quoted = false;
    let mut escaped = false;
    let mut in_angle = false;
    let mut angled = false;
    for c in characters {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if quoted => escaped = true,
            '"' if !in_angle => quoted = !quoted,
            _ if quoted => {}
            '<' => {
                in_angle = true;
                angled = true;
            }
            '>' => in_angle = false,
            '?' if !in_angle && !angled => {
                return Err("a URI with headers must be in angle brackets".into());
            }
            c if in_angle && c.is_whitespace() => {
                return Err("whitespace inside the angle brackets".into());
            }
            _ => {}
        }
    }
    if quoted {
        return Err("an unterminated quoted string".into());
    }
    if in_angle {
        return Err("an unclosed angle bracket".into());
    }
    Ok(())
}

/// A Via value (RFC 3261 section 20.42): every entry a sent-protocol, a
/// sent-by and parameters that are not empty.
fn check_via(value: &str) -> Result<(), String> {
    for entry in split_unquoted(value, b',') {
        let mut parts = split_unquoted(entry, b';');
        let Some(first) = parts
            .next()
            .map(str::trim)
            .filter(|first| !first.is_empty())
        else {
            return Err("an empty entry".into());
        };
        check_sent_protocol_and_by(first)?;
        if parts.any(|param| param.trim().is_empty()) {
            return Err("an empty parameter".into());
        }
    }
    Ok(())
}

/// `SIP/2.0/UDP host[:port]`: the protocol `SIP`, a version and a transport
/// that are tokens, then a host name, an IPv4 address or a bracketed IPv6
/// reference, and a port of digits.
fn check_sent_protocol_and_by(text: &str) -> Result<(), String> {
    let Some((protocol, sent_by)) = text.split_once(|c: char| c.is_ascii_whitespace()) else {
        return Err("no sent-by after the protocol".into());
    };
    let mut fields = protocol.split('/');
    let (Some(name), Some(version), Some(transport), None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err(format!(
            "`{protocol}` is not a protocol, version and transport"
        ));
    };
    if !name.eq_ignore_ascii_case("SIP") || !is_token(version) || !is_token(transport) {
        return Err(format!("`{protocol}` is not a SIP sent-protocol"));
    }
    let sent_by = sent_by.trim();
    let (host, port) = match sent_by.strip_prefix('[') {
        Some(bracketed) => {
            let Some((address, after)) = bracketed.split_once(']') else {
                return Err("an unclosed IPv6 reference".into());
            };
            if address.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(format!("`{address}` is not an IPv6 address"));
            }
            match after {
                "" => ("", None),
                _ => match after.strip_prefix(':') {
                    Some(port) => ("", Some(port)),
                    None => return Err(format!("`{sent_by}` is not a host and port")),
                },
            }
        }
        None => match sent_by.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (sent_by, None),
        },
    };
    let host_ok = sent_by.starts_with('[')
        || (!host.is_empty()
            && host
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'.'));
    let port_ok = port.is_none_or(|port| {
        !port.is_empty() && port.len() <= 5 && port.bytes().all(|byte| byte.is_ascii_digit())
    });
    if !host_ok || !port_ok {
        return Err(format!("`{sent_by}` is not a host and port"));
    }
    Ok(())
}

/// An RFC 3261 token (section 25.1).
fn is_token(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(is_token_byte)
}

fn is_token_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&byte)
}

/// A request's Call-ID, CSeq and branch, without copying the request.
pub fn request_identity(request: &rsip::Request) -> Result<Identity, MessageError> {
    identity_of(request, Some(&request.method))
}

/// The identity from the raw header values: the header scans here run for
/// every message in and out, so they read the text instead of building
/// typed headers. [`Message::parse`] has already checked the Via and CSeq
/// of anything that came from the wire.
fn identity_of(
    headers: &dyn HeadersExt,
    method: Option<&rsip::Method>,
) -> Result<Identity, MessageError> {
    let found = IdentityHeaders {
        via: headers.via_header().ok().map(UntypedHeader::value),
        from: headers.from_header().is_ok(),
        to: headers.to_header().is_ok(),
        call_id: headers.call_id_header().ok().map(UntypedHeader::value),
        cseq: headers.cseq_header().ok().map(UntypedHeader::value),
    };
    found
        .identity(method)
        .map(|identity| identity.to_owned_identity())
}

/// An identity as read, borrowing the message's text.
struct IdentityRef<'a> {
    call_id: &'a str,
    cseq: u32,
    cseq_method: rsip::Method,
    branch: Option<&'a str>,
}

impl IdentityRef<'_> {
    fn to_owned_identity(&self) -> Identity {
        Identity {
            call_id: self.call_id.to_owned(),
            cseq: self.cseq,
            cseq_method: self.cseq_method,
            branch: self.branch.map(str::to_owned),
        }
    }
}

/// The first of each header a message's identity is read from, as found.
struct IdentityHeaders<'a> {
    via: Option<&'a str>,
    from: bool,
    to: bool,
    call_id: Option<&'a str>,
    cseq: Option<&'a str>,
}

impl<'a> IdentityHeaders<'a> {
    /// The identity, or the first mandatory header missing or malformed.
    fn identity(&self, method: Option<&rsip::Method>) -> Result<IdentityRef<'a>, MessageError> {
        let via = self.via.ok_or(MessageError::MissingHeader("Via"))?;
        if !self.from {
            return Err(MessageError::MissingHeader("From"));
        }
        if !self.to {
            return Err(MessageError::MissingHeader("To"));
        }
        let call_id = self
            .call_id
            .ok_or(MessageError::MissingHeader("Call-ID"))?
            .trim();
        let cseq = self.cseq.ok_or(MessageError::MissingHeader("CSeq"))?;
        let mut parts = cseq.split_whitespace();
        let seq = parts
            .next()
            .and_then(|seq| seq.parse::<u32>().ok())
            .ok_or_else(|| invalid("CSeq", "the sequence number is not a number below 2^32"))?;
        let cseq_method = parts
            .next()
            .and_then(|name| name.parse::<rsip::Method>().ok())
            .ok_or_else(|| invalid("CSeq", "no known method after the sequence number"))?;
        if parts.next().is_some() {
            return Err(invalid("CSeq", "more than a number and a method"));
        }
        if let Some(method) = method
            && *method != cseq_method
            && *method != rsip::Method::Ack
        {
            return Err(MessageError::CseqMismatch {
                cseq: cseq_method.to_string(),
                method: method.to_string(),
            });
        }
        Ok(IdentityRef {
            call_id,
            cseq: seq,
            cseq_method,
            branch: branch_of(via),
        })
    }
}

/// The `branch` parameter of the first Via value (parameter names are
/// case-insensitive).
fn branch_of(via: &str) -> Option<&str> {
    let first = via.split(',').next()?;
    first.split(';').skip(1).find_map(|parameter| {
        let (name, value) = parameter.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("branch")
            .then(|| value.trim())
    })
}

fn invalid(header: &'static str, error: impl std::fmt::Display) -> MessageError {
    MessageError::InvalidHeader {
        header,
        reason: error.to_string(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub const INVITE: &str = "INVITE sip:+8613800138000@127.0.0.1:5070 SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK776asdhds\r\n\
Max-Forwards: 70\r\n\
To: <sip:+8613800138000@127.0.0.1:5070>\r\n\
From: <sip:dialhound@127.0.0.1>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@127.0.0.1\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:dialhound@127.0.0.1:5060>\r\n\
Content-Length: 0\r\n\r\n";

    pub fn response(status: u16, method: &str, cseq: u32) -> String {
        format!(
            "SIP/2.0 {status} Status\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK776asdhds\r\n\
To: <sip:+8613800138000@127.0.0.1:5070>;tag=a6c85cf\r\n\
From: <sip:dialhound@127.0.0.1>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@127.0.0.1\r\n\
CSeq: {cseq} {method}\r\n\
Content-Length: 0\r\n\r\n"
        )
    }

    #[test]
    fn a_request_parses_with_its_identity() {
        let message = Message::parse(INVITE.as_bytes()).unwrap();
        let identity = message.identity().unwrap();
        assert_eq!(identity.call_id, "a84b4c76e66710@127.0.0.1");
        assert_eq!(identity.cseq, 314159);
        assert_eq!(identity.cseq_method, rsip::Method::Invite);
        assert_eq!(identity.branch.as_deref(), Some("z9hG4bK776asdhds"));
        assert_eq!(message.status(), None);
        assert_eq!(message.call_id(), "a84b4c76e66710@127.0.0.1");
    }

    #[test]
    fn a_response_parses_with_its_status() {
        let message = Message::parse(response(486, "INVITE", 314159).as_bytes()).unwrap();
        assert_eq!(message.status(), Some(486));
    }

    #[test]
    fn every_mandatory_header_is_required() {
        for header in ["Via", "To", "From", "Call-ID", "CSeq", "Max-Forwards"] {
            let without: String = INVITE
                .split("\r\n")
                .filter(|line| !line.starts_with(&format!("{header}:")))
                .collect::<Vec<_>>()
                .join("\r\n");
            let error = Message::parse(without.as_bytes()).unwrap_err();
            assert_eq!(
                error,
                MessageError::MissingHeader(header),
                "without {header}"
            );
        }
    }

    #[test]
    fn malformed_headers_and_garbage_are_errors() {
        let bad_cseq = INVITE.replace("CSeq: 314159 INVITE", "CSeq: many INVITE");
        assert!(matches!(
            Message::parse(bad_cseq.as_bytes()),
            Err(MessageError::InvalidHeader { header: "CSeq", .. })
        ));
        let mismatch = INVITE.replace("CSeq: 314159 INVITE", "CSeq: 314159 BYE");
        assert!(matches!(
            Message::parse(mismatch.as_bytes()),
            Err(MessageError::CseqMismatch { .. })
        ));
        for garbage in [
            &b""[..],
            b"\x00\x01\x02",
            b"SIP/2.0\r\n\r\n",
            b"INVITE\r\n\r\n",
            &[0xff; 300],
        ] {
            assert!(Message::parse(garbage).is_err());
        }
    }

    #[test]
    fn folded_lines_spaced_colons_and_compact_names_are_read() {
        let message = INVITE
            .replace(
                "Call-ID: a84b4c76e66710@127.0.0.1",
                "i :\r\n a84b4c76e66710@127.0.0.1",
            )
            .replace("Via: SIP/2.0/UDP", "v: SIP /  2.0\r\n\t/ UDP")
            .replace("CSeq: 314159 INVITE", "CSeq  : 314159\r\n  INVITE");
        let identity = Message::parse(message.as_bytes())
            .unwrap()
            .identity()
            .unwrap();
        assert_eq!(identity.call_id, "a84b4c76e66710@127.0.0.1");
        assert_eq!(identity.cseq_method, rsip::Method::Invite);
        assert_eq!(identity.branch.as_deref(), Some("z9hG4bK776asdhds"));
    }

    #[test]
    fn the_body_is_held_to_content_length() {
        let with_body = INVITE.replace("Content-Length: 0", "Content-Length: 4");
        let short = format!("{with_body}abc");
        assert_eq!(
            Message::parse(short.as_bytes()),
            Err(MessageError::TruncatedBody {
                declared: 4,
                actual: 3
            })
        );
        let long = format!("{with_body}abcdEXTRA");
        let Message::Request(request) = Message::parse(long.as_bytes()).unwrap() else {
            panic!("a request");
        };
        assert_eq!(request.body, b"abcd");
        let negative = INVITE.replace("Content-Length: 0", "Content-Length: -1");
        assert!(matches!(
            Message::parse(negative.as_bytes()),
            Err(MessageError::InvalidHeader {
                header: "Content-Length",
                ..
            })
        ));
    }

    #[test]
    fn single_headers_may_not_repeat() {
        let twice = INVITE.replace(
            "CSeq: 314159 INVITE\r\n",
            "CSeq: 314159 INVITE\r\nCSeq: 314160 INVITE\r\n",
        );
        assert_eq!(
            Message::parse(twice.as_bytes()),
            Err(MessageError::DuplicateHeader("CSeq"))
        );
    }

    #[test]
    fn malformed_addresses_uris_and_vias_are_rejected() {
        for (from, to) in [
            ("To: <sip:", "To: \"Unclosed <sip:"),
            ("To: <sip:", "To: < sip:"),
            (
                "Contact: <sip:dialhound@127.0.0.1:5060>",
                "Contact: sip:a@b?Route=x",
            ),
            ("branch=z9hG4bK776asdhds", "branch=z9hG4bK776asdhds;;,"),
            ("SIP/2.0/UDP 127.0.0.1:5060", "SIP/2.0/UDP 127.0.0.1:50x60"),
            ("SIP/2.0/UDP 127.0.0.1:5060", "SIP/2.0 127.0.0.1:5060"),
            ("SIP/2.0/UDP 127.0.0.1:5060", "SIP/2.0/UDP"),
            ("SIP/2.0/UDP 127.0.0.1:5060", "SIP/2.0/UDP [::1"),
            ("SIP/2.0/UDP 127.0.0.1:5060", "SIP/2.0/UDP host_name"),
            (
                "INVITE sip:+8613800138000@127.0.0.1:5070 SIP",
                "INVITE <sip:a@b> SIP",
            ),
        ] {
            let bad = INVITE.replace(from, to);
            assert_ne!(bad, INVITE, "{to}");
            assert!(Message::parse(bad.as_bytes()).is_err(), "{to}");
        }
    }

    #[test]
    fn vias_with_ipv6_and_no_port_are_read() {
        for sent_by in [
            "[2001:db8::9:1]:5060",
            "[::1]",
            "proxy.example.com",
            "10.0.0.1",
        ] {
            let via = INVITE.replace("127.0.0.1:5060;branch", &format!("{sent_by};branch"));
            assert!(Message::parse(via.as_bytes()).is_ok(), "{sent_by}");
        }
    }

    #[test]
    fn plain_responses_read_as_rsip_reads_them() {
        let ok = response(200, "INVITE", 1);
        let cases = [
            ok.clone(),
            ok.replace("200 Status", "299 Whatever it is"),
            ok.replace("200 Status", "180 Ringing"),
            ok.replace("200 Status", "404 "),
            ok.replace("Content-Length: 0", "Content-Length:4") + "v=0\n",
            ok.replace("To:", "tO:\t "),
            ok.replace("To: ", "To:"),
            ok.replace("\r\nTo", "\nTo"),
            ok.replace("Call-ID", "X-Odd!%*_+`'~"),
            ok.replace("Call-ID: ", "Call-ID:  \t"),
            ok.replace("Status", "St\u{e4}tus \u{4f60}\u{597d}"),
            ok.replace("200 Status", "099 Odd\nreason"),
            ok.replace("\r\n\r\n", "\r\n"),
        ];
        let mut read = 0;
        for case in &cases {
            assert!(
                plain_response_reading_agrees_with_rsip(case.as_bytes()),
                "{case}"
            );
            read += usize::from(Response::read_plain(case.as_bytes()).is_some());
        }
        assert!(read >= 9, "the common shapes take the plain path: {read}");
        // Shapes left to rsip.
        for odd in [
            ok.replace("SIP/2.0 200", "SIP/2.0  200"),
            ok.replace("SIP/2.0", "SIP/3.0"),
            ok.replace("200", "2x0"),
            ok.replace("To:", "To :"),
            ok.replace("\r\n\r\n", "\r\n"),
        ] {
            assert!(Response::read_plain(odd.as_bytes()).is_none(), "{odd}");
        }
    }

    #[test]
    fn a_response_is_asked_for_its_headers_by_name() {
        let text = response(180, "INVITE", 1).replace(
            "Content-Length: 0",
            "Record-Route: <sip:p2;lr>\r\nrecord-route: <sip:p1;lr>\r\nContent-Length: 3",
        ) + "abcEXTRA";
        let Message::Response(ringing) = Message::parse(text.as_bytes()).unwrap() else {
            panic!("a response");
        };
        assert_eq!(ringing.status(), 180);
        assert_eq!(ringing.reason(), "Status");
        assert_eq!(ringing.header("call-id"), Some("a84b4c76e66710@127.0.0.1"));
        assert_eq!(
            ringing.headers_named("Record-Route").collect::<Vec<_>>(),
            ["<sip:p2;lr>", "<sip:p1;lr>"]
        );
        assert_eq!(ringing.header("Retry-After"), None);
        assert_eq!(ringing.body(), b"abc");
        let identity = Message::Response(ringing.clone()).identity().unwrap();
        assert_eq!(identity.call_id, ringing.call_id());
        assert_eq!(identity.branch.as_deref(), Some("z9hG4bK776asdhds"));
        assert_eq!(
            (identity.cseq, identity.cseq_method),
            (1, rsip::Method::Invite)
        );
    }

    #[test]
    fn a_response_rsip_reads_in_an_odd_shape_is_read_the_same() {
        let odd = response(486, "INVITE", 7).replace("SIP/2.0 486", "SIP/2.0  486");
        let rsip::SipMessage::Response(by_rsip) = rsip::SipMessage::try_from(odd.as_str()).unwrap()
        else {
            panic!("a response");
        };
        let Message::Response(read) = Message::parse(odd.as_bytes()).unwrap() else {
            panic!("a response");
        };
        assert_eq!(read.to_rsip(), by_rsip);
        assert_eq!(read.status(), 486);
        assert_eq!(read.cseq(), 7);
        assert_eq!(read.call_id(), "a84b4c76e66710@127.0.0.1");
        assert_eq!(read.branch(), Some("z9hG4bK776asdhds"));
    }

    #[test]
    fn quoted_strings_and_their_escapes_are_honoured() {
        let parts = |value| split_unquoted(value, b',').collect::<Vec<_>>();
        assert_eq!(parts(r#"a,"b,c",d"#), ["a", r#""b,c""#, "d"]);
        assert_eq!(parts(r#""x\",y",z"#), [r#""x\",y""#, "z"]);
        assert_eq!(parts(r#"\,"\\",w"#), ["\\", r#""\\""#, "w"]);
        assert_eq!(
            parts("\u{4f60},\"\u{597d},\""),
            ["\u{4f60}", "\"\u{597d},\""]
        );
        assert_eq!(parts(r#""\"#), [r#""\"#]);
        for good in [
            r#""A \"B\" <x>" <sip:a@b>;tag=1"#,
            "<sip:a@b?Route=x>",
            "\"\u{4f60} \u{597d}\" <sip:a@b>",
            r#""\\" <sip:a@b>"#,
        ] {
            assert_eq!(check_address(good), Ok(()), "{good}");
        }
        for bad in [
            r#""A \" <sip:a@b>"#,
            "<sip:a@b\u{3000}x>",
            "<sip:a@b\x0bx>",
            "sip:a@b?Route=x",
            "<sip:a@b",
        ] {
            assert!(check_address(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn method_names_are_what_rsip_prints() {
        for method in rsip::Method::all() {
            assert_eq!(method_name(method), method.to_string());
        }
    }

    #[test]
    fn find_blank_line_finds_the_end_of_the_head() {
        assert_eq!(find_blank_line(b"a\r\nb\r\r\n\r\n"), Some(5));
        assert_eq!(find_blank_line(b"a\r\n\r"), None);
        assert_eq!(find_blank_line(b"\r\n\r\nbody\r\n\r\n"), Some(0));
    }

    #[test]
    fn find_crlf_finds_the_first_cr_followed_by_lf() {
        assert_eq!(find_crlf(b"a\r\rb\r\n"), Some(4));
        assert_eq!(find_crlf(b"a\r"), None);
        assert_eq!(find_crlf(b"\r\n"), Some(0));
    }

    #[test]
    fn encoding_writes_what_rsip_prints() {
        let ok = response(200, "INVITE", 314159)
            .replace("Content-Length: 0", "Record-Route: <sip:p1;lr>\r\nContact: <sip:b@c>\r\nWarning: 399 x \"y\"\r\nRetry-After: 5\r\nWWW-Authenticate: Digest realm=\"a\"\r\nProxy-Authenticate: Digest realm=\"b\"\r\nX-Custom: 1\r\nContent-Type: application/sdp\r\nContent-Length: 4")
            + "v=0\n";
        for text in [INVITE.to_owned(), ok] {
            let (encoded, printed) = match Message::parse(text.as_bytes()).unwrap() {
                Message::Request(request) => (encode_request(&request), request.to_string()),
                Message::Response(response) => {
                    let response = response.to_rsip();
                    (encode_response(&response), response.to_string())
                }
            };
            assert_eq!(String::from_utf8(encoded).unwrap(), printed);
        }
    }

    #[test]
    fn no_truncation_of_a_valid_message_panics() {
        for end in 0..INVITE.len() {
            let _ = Message::parse(&INVITE.as_bytes()[..end]);
        }
    }
}
