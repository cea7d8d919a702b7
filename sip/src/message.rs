//! SIP messages: rsip does the parsing and printing; this module decides what a
//! usable message is and gives the rest of dialhound our own view of it, so the
//! parser can be swapped without touching the state machines.

use rsip::headers::ToTypedHeader;
use rsip::message::HeadersExt;

/// A request or response that parsed and carries every mandatory header.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    Request(rsip::Request),
    Response(rsip::Response),
}

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
        let parsed = std::panic::catch_unwind(|| rsip::SipMessage::try_from(bytes))
            .map_err(|_| MessageError::Unparsable("the parser failed on this input".into()))?
            .map_err(|error| MessageError::Unparsable(error.to_string()))?;
        let message = match parsed {
            rsip::SipMessage::Request(request) => Message::Request(request),
            rsip::SipMessage::Response(response) => Message::Response(response),
        };
        message.identity()?;
        if let Message::Request(request) = &message {
            let max_forwards = request
                .max_forwards_header()
                .map_err(|_| MessageError::MissingHeader("Max-Forwards"))?;
            max_forwards
                .num()
                .map_err(|error| invalid("Max-Forwards", error))?;
        }
        Ok(message)
    }

    /// Call-ID, CSeq and branch; checks From and To on the way.
    pub fn identity(&self) -> Result<Identity, MessageError> {
        let headers: &dyn HeadersExt = match self {
            Message::Request(request) => request,
            Message::Response(response) => response,
        };
        let via = headers
            .via_header()
            .map_err(|_| MessageError::MissingHeader("Via"))?;
        let via = via.clone().typed().map_err(|error| invalid("Via", error))?;
        headers
            .from_header()
            .map_err(|_| MessageError::MissingHeader("From"))?;
        headers
            .to_header()
            .map_err(|_| MessageError::MissingHeader("To"))?;
        let call_id = headers
            .call_id_header()
            .map_err(|_| MessageError::MissingHeader("Call-ID"))?;
        let call_id = rsip::headers::UntypedHeader::value(call_id).to_owned();
        let cseq = headers
            .cseq_header()
            .map_err(|_| MessageError::MissingHeader("CSeq"))?
            .clone()
            .typed()
            .map_err(|error| invalid("CSeq", error))?;
        if let Message::Request(request) = self
            && request.method != cseq.method
            && request.method != rsip::Method::Ack
        {
            return Err(MessageError::CseqMismatch {
                cseq: cseq.method.to_string(),
                method: request.method.to_string(),
            });
        }
        Ok(Identity {
            call_id: call_id.trim().to_owned(),
            cseq: cseq.seq,
            cseq_method: cseq.method,
            branch: via.branch().map(|branch| branch.to_string()),
        })
    }

    /// The status of a response.
    pub fn status(&self) -> Option<u16> {
        match self {
            Message::Response(response) => Some(response.status_code.code()),
            Message::Request(_) => None,
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            Message::Request(request) => request.to_string().into_bytes(),
            Message::Response(response) => response.to_string().into_bytes(),
        }
    }
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
    fn no_truncation_of_a_valid_message_panics() {
        for end in 0..INVITE.len() {
            let _ = Message::parse(&INVITE.as_bytes()[..end]);
        }
    }
}
