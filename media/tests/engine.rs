//! The media engine against plain UDP sockets on loopback: a sink that decodes
//! what a leg sends, and peers that send it RTP and RFC 4733 events.
//!
//! Every wait is bounded by a timeout that only a failure reaches.

#![allow(clippy::unwrap_used)]

use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use dialhound_media::dtmf::TelephoneEvent;
use dialhound_media::encoded::{EncodedPrompt, silence_frame};
use dialhound_media::engine::{
    AudioTap, LegConfig, LegEvent, LegHandle, MediaConfig, MediaEngine, MediaError, TapAction,
};
use dialhound_media::g711::{alaw_decode, alaw_encode, mulaw_decode, mulaw_encode};
use dialhound_media::packet::parse_rtp;
use dialhound_media::rtp_session::{SenderSeed, Ssrc};
use dialhound_media::sdp::Codec;
use tokio::net::UdpSocket;
use tokio::time::timeout;

/// Bounds every wait; only a broken engine gets near it.
const PATIENCE: Duration = Duration::from_secs(5);

fn localhost() -> IpAddr {
    IpAddr::from([127, 0, 0, 1])
}

fn engine(port_range: RangeInclusive<u16>) -> MediaEngine {
    MediaEngine::start(MediaConfig {
        workers: 1,
        port_range,
        bind_ip: localhost(),
        realtime: false,
    })
    .unwrap()
}

async fn socket() -> UdpSocket {
    UdpSocket::bind((localhost(), 0)).await.unwrap()
}

/// One RTP packet a peer sends.
fn rtp_packet(payload_type: u8, sequence: u16, timestamp: u32, payload: &[u8]) -> Vec<u8> {
    let mut packet = vec![0x80, payload_type];
    packet.extend_from_slice(&sequence.to_be_bytes());
    packet.extend_from_slice(&timestamp.to_be_bytes());
    packet.extend_from_slice(&0x5eed_u32.to_be_bytes());
    packet.extend_from_slice(payload);
    packet
}

/// The next packet the socket receives, parsed.
async fn next_packet(socket: &UdpSocket) -> (SocketAddr, rtp::packet::Packet) {
    let mut buffer = [0u8; 2048];
    let (length, source) = timeout(PATIENCE, socket.recv_from(&mut buffer))
        .await
        .expect("a packet within the timeout")
        .unwrap();
    (source, parse_rtp(&buffer[..length]).unwrap())
}

async fn next_event(leg: &mut LegHandle) -> LegEvent {
    timeout(PATIENCE, leg.next_event())
        .await
        .expect("an event within the timeout")
        .expect("the leg is open")
}

/// A tone that never encodes to silence, with a length that is not a whole
/// number of frames.
fn tone(frames: usize) -> Vec<i16> {
    (0..frames * 160 - 37)
        .map(|n| (2000.0 + 6000.0 * (n as f64 * 0.21).sin()) as i16)
        .collect()
}

type Encode = fn(i16) -> u8;
type Decode = fn(u8) -> i16;

fn companding(codec: Codec) -> (Encode, Decode) {
    match codec {
        Codec::Pcmu => (mulaw_encode, mulaw_decode),
        Codec::Pcma => (alaw_encode, alaw_decode),
    }
}

#[tokio::test]
async fn a_prompt_arrives_intact_in_consecutive_packets() {
    let engine = engine(41_000..=41_099);
    for codec in [Codec::Pcmu, Codec::Pcma] {
        let sink = socket().await;
        let mut leg = engine
            .open_leg(LegConfig::new(codec, sink.local_addr().unwrap()))
            .unwrap();
        let samples = tone(25);
        let prompt = EncodedPrompt::from_pcm_8k(&samples);
        let playback = leg.play(prompt.clone()).unwrap();

        let silence = silence_frame(codec);
        let mut packets = Vec::new();
        let mut prompt_start = None;
        loop {
            let (source, packet) = next_packet(&sink).await;
            assert_eq!(source, leg.local_addr());
            if prompt_start.is_none() && packet.payload[..] != silence[..] {
                prompt_start = Some(packets.len());
            }
            packets.push(packet);
            if prompt_start.is_some_and(|start| packets.len() >= start + prompt.frames() + 3) {
                break;
            }
        }
        assert_eq!(next_event(&mut leg).await, LegEvent::PlaybackDone(playback));

        let first = &packets[0].header;
        assert!(first.marker, "the first packet starts a talk spurt");
        assert_eq!(first.payload_type, codec.static_payload_type());
        for pair in packets.windows(2) {
            let (before, after) = (&pair[0].header, &pair[1].header);
            assert_eq!(
                after.sequence_number,
                before.sequence_number.wrapping_add(1)
            );
            assert_eq!(after.timestamp, before.timestamp.wrapping_add(160));
            assert_eq!(after.ssrc, first.ssrc);
            assert!(!after.marker);
        }

        let start = prompt_start.unwrap();
        let (encode, decode) = companding(codec);
        let mut expected: Vec<i16> = samples.iter().map(|&s| decode(encode(s))).collect();
        expected.resize(prompt.frames() * 160, decode(encode(0)));
        let heard: Vec<i16> = packets[start..start + prompt.frames()]
            .iter()
            .flat_map(|packet| packet.payload.iter().map(|&code| decode(code)))
            .collect();
        assert_eq!(heard, expected);
        assert!(
            packets[..start]
                .iter()
                .all(|p| p.payload[..] == silence[..])
        );
        assert!(
            packets[start + prompt.frames()..]
                .iter()
                .all(|p| p.payload[..] == silence[..]),
            "silence follows the prompt"
        );

        let report = leg.close().await.unwrap();
        assert!(report.quality.packets_sent >= packets.len() as u64);
        assert_eq!(report.send_failures, 0);
    }
    // Workers publish their counters every 100 ms and when their last leg
    // closes.
    let stats = engine.stats();
    assert!(stats.frames_sent > 0);
    assert_eq!(stats.lateness.count(), stats.frames_sent);
    assert_eq!(stats.legs, 0);
}

#[tokio::test]
async fn prompts_play_in_the_order_they_were_queued() {
    let engine = engine(41_100..=41_199);
    let sink = socket().await;
    let mut leg = engine
        .open_leg(LegConfig::new(Codec::Pcmu, sink.local_addr().unwrap()))
        .unwrap();
    let first = leg.play(EncodedPrompt::from_pcm_8k(&tone(3))).unwrap();
    let empty = leg.play(EncodedPrompt::from_pcm_8k(&[])).unwrap();
    let last = leg.play(EncodedPrompt::from_pcm_8k(&tone(2))).unwrap();
    let mut events = Vec::new();
    for _ in 0..3 {
        events.push(next_event(&mut leg).await);
    }
    assert_eq!(
        events,
        [first, empty, last].map(LegEvent::PlaybackDone).to_vec()
    );
}

#[tokio::test]
async fn stop_playback_cuts_the_prompt_and_silence_follows() {
    let engine = engine(41_200..=41_299);
    let sink = socket().await;
    let codec = Codec::Pcmu;
    let mut leg = engine
        .open_leg(LegConfig::new(codec, sink.local_addr().unwrap()))
        .unwrap();
    let long = leg.play(EncodedPrompt::from_pcm_8k(&tone(500))).unwrap();
    let queued = leg.play(EncodedPrompt::from_pcm_8k(&tone(500))).unwrap();
    let silence = silence_frame(codec);

    let mut prompt_frames = 0;
    while prompt_frames < 3 {
        let (_, packet) = next_packet(&sink).await;
        if packet.payload[..] != silence[..] {
            prompt_frames += 1;
        }
    }
    leg.stop_playback().unwrap();
    assert_eq!(next_event(&mut leg).await, LegEvent::PlaybackStopped(long));
    assert_eq!(
        next_event(&mut leg).await,
        LegEvent::PlaybackStopped(queued)
    );

    // Frames already in the socket's buffer when the stop was issued may
    // still carry the prompt; a 10 s prompt still playing would not stop.
    let mut late_prompt_frames = 0;
    loop {
        let (_, packet) = next_packet(&sink).await;
        if packet.payload[..] == silence[..] {
            break;
        }
        late_prompt_frames += 1;
    }
    assert!(
        late_prompt_frames < 10,
        "{late_prompt_frames} frames after the stop"
    );
    for _ in 0..10 {
        let (_, packet) = next_packet(&sink).await;
        assert_eq!(&packet.payload[..], &silence[..]);
    }
}

#[tokio::test]
async fn on_hold_nothing_is_sent_and_the_clock_runs_on() {
    let engine = engine(41_800..=41_899);
    let sink = socket().await;
    let seed = SenderSeed {
        ssrc: Ssrc(0xabcd),
        first_sequence: 500,
        first_timestamp: 10_000,
    };
    let mut config = LegConfig::new(Codec::Pcmu, sink.local_addr().unwrap()).with_seed(seed);
    config.sending = false;
    let mut leg = engine.open_leg(config).unwrap();
    // A prompt's frames pass on hold too: its end proves that the leg's
    // slot came round.
    let prompt = leg.play(EncodedPrompt::from_pcm_8k(&tone(2))).unwrap();
    assert_eq!(next_event(&mut leg).await, LegEvent::PlaybackDone(prompt));
    let mut buffer = [0u8; 2048];
    assert!(
        sink.try_recv_from(&mut buffer).is_err(),
        "nothing sent on hold"
    );

    leg.set_sending(true).unwrap();
    let (_, packet) = next_packet(&sink).await;
    assert_eq!(packet.header.sequence_number, 500);
    assert!(packet.header.marker, "resuming starts a talk spurt");
    let elapsed = packet.header.timestamp.wrapping_sub(10_000);
    assert!(elapsed >= 2 * 160 && elapsed % 160 == 0, "{elapsed}");
}

#[tokio::test]
async fn an_rfc_4733_key_press_is_one_digit_event() {
    let engine = engine(41_300..=41_399);
    let peer = socket().await;
    let mut leg = engine
        .open_leg(LegConfig::new(Codec::Pcmu, peer.local_addr().unwrap()))
        .unwrap();
    let to_leg = leg.local_addr();
    let mut sequence = 100u16;
    for (key, timestamp) in [(9u8, 8000u32), (1, 16_000)] {
        for step in 1..=6u16 {
            let event = TelephoneEvent {
                event: key,
                end: step > 3,
                volume: 10,
                duration: 160 * step.min(4),
            };
            let packet = rtp_packet(101, sequence, timestamp, &event.to_bytes());
            sequence += 1;
            peer.send_to(&packet, to_leg).await.unwrap();
        }
    }

    let mut events = Vec::new();
    loop {
        let event = next_event(&mut leg).await;
        let last = event == LegEvent::Dtmf('1');
        events.push(event);
        if last {
            break;
        }
    }
    let source = peer.local_addr().unwrap();
    assert_eq!(
        events,
        vec![
            LegEvent::FirstPacket { source },
            LegEvent::Dtmf('9'),
            LegEvent::Dtmf('1')
        ]
    );
    let report = leg.close().await.unwrap();
    assert_eq!(report.digits, "91");
    assert_eq!(report.quality.packets_received, 12);
    assert_eq!(report.malformed_received, 0);
}

#[tokio::test]
async fn without_rfc_4733_a_key_is_heard_in_the_audio() {
    let engine = engine(41_700..=41_799);
    let peer = socket().await;
    let mut config = LegConfig::new(Codec::Pcmu, peer.local_addr().unwrap());
    config.telephone_event = None;
    let mut leg = engine.open_leg(config).unwrap();
    // '5' is 770 Hz and 1336 Hz: 100 ms of it, then 100 ms of silence.
    let key: Vec<i16> = (0..800)
        .map(|n| {
            let t = f64::from(n) / 8000.0;
            let tau = 2.0 * std::f64::consts::PI;
            (6000.0 * ((tau * 770.0 * t).sin() + (tau * 1336.0 * t).sin())) as i16
        })
        .chain(std::iter::repeat_n(0, 800))
        .collect();
    for (n, frame) in key.chunks(160).enumerate() {
        let payload: Vec<u8> = frame.iter().map(|&s| mulaw_encode(s)).collect();
        let packet = rtp_packet(0, n as u16, 160 * n as u32, &payload);
        peer.send_to(&packet, leg.local_addr()).await.unwrap();
    }
    let source = peer.local_addr().unwrap();
    assert_eq!(next_event(&mut leg).await, LegEvent::FirstPacket { source });
    assert_eq!(next_event(&mut leg).await, LegEvent::Dtmf('5'));
    let report = leg.close().await.unwrap();
    assert_eq!(report.digits, "5");
    assert_eq!(report.quality.packets_received, 10);
}

#[tokio::test]
async fn an_exhausted_port_range_is_a_clear_error() {
    let engine = engine(41_400..=41_403);
    let sink = socket().await;
    let config = || LegConfig::new(Codec::Pcmu, sink.local_addr().unwrap());
    let first = engine.open_leg(config()).unwrap();
    let second = engine.open_leg(config()).unwrap();
    let mut ports = [first.local_port(), second.local_port()];
    ports.sort_unstable();
    assert_eq!(ports, [41_400, 41_402]);

    let error = engine.open_leg(config()).unwrap_err();
    assert!(matches!(error, MediaError::PortRangeExhausted { .. }));
    assert_eq!(
        error.to_string(),
        "no free RTP/RTCP port pair in 41400-41403: every even port and the one after it \
         are in use"
    );

    let freed = first.local_port();
    first.close().await.unwrap();
    let again = engine.open_leg(config()).unwrap();
    assert_eq!(again.local_port(), freed);
    assert_eq!(engine.legs(), 2);
}

#[tokio::test]
async fn ports_held_by_others_are_skipped() {
    let engine = engine(41_410..=41_415);
    let _rtp_taken = std::net::UdpSocket::bind((localhost(), 41_410)).unwrap();
    let _rtcp_taken = std::net::UdpSocket::bind((localhost(), 41_413)).unwrap();
    let sink = socket().await;
    let leg = engine
        .open_leg(LegConfig::new(Codec::Pcmu, sink.local_addr().unwrap()))
        .unwrap();
    assert_eq!(leg.local_port(), 41_414);
}

#[tokio::test]
async fn media_goes_where_the_peers_packets_come_from() {
    let engine = engine(41_500..=41_599);
    let sdp_address = socket().await;
    let behind_nat = socket().await;
    let mut leg = engine
        .open_leg(LegConfig::new(
            Codec::Pcmu,
            sdp_address.local_addr().unwrap(),
        ))
        .unwrap();
    next_packet(&sdp_address).await;

    let audio = rtp_packet(0, 7, 0, &[0xff; 160]);
    behind_nat.send_to(&audio, leg.local_addr()).await.unwrap();
    let source = behind_nat.local_addr().unwrap();
    assert_eq!(next_event(&mut leg).await, LegEvent::FirstPacket { source });
    let (from, _) = next_packet(&behind_nat).await;
    assert_eq!(from, leg.local_addr());

    let after_reinvite = socket().await;
    leg.set_remote(after_reinvite.local_addr().unwrap())
        .unwrap();
    next_packet(&after_reinvite).await;
}

/// Passes what it hears to the test and barges in on a loud frame.
struct LoudStops(std_mpsc::Sender<(Duration, usize, i16)>);

impl AudioTap for LoudStops {
    fn on_frame(&mut self, media_time: Duration, samples: &[i16]) -> TapAction {
        let loudest = samples
            .iter()
            .map(|s| s.saturating_abs())
            .max()
            .unwrap_or(0);
        let _ = self.0.send((media_time, samples.len(), loudest));
        if loudest > 5000 {
            TapAction::StopPlayback
        } else {
            TapAction::Continue
        }
    }
}

#[tokio::test]
async fn an_audio_tap_hears_the_peer_and_barges_in() {
    let engine = engine(41_600..=41_699);
    let peer = socket().await;
    let (heard, hearing) = std_mpsc::channel();
    let mut leg = engine
        .open_leg(
            LegConfig::new(Codec::Pcmu, peer.local_addr().unwrap())
                .with_tap(Box::new(LoudStops(heard))),
        )
        .unwrap();
    let playback = leg.play(EncodedPrompt::from_pcm_8k(&tone(500))).unwrap();
    let quiet = [mulaw_encode(100); 160];
    let loud = [mulaw_encode(10_000); 160];
    for (sequence, payload) in [(1u16, &quiet), (2, &quiet), (3, &loud)] {
        let packet = rtp_packet(0, sequence, 160 * u32::from(sequence), payload);
        peer.send_to(&packet, leg.local_addr()).await.unwrap();
    }
    let source = peer.local_addr().unwrap();
    assert_eq!(next_event(&mut leg).await, LegEvent::FirstPacket { source });
    assert_eq!(
        next_event(&mut leg).await,
        LegEvent::PlaybackStopped(playback)
    );
    let frames: Vec<_> = hearing.try_iter().collect();
    let ms = Duration::from_millis(1);
    let quiet_level = mulaw_decode(mulaw_encode(100));
    let loud_level = mulaw_decode(mulaw_encode(10_000));
    assert_eq!(
        frames,
        vec![
            (Duration::ZERO, 160, quiet_level),
            (20 * ms, 160, quiet_level),
            (40 * ms, 160, loud_level)
        ]
    );
    assert_eq!(leg.try_next_event(), None);
}

/// Opens a leg sending to a sink, queues `keys`, and returns the packets the
/// sink received until the keys were done.
async fn keys_at_the_sink(
    ports: RangeInclusive<u16>,
    telephone_event: Option<u8>,
    keys: &str,
) -> Vec<rtp::packet::Packet> {
    let engine = engine(ports);
    let sink = socket().await;
    let mut config = LegConfig::new(Codec::Pcmu, sink.local_addr().unwrap());
    config.telephone_event = telephone_event;
    let mut leg = engine.open_leg(config).unwrap();
    let sent = leg.send_dtmf(keys).unwrap();
    let mut packets = Vec::new();
    loop {
        let (_, packet) = next_packet(&sink).await;
        packets.push(packet);
        if let Some(LegEvent::PlaybackDone(done)) = leg.try_next_event()
            && done == sent
        {
            break;
        }
        assert!(packets.len() < 500, "the keys never finished");
    }
    packets
}

#[tokio::test]
async fn keys_go_out_as_rfc_4733_events_that_read_back_as_the_same_keys() {
    let packets = keys_at_the_sink(39_000..=39_019, Some(101), "19#*").await;
    let mut receiver = dialhound_media::dtmf::EventReceiver::new();
    let mut heard = String::new();
    let mut first_of_press = 0;
    for packet in &packets {
        if packet.header.payload_type != 101 {
            continue;
        }
        if packet.header.marker {
            first_of_press += 1;
        }
        if let Some(digit) = receiver
            .handle_packet(packet.header.timestamp, &packet.payload)
            .unwrap()
        {
            heard.push(digit.0);
        }
    }
    assert_eq!(heard, "19#*");
    assert_eq!(first_of_press, 4, "the marker bit starts each key press");
    // Each press: five growing durations, then three end packets.
    let first_press: Vec<TelephoneEvent> = packets
        .iter()
        .filter(|p| p.header.payload_type == 101)
        .take(8)
        .map(|p| TelephoneEvent::parse(&p.payload).unwrap())
        .collect();
    let durations: Vec<u16> = first_press.iter().map(|e| e.duration).collect();
    assert_eq!(durations, [160, 320, 480, 640, 800, 800, 800, 800]);
    let ends: Vec<bool> = first_press.iter().map(|e| e.end).collect();
    assert_eq!(ends, [false, false, false, false, false, true, true, true]);
}

#[tokio::test]
async fn without_rfc_4733_the_keys_are_sent_as_tones() {
    let packets = keys_at_the_sink(39_020..=39_039, None, "5A").await;
    let mut detector = dialhound_media::dtmf::ToneDetector::new();
    let mut heard = String::new();
    for packet in &packets {
        assert_eq!(packet.header.payload_type, 0, "audio only");
        let samples: Vec<i16> = packet.payload.iter().map(|&c| mulaw_decode(c)).collect();
        heard.extend(detector.feed(&samples).into_iter().map(|digit| digit.0));
    }
    assert_eq!(heard, "5A");
}

#[tokio::test]
async fn a_prompt_played_to_its_end_is_not_cut_by_the_callee() {
    let engine = engine(39_040..=39_059);
    let peer = socket().await;
    let (heard, _hearing) = std_mpsc::channel();
    let mut leg = engine
        .open_leg(
            LegConfig::new(Codec::Pcmu, peer.local_addr().unwrap())
                .with_tap(Box::new(LoudStops(heard))),
        )
        .unwrap();
    // A short notice that must be heard, then a long prompt that may be cut.
    let notice = leg
        .play_to_end(EncodedPrompt::from_pcm_8k(&tone(10)))
        .unwrap();
    let offer = leg.play(EncodedPrompt::from_pcm_8k(&tone(500))).unwrap();
    let loud = [mulaw_encode(10_000); 160];
    // The callee speaks over the notice and goes on speaking.
    let source = peer.local_addr().unwrap();
    for sequence in 1u16..=40 {
        let packet = rtp_packet(0, sequence, 160 * u32::from(sequence), &loud);
        peer.send_to(&packet, leg.local_addr()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The first packet may be told before or after the short notice ends,
    // as the media thread is scheduled; the prompts' events come in order.
    let mut events = Vec::new();
    for _ in 0..3 {
        events.push(next_event(&mut leg).await);
    }
    let first_packet = LegEvent::FirstPacket { source };
    assert!(events.contains(&first_packet), "{events:?}");
    events.retain(|event| *event != first_packet);
    assert_eq!(
        events,
        [
            LegEvent::PlaybackDone(notice),
            LegEvent::PlaybackStopped(offer)
        ]
    );
}

#[tokio::test]
async fn the_peers_packet_time_is_followed() {
    let engine = engine(39_060..=39_079);
    for ptime_ms in [10u32, 30, 40] {
        let sink = socket().await;
        let mut config = LegConfig::new(Codec::Pcmu, sink.local_addr().unwrap());
        config.ptime_ms = ptime_ms;
        let mut leg = engine.open_leg(config).unwrap();
        let prompt = EncodedPrompt::from_pcm_8k(&tone(13));
        let playback = leg.play(prompt.clone()).unwrap();
        let packet_samples = ptime_ms as usize * 8;
        let silence = silence_frame(Codec::Pcmu)[0];
        let mut packets = Vec::new();
        loop {
            let (_, packet) = next_packet(&sink).await;
            packets.push(packet);
            if leg.try_next_event() == Some(LegEvent::PlaybackDone(playback)) {
                break;
            }
            assert!(packets.len() < 1000, "the prompt never finished");
        }
        // Packets that left with the last of the prompt, and silence after.
        for _ in 0..4 {
            packets.push(next_packet(&sink).await.1);
        }
        for pair in packets.windows(2) {
            assert_eq!(pair[0].payload.len(), packet_samples, "ptime {ptime_ms}");
            assert_eq!(
                pair[1].header.sequence_number,
                pair[0].header.sequence_number.wrapping_add(1)
            );
            assert_eq!(
                pair[1].header.timestamp,
                pair[0].header.timestamp.wrapping_add(packet_samples as u32),
                "ptime {ptime_ms}"
            );
        }
        // The prompt starts at a packet's start and runs on unbroken.
        let start = packets
            .iter()
            .position(|packet| packet.payload.iter().any(|&code| code != silence))
            .unwrap();
        let sent: Vec<u8> = packets[start..]
            .iter()
            .flat_map(|packet| packet.payload.iter().copied())
            .collect();
        let whole = prompt.samples_from(Codec::Pcmu, 0, usize::MAX);
        assert!(
            sent.len() >= whole.len(),
            "ptime {ptime_ms}: the prompt was cut"
        );
        assert_eq!(&sent[..whole.len()], whole, "ptime {ptime_ms}");
        assert!(
            sent[whole.len()..].iter().all(|&code| code == silence),
            "silence after the prompt"
        );
    }
}
