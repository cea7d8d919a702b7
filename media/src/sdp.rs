//! SDP offer/answer (RFC 3264) for one G.711 audio stream, over webrtc-rs's `sdp`
//! crate.
//!
//! dialhound offers PCMU, PCMA and RFC 4733 telephone events on a single
//! `RTP/AVP` audio stream. Both the answer to that offer and an offer the peer
//! sends in a re-INVITE (hold, unhold, a new address) come down to the same
//! [`Negotiated`] summary: which codec and payload types to use, how long a
//! packet should be, which way media flows, and where to send it. Everything
//! read here comes from the network, so every way an SDP can be unusable is an
//! [`SdpError`] variant, never a panic.

use std::io::Cursor;
use std::net::{IpAddr, SocketAddr};

use sdp::SessionDescription;
use sdp::description::common::{Address, Attribute, ConnectionInformation};
use sdp::description::media::{MediaDescription, MediaName, RangedPort};
use sdp::description::session::{TimeDescription, Timing};

/// The G.711 codecs dialhound speaks, in the order it prefers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// G.711 µ-law, static payload type 0.
    Pcmu,
    /// G.711 A-law, static payload type 8.
    Pcma,
}

impl Codec {
    /// The RTP/AVP static payload type (RFC 3551 table 4).
    pub fn static_payload_type(self) -> u8 {
        match self {
            Codec::Pcmu => 0,
            Codec::Pcma => 8,
        }
    }

    /// The encoding name used in `a=rtpmap`.
    pub fn encoding_name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
        }
    }

    fn from_static_payload_type(payload_type: u8) -> Option<Codec> {
        match payload_type {
            0 => Some(Codec::Pcmu),
            8 => Some(Codec::Pcma),
            _ => None,
        }
    }

    fn from_encoding_name(name: &str) -> Option<Codec> {
        if name.eq_ignore_ascii_case("PCMU") {
            Some(Codec::Pcmu)
        } else if name.eq_ignore_ascii_case("PCMA") {
            Some(Codec::Pcma)
        } else {
            None
        }
    }
}

/// Which way media flows, as the SDP that carries it states it: from the
/// point of view of whoever wrote that SDP (RFC 3264 §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    /// The direction seen from the other end: what the peer sends, we receive.
    /// This is also the direction an answer carries for an offer (RFC 3264
    /// §6.1), given that dialhound itself is always willing to send and receive.
    pub fn mirrored(self) -> Direction {
        match self {
            Direction::SendRecv => Direction::SendRecv,
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            Direction::Inactive => Direction::Inactive,
        }
    }

    /// Whether the side this direction describes sends media.
    pub fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    /// Whether the side this direction describes receives media.
    pub fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }

    /// The attribute name, `sendrecv` and so on.
    pub fn attribute(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    fn from_attribute(key: &str) -> Option<Direction> {
        match key {
            "sendrecv" => Some(Direction::SendRecv),
            "sendonly" => Some(Direction::SendOnly),
            "recvonly" => Some(Direction::RecvOnly),
            "inactive" => Some(Direction::Inactive),
            _ => None,
        }
    }

    /// The same direction with receiving taken away: an RFC 2543 style hold
    /// (`c=0.0.0.0`) means "do not send to me", whatever the attribute says.
    fn without_receiving(self) -> Direction {
        match self {
            Direction::SendRecv | Direction::SendOnly => Direction::SendOnly,
            Direction::RecvOnly | Direction::Inactive => Direction::Inactive,
        }
    }
}

/// The `o=` line's session id and version (RFC 4566 §5.2). The caller chooses
/// them, typically a random id once per call and a version that goes up by one
/// with every new SDP it sends in that call (RFC 3264 §8), so that nothing in
/// here depends on a clock or a random number generator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    pub session_id: u64,
    pub session_version: u64,
}

/// What an offer/answer exchange settled on for the audio stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    pub codec: Codec,
    /// The payload type the peer uses for `codec`; 0 or 8 unless the peer
    /// mapped G.711 to a dynamic type.
    pub payload_type: u8,
    /// The payload type of `telephone-event/8000`, when the peer supports RFC
    /// 4733 events. Without it, DTMF has to be detected in the audio.
    pub telephone_event: Option<u8>,
    /// Milliseconds of audio the peer wants in each packet it receives.
    pub ptime_ms: u32,
    /// The direction as the peer's SDP states it, from the peer's side.
    pub remote_direction: Direction,
    /// Where to send RTP until the peer's own packets say otherwise (see the
    /// RTP session's latching).
    pub remote_rtp: SocketAddr,
}

impl Negotiated {
    /// The direction from our side: whether we should send and expect media.
    pub fn local_direction(&self) -> Direction {
        self.remote_direction.mirrored()
    }
}

/// Why a peer's SDP cannot be used. Every variant is the peer's doing: its SDP
/// is malformed or incompatible with what dialhound supports.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    #[error("the SDP does not parse: {0}")]
    Unparsable(String),
    #[error("the SDP has no audio stream")]
    NoAudioStream,
    #[error("the peer rejected the audio stream (port 0)")]
    StreamRejected,
    #[error("the audio stream uses transport `{0}`, dialhound speaks only RTP/AVP")]
    UnsupportedTransport(String),
    #[error("no codec in common: the audio stream offers payload types `{0}`")]
    NoCommonCodec(String),
    #[error("no connection address at session or media level")]
    NoConnectionAddress,
    #[error("connection address `{0}` is not an IPv4 or IPv6 address")]
    ConnectionAddress(String),
    #[error("`a=ptime:{0}` is not a packet time in milliseconds from 1 to 200")]
    Ptime(String),
}

/// The SDP offer dialhound puts in an INVITE: PCMU, PCMA and telephone events
/// on one audio stream, 20 ms packets, sending and receiving.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    address: IpAddr,
    rtp_port: u16,
    origin: Origin,
    direction: Direction,
}

/// The payload type dialhound offers for RFC 4733 events. 101 is not special,
/// only customary, which saves surprises with picky peers.
pub const TELEPHONE_EVENT_PAYLOAD_TYPE: u8 = 101;

/// The packet time dialhound offers and assumes when the peer names none.
pub const DEFAULT_PTIME_MS: u32 = 20;

impl Offer {
    pub fn new(address: IpAddr, rtp_port: u16, origin: Origin) -> Offer {
        Offer {
            address,
            rtp_port,
            origin,
            direction: Direction::SendRecv,
        }
    }

    /// Another direction than `sendrecv`, e.g. `sendonly` to put the peer on
    /// hold while a prompt still plays to it.
    pub fn direction(mut self, direction: Direction) -> Offer {
        self.direction = direction;
        self
    }

    /// The offer as SDP text with CRLF line ends.
    pub fn to_sdp(&self) -> String {
        let formats = [
            (Codec::Pcmu.static_payload_type(), "PCMU/8000"),
            (Codec::Pcma.static_payload_type(), "PCMA/8000"),
            (TELEPHONE_EVENT_PAYLOAD_TYPE, "telephone-event/8000"),
        ];
        let mut media = audio_stream(self.rtp_port, formats.iter().map(|(pt, _)| *pt));
        for (payload_type, encoding) in formats {
            media.attributes.push(attribute(
                "rtpmap",
                Some(format!("{payload_type} {encoding}")),
            ));
        }
        media.attributes.push(attribute(
            "fmtp",
            Some(format!("{TELEPHONE_EVENT_PAYLOAD_TYPE} 0-16")),
        ));
        media
            .attributes
            .push(attribute("ptime", Some(DEFAULT_PTIME_MS.to_string())));
        media
            .attributes
            .push(attribute(self.direction.attribute(), None));
        session(self.address, self.origin, vec![media]).marshal()
    }
}

/// Reads the peer's answer to our [`Offer`]: the first audio stream's first
/// codec we support, its telephone-event payload type, packet time, direction
/// and RTP address.
pub fn negotiate_answer(answer: &[u8]) -> Result<Negotiated, SdpError> {
    let description = parse(answer)?;
    let media = description
        .media_descriptions
        .iter()
        .find(|media| media.media_name.media == "audio")
        .ok_or(SdpError::NoAudioStream)?;
    negotiate_stream(&description, media, None)
}

/// Answers an offer the peer sent mid-call: a re-INVITE for hold or unhold, or
/// to move its media to another address. The answer keeps `current_codec` when the offer still contains it, so
/// the stream does not switch codecs under a playing prompt, and mirrors the
/// peer's direction: a peer that holds us with `sendonly` gets `recvonly`.
///
/// Streams other than the first audio stream are refused with port 0 in the
/// answer, as RFC 3264 §6 asks (an answer has one stream per offered stream).
pub fn answer_offer(
    offer: &[u8],
    address: IpAddr,
    rtp_port: u16,
    origin: Origin,
    current_codec: Option<Codec>,
) -> Result<(Vec<u8>, Negotiated), SdpError> {
    let description = parse(offer)?;
    let audio_index = description
        .media_descriptions
        .iter()
        .position(|media| media.media_name.media == "audio")
        .ok_or(SdpError::NoAudioStream)?;
    let offered = &description.media_descriptions[audio_index];
    let negotiated = negotiate_stream(&description, offered, current_codec)?;

    let mut streams = Vec::with_capacity(description.media_descriptions.len());
    for (index, media) in description.media_descriptions.iter().enumerate() {
        if index == audio_index {
            streams.push(answer_stream(rtp_port, &negotiated));
        } else {
            streams.push(refused_stream(media));
        }
    }
    let answer = session(address, origin, streams).marshal();
    Ok((answer.into_bytes(), negotiated))
}

fn parse(bytes: &[u8]) -> Result<SessionDescription, SdpError> {
    SessionDescription::unmarshal(&mut Cursor::new(bytes))
        .map_err(|error| SdpError::Unparsable(error.to_string()))
}

/// The shared part of reading an answer or an offer: one audio stream against
/// the session it belongs to. `preferred` wins over the stream's own order when
/// the stream contains it.
fn negotiate_stream(
    description: &SessionDescription,
    media: &MediaDescription,
    preferred: Option<Codec>,
) -> Result<Negotiated, SdpError> {
    let port = u16::try_from(media.media_name.port.value).unwrap_or(0);
    if port == 0 {
        return Err(SdpError::StreamRejected);
    }
    let transport = media.media_name.protos.join("/");
    if transport != "RTP/AVP" {
        return Err(SdpError::UnsupportedTransport(transport));
    }

    let formats: Vec<(u8, Format)> = media
        .media_name
        .formats
        .iter()
        .filter_map(|format| format.parse::<u8>().ok())
        // RTP has seven bits for the payload type.
        .filter(|payload_type| *payload_type <= 127)
        .map(|payload_type| (payload_type, format_of(media, payload_type)))
        .collect();
    let codecs = || {
        formats
            .iter()
            .filter_map(|(payload_type, format)| match format {
                Format::Audio(codec) => Some((*codec, *payload_type)),
                _ => None,
            })
    };
    let chosen = preferred
        .and_then(|wanted| codecs().find(|(codec, _)| *codec == wanted))
        .or_else(|| codecs().next());
    let Some((codec, payload_type)) = chosen else {
        return Err(SdpError::NoCommonCodec(media.media_name.formats.join(" ")));
    };
    let telephone_event = formats
        .iter()
        .find(|(_, format)| *format == Format::TelephoneEvent)
        .map(|(payload_type, _)| *payload_type);

    let ptime_ms = match media_or_session_attribute(description, media, "ptime") {
        None => DEFAULT_PTIME_MS,
        Some(value) => {
            let value = value.unwrap_or_default();
            match value.trim().parse::<u32>() {
                Ok(ptime) if (1..=200).contains(&ptime) => ptime,
                _ => return Err(SdpError::Ptime(value.to_string())),
            }
        }
    };

    let connection = media
        .connection_information
        .as_ref()
        .or(description.connection_information.as_ref())
        .and_then(|connection| connection.address.as_ref())
        .ok_or(SdpError::NoConnectionAddress)?;
    let ip: IpAddr = connection
        .address
        .parse()
        .map_err(|_| SdpError::ConnectionAddress(connection.address.clone()))?;

    let stated = direction_in(&media.attributes)
        .or_else(|| direction_in(&description.attributes))
        .unwrap_or(Direction::SendRecv);
    let remote_direction = if ip.is_unspecified() {
        stated.without_receiving()
    } else {
        stated
    };

    Ok(Negotiated {
        codec,
        payload_type,
        telephone_event,
        ptime_ms,
        remote_direction,
        remote_rtp: SocketAddr::new(ip, port),
    })
}

/// What a payload type on an `m=` line stands for, as far as dialhound cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Audio(Codec),
    TelephoneEvent,
    Other,
}

/// Reads `a=rtpmap` for a payload type; without one, a static payload type
/// means what RFC 3551 says it means.
fn format_of(media: &MediaDescription, payload_type: u8) -> Format {
    let rtpmap = media
        .attributes
        .iter()
        .filter(|attribute| attribute.key == "rtpmap")
        .filter_map(|attribute| attribute.value.as_deref())
        .find_map(|value| {
            let (number, encoding) = value.trim().split_once(' ')?;
            (number.parse::<u8>().ok()? == payload_type).then_some(encoding.trim())
        });
    let Some(encoding) = rtpmap else {
        return Codec::from_static_payload_type(payload_type).map_or(Format::Other, Format::Audio);
    };
    let mut parts = encoding.split('/');
    let name = parts.next().unwrap_or_default();
    let clock_rate = parts.next().and_then(|rate| rate.parse::<u32>().ok());
    let channels = parts.next().map(|channels| channels.parse::<u32>().ok());
    // G.711 and telephone events for it run at 8 kHz, mono.
    if clock_rate != Some(8000) || !matches!(channels, None | Some(Some(1))) {
        return Format::Other;
    }
    if name.eq_ignore_ascii_case("telephone-event") {
        Format::TelephoneEvent
    } else {
        Codec::from_encoding_name(name).map_or(Format::Other, Format::Audio)
    }
}

/// A media-level attribute, else the session-level one; `Some(None)` for an
/// attribute present without a value.
fn media_or_session_attribute<'a>(
    description: &'a SessionDescription,
    media: &'a MediaDescription,
    key: &str,
) -> Option<Option<&'a str>> {
    media
        .attributes
        .iter()
        .chain(description.attributes.iter())
        .find(|attribute| attribute.key == key)
        .map(|attribute| attribute.value.as_deref())
}

fn direction_in(attributes: &[Attribute]) -> Option<Direction> {
    attributes
        .iter()
        .find_map(|attribute| Direction::from_attribute(&attribute.key))
}

fn answer_stream(rtp_port: u16, negotiated: &Negotiated) -> MediaDescription {
    let payload_types = std::iter::once(negotiated.payload_type).chain(negotiated.telephone_event);
    let mut media = audio_stream(rtp_port, payload_types);
    media.attributes.push(attribute(
        "rtpmap",
        Some(format!(
            "{} {}/8000",
            negotiated.payload_type,
            negotiated.codec.encoding_name()
        )),
    ));
    if let Some(event) = negotiated.telephone_event {
        media.attributes.push(attribute(
            "rtpmap",
            Some(format!("{event} telephone-event/8000")),
        ));
        media
            .attributes
            .push(attribute("fmtp", Some(format!("{event} 0-16"))));
    }
    media
        .attributes
        .push(attribute("ptime", Some(DEFAULT_PTIME_MS.to_string())));
    media
        .attributes
        .push(attribute(negotiated.local_direction().attribute(), None));
    media
}

/// A stream we do not take, answered with port 0 and the offer's own media,
/// transport and first format, so the answer lines up with the offer.
fn refused_stream(offered: &MediaDescription) -> MediaDescription {
    MediaDescription {
        media_name: MediaName {
            media: offered.media_name.media.clone(),
            port: RangedPort {
                value: 0,
                range: None,
            },
            protos: offered.media_name.protos.clone(),
            formats: offered.media_name.formats.iter().take(1).cloned().collect(),
        },
        ..MediaDescription::default()
    }
}

fn audio_stream(rtp_port: u16, payload_types: impl Iterator<Item = u8>) -> MediaDescription {
    MediaDescription {
        media_name: MediaName {
            media: "audio".to_string(),
            port: RangedPort {
                // Lossless: isize is at least 32 bits wherever dialhound runs.
                value: rtp_port as isize,
                range: None,
            },
            protos: vec!["RTP".to_string(), "AVP".to_string()],
            formats: payload_types.map(|pt| pt.to_string()).collect(),
        },
        ..MediaDescription::default()
    }
}

fn session(address: IpAddr, origin: Origin, media: Vec<MediaDescription>) -> SessionDescription {
    let address_type = match address {
        IpAddr::V4(_) => "IP4",
        IpAddr::V6(_) => "IP6",
    };
    SessionDescription {
        version: 0,
        origin: sdp::description::session::Origin {
            username: "dialhound".to_string(),
            session_id: origin.session_id,
            session_version: origin.session_version,
            network_type: "IN".to_string(),
            address_type: address_type.to_string(),
            unicast_address: address.to_string(),
        },
        session_name: "-".to_string(),
        connection_information: Some(ConnectionInformation {
            network_type: "IN".to_string(),
            address_type: address_type.to_string(),
            address: Some(Address {
                address: address.to_string(),
                ttl: None,
                range: None,
            }),
        }),
        time_descriptions: vec![TimeDescription {
            timing: Timing {
                start_time: 0,
                stop_time: 0,
            },
            repeat_times: vec![],
        }],
        media_descriptions: media,
        ..SessionDescription::default()
    }
}

fn attribute(key: &str, value: Option<String>) -> Attribute {
    Attribute::new(key.to_string(), value)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIPP_ANSWER: &str = "v=0\r\n\
        o=user1 53655765 2353687637 IN IP4 127.0.0.1\r\n\
        s=-\r\n\
        c=IN IP4 127.0.0.1\r\n\
        t=0 0\r\n\
        m=audio 6000 RTP/AVP 0\r\n\
        a=rtpmap:0 PCMU/8000\r\n";

    fn origin() -> Origin {
        Origin {
            session_id: 4242,
            session_version: 7,
        }
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("test addresses are valid")
    }

    /// Replaces the `m=audio` line and everything after it in SIPp's answer.
    fn answer_with_audio(audio: &str) -> String {
        let head = SIPP_ANSWER
            .split_once("m=audio")
            .map(|(head, _)| head)
            .expect("SIPp's answer has an audio stream");
        format!("{head}{audio}")
    }

    #[test]
    fn the_offer_lists_g711_and_telephone_events_with_the_callers_origin() {
        let offer = Offer::new(ip("192.0.2.10"), 20_000, origin()).to_sdp();
        assert_eq!(
            offer,
            "v=0\r\n\
             o=dialhound 4242 7 IN IP4 192.0.2.10\r\n\
             s=-\r\n\
             c=IN IP4 192.0.2.10\r\n\
             t=0 0\r\n\
             m=audio 20000 RTP/AVP 0 8 101\r\n\
             a=rtpmap:0 PCMU/8000\r\n\
             a=rtpmap:8 PCMA/8000\r\n\
             a=rtpmap:101 telephone-event/8000\r\n\
             a=fmtp:101 0-16\r\n\
             a=ptime:20\r\n\
             a=sendrecv\r\n"
        );
    }

    #[test]
    fn an_ipv6_offer_says_ip6_and_can_put_the_peer_on_hold() {
        let offer = Offer::new(ip("2001:db8::7"), 30_002, origin())
            .direction(Direction::SendOnly)
            .to_sdp();
        assert!(
            offer.contains("o=dialhound 4242 7 IN IP6 2001:db8::7\r\n"),
            "{offer}"
        );
        assert!(offer.contains("c=IN IP6 2001:db8::7\r\n"), "{offer}");
        assert!(offer.ends_with("a=sendonly\r\n"), "{offer}");
    }

    #[test]
    fn our_own_offer_negotiates_as_an_answer() {
        let offer = Offer::new(ip("2001:db8::7"), 30_002, origin()).to_sdp();
        let negotiated = negotiate_answer(offer.as_bytes()).unwrap();
        assert_eq!(negotiated.codec, Codec::Pcmu);
        assert_eq!(negotiated.telephone_event, Some(101));
        assert_eq!(
            negotiated.remote_rtp,
            "[2001:db8::7]:30002".parse().unwrap()
        );
    }

    #[test]
    fn sipps_answer_gives_pcmu_at_its_address_with_defaults() {
        let negotiated = negotiate_answer(SIPP_ANSWER.as_bytes()).unwrap();
        assert_eq!(
            negotiated,
            Negotiated {
                codec: Codec::Pcmu,
                payload_type: 0,
                telephone_event: None,
                ptime_ms: 20,
                remote_direction: Direction::SendRecv,
                remote_rtp: "127.0.0.1:6000".parse().unwrap(),
            }
        );
        assert_eq!(negotiated.local_direction(), Direction::SendRecv);
    }

    #[test]
    fn an_answer_with_bare_line_feeds_parses_too() {
        let answer = SIPP_ANSWER.replace("\r\n", "\n");
        assert_eq!(
            negotiate_answer(answer.as_bytes()).unwrap().codec,
            Codec::Pcmu
        );
    }

    #[test]
    fn the_answers_first_supported_codec_wins_and_events_are_found_by_name() {
        let answer = answer_with_audio(
            "m=audio 6000 RTP/AVP 18 8 0 96\r\n\
             a=rtpmap:18 G729/8000\r\n\
             a=rtpmap:8 PCMA/8000\r\n\
             a=rtpmap:96 telephone-event/8000\r\n\
             a=fmtp:96 0-15\r\n\
             a=ptime:30\r\n",
        );
        let negotiated = negotiate_answer(answer.as_bytes()).unwrap();
        assert_eq!(negotiated.codec, Codec::Pcma);
        assert_eq!(negotiated.payload_type, 8);
        assert_eq!(negotiated.telephone_event, Some(96));
        assert_eq!(negotiated.ptime_ms, 30);
    }

    #[test]
    fn static_payload_types_need_no_rtpmap_and_dynamic_g711_is_read_by_name() {
        let static_only = answer_with_audio("m=audio 6000 RTP/AVP 8\r\n");
        assert_eq!(
            negotiate_answer(static_only.as_bytes()).unwrap().codec,
            Codec::Pcma
        );
        let out_of_range =
            answer_with_audio("m=audio 6000 RTP/AVP 200\r\na=rtpmap:200 PCMU/8000\r\n");
        assert_eq!(
            negotiate_answer(out_of_range.as_bytes()),
            Err(SdpError::NoCommonCodec("200".into()))
        );
        let dynamic = answer_with_audio("m=audio 6000 RTP/AVP 112\r\na=rtpmap:112 pcmu/8000\r\n");
        let negotiated = negotiate_answer(dynamic.as_bytes()).unwrap();
        assert_eq!(
            (negotiated.codec, negotiated.payload_type),
            (Codec::Pcmu, 112)
        );
        // Telephone events at another clock rate do not go with G.711.
        let wideband_events =
            answer_with_audio("m=audio 6000 RTP/AVP 0 97\r\na=rtpmap:97 telephone-event/16000\r\n");
        assert_eq!(
            negotiate_answer(wideband_events.as_bytes())
                .unwrap()
                .telephone_event,
            None
        );
    }

    #[test]
    fn media_level_direction_and_connection_override_session_level() {
        let answer = "v=0\r\n\
            o=- 1 1 IN IP4 198.51.100.1\r\n\
            s=-\r\n\
            c=IN IP4 198.51.100.1\r\n\
            t=0 0\r\n\
            a=sendonly\r\n\
            m=audio 7078 RTP/AVP 0\r\n\
            c=IN IP4 198.51.100.99\r\n\
            a=recvonly\r\n";
        let negotiated = negotiate_answer(answer.as_bytes()).unwrap();
        assert_eq!(negotiated.remote_direction, Direction::RecvOnly);
        assert_eq!(negotiated.local_direction(), Direction::SendOnly);
        assert_eq!(negotiated.remote_rtp, "198.51.100.99:7078".parse().unwrap());

        let session_level_only = answer.replace("c=IN IP4 198.51.100.99\r\na=recvonly\r\n", "");
        let negotiated = negotiate_answer(session_level_only.as_bytes()).unwrap();
        assert_eq!(negotiated.remote_direction, Direction::SendOnly);
        assert_eq!(negotiated.remote_rtp, "198.51.100.1:7078".parse().unwrap());
    }

    #[test]
    fn a_zero_address_means_the_peer_does_not_want_media() {
        let answer = SIPP_ANSWER.replace("c=IN IP4 127.0.0.1", "c=IN IP4 0.0.0.0");
        let negotiated = negotiate_answer(answer.as_bytes()).unwrap();
        assert_eq!(negotiated.remote_direction, Direction::SendOnly);
        assert!(!negotiated.local_direction().sends());
    }

    #[test]
    fn unusable_answers_say_why() {
        let cases: Vec<(String, SdpError)> = vec![
            (
                SIPP_ANSWER.replace("m=audio", "m=video"),
                SdpError::NoAudioStream,
            ),
            (
                SIPP_ANSWER.replace("audio 6000", "audio 0"),
                SdpError::StreamRejected,
            ),
            (
                answer_with_audio("m=audio 6000 RTP/AVP 18\r\na=rtpmap:18 G729/8000\r\n"),
                SdpError::NoCommonCodec("18".into()),
            ),
            (
                SIPP_ANSWER.replace("c=IN IP4 127.0.0.1\r\n", ""),
                SdpError::NoConnectionAddress,
            ),
            (
                SIPP_ANSWER.replace("c=IN IP4 127.0.0.1", "c=IN IP4 media.example.com"),
                SdpError::ConnectionAddress("media.example.com".into()),
            ),
            (
                SIPP_ANSWER.replace("RTP/AVP", "RTP/SAVP"),
                SdpError::UnsupportedTransport("RTP/SAVP".into()),
            ),
            (
                format!("{SIPP_ANSWER}a=ptime:0\r\n"),
                SdpError::Ptime("0".into()),
            ),
            (
                format!("{SIPP_ANSWER}a=ptime:soon\r\n"),
                SdpError::Ptime("soon".into()),
            ),
        ];
        for (answer, expected) in cases {
            assert_eq!(
                negotiate_answer(answer.as_bytes()),
                Err(expected),
                "{answer}"
            );
        }
        for garbage in ["", "hello", "v=0\r\n", "\u{0}\u{ff}"] {
            assert!(matches!(
                negotiate_answer(garbage.as_bytes()),
                Err(SdpError::Unparsable(_))
            ));
        }
        assert!(matches!(
            negotiate_answer(&[b'v', b'=', 0xff, 0xfe]),
            Err(SdpError::Unparsable(_))
        ));
    }

    #[test]
    fn every_prefix_of_an_answer_is_an_error_or_a_result() {
        let offer = Offer::new(ip("192.0.2.10"), 20_000, origin()).to_sdp();
        for text in [SIPP_ANSWER, offer.as_str()] {
            for end in 0..text.len() {
                let _ = negotiate_answer(&text.as_bytes()[..end]);
            }
        }
    }

    fn reinvite(direction: &str) -> String {
        format!(
            "v=0\r\n\
             o=user1 53655765 2353687638 IN IP4 127.0.0.1\r\n\
             s=-\r\n\
             c=IN IP4 127.0.0.1\r\n\
             t=0 0\r\n\
             m=audio 6000 RTP/AVP 0 8 101\r\n\
             a=rtpmap:0 PCMU/8000\r\n\
             a=rtpmap:8 PCMA/8000\r\n\
             a=rtpmap:101 telephone-event/8000\r\n\
             a=fmtp:101 0-15\r\n\
             {direction}"
        )
    }

    #[test]
    fn a_hold_offer_is_answered_with_the_mirrored_direction() {
        let cases = [
            ("a=sendonly\r\n", Direction::RecvOnly),
            ("a=inactive\r\n", Direction::Inactive),
            ("a=recvonly\r\n", Direction::SendOnly),
            ("a=sendrecv\r\n", Direction::SendRecv),
            ("", Direction::SendRecv),
        ];
        for (attribute, ours) in cases {
            let (answer, negotiated) = answer_offer(
                reinvite(attribute).as_bytes(),
                ip("192.0.2.10"),
                20_000,
                origin(),
                Some(Codec::Pcmu),
            )
            .unwrap();
            let answer = String::from_utf8(answer).unwrap();
            assert_eq!(negotiated.local_direction(), ours);
            assert!(
                answer.ends_with(&format!("a={}\r\n", ours.attribute())),
                "{attribute}: {answer}"
            );
        }
    }

    #[test]
    fn the_answer_keeps_the_current_codec_and_the_peers_event_type() {
        let (answer, negotiated) = answer_offer(
            reinvite("a=sendonly\r\n").as_bytes(),
            ip("192.0.2.10"),
            20_000,
            origin(),
            Some(Codec::Pcma),
        )
        .unwrap();
        assert_eq!(negotiated.codec, Codec::Pcma);
        assert_eq!(negotiated.remote_rtp, "127.0.0.1:6000".parse().unwrap());
        assert_eq!(
            String::from_utf8(answer).unwrap(),
            "v=0\r\n\
             o=dialhound 4242 7 IN IP4 192.0.2.10\r\n\
             s=-\r\n\
             c=IN IP4 192.0.2.10\r\n\
             t=0 0\r\n\
             m=audio 20000 RTP/AVP 8 101\r\n\
             a=rtpmap:8 PCMA/8000\r\n\
             a=rtpmap:101 telephone-event/8000\r\n\
             a=fmtp:101 0-16\r\n\
             a=ptime:20\r\n\
             a=recvonly\r\n"
        );

        // Without a current codec, or when the offer dropped it, the offer's
        // order decides.
        let without_pcma = reinvite("").replace("0 8 101", "0 101");
        let (_, negotiated) = answer_offer(
            without_pcma.as_bytes(),
            ip("192.0.2.10"),
            20_000,
            origin(),
            Some(Codec::Pcma),
        )
        .unwrap();
        assert_eq!(negotiated.codec, Codec::Pcmu);
    }

    #[test]
    fn streams_besides_the_first_audio_are_refused_in_place() {
        let offer = reinvite("a=sendrecv\r\n")
            .replace("m=audio 6000", "m=video 6002 RTP/AVP 31\r\nm=audio 6000");
        let (answer, _) =
            answer_offer(offer.as_bytes(), ip("192.0.2.10"), 20_000, origin(), None).unwrap();
        let answer = String::from_utf8(answer).unwrap();
        let video = answer.find("m=video 0 RTP/AVP 31\r\n").expect(&answer);
        let audio = answer
            .find("m=audio 20000 RTP/AVP 0 101\r\n")
            .expect(&answer);
        assert!(video < audio, "{answer}");
    }

    #[test]
    fn an_offer_without_a_common_codec_is_refused() {
        let offer = reinvite("").replace("0 8 101", "18 101");
        assert_eq!(
            answer_offer(offer.as_bytes(), ip("192.0.2.10"), 20_000, origin(), None),
            Err(SdpError::NoCommonCodec("18 101".into()))
        );
    }
}
