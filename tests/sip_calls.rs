//! Interop: the real daemon places calls through `dialhound call --json` to
//! SIPp playing the callee (scenarios in `tests/sipp/`). Each test asserts what
//! dialhound reports and that SIPp saw the call it expected.

#![allow(clippy::unwrap_used)]

mod common;

use common::{Daemon, Sipp};
use serde_json::Value;

/// Places one call through `trunk` and returns `dialhound call --json`'s report.
fn call(daemon: &Daemon, args: &[&str]) -> Value {
    let mut full = vec!["call", "--trunk", "callee", "--to", "13800138000"];
    full.extend_from_slice(args);
    daemon.cli(&full)
}

/// Writes 8 kHz mono 16-bit samples as a WAV prompt.
fn write_wav(path: &std::path::Path, samples: &[i16]) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(path, spec).unwrap();
    for sample in samples {
        writer.write_sample(*sample).unwrap();
    }
    writer.finalize().unwrap();
}

/// A daemon with one trunk, `callee`, pointing at `sipp`.
fn daemon_for(sipp: &Sipp, extra: &str) -> Daemon {
    Daemon::with_trunks(&sipp.trunk("callee", "premium", extra), 0)
}

fn assert_passed(sipp: &mut Sipp) {
    let passed = sipp.passed();
    assert!(
        passed,
        "SIPp's scenario failed:\n{}\n{}",
        sipp.errors(),
        sipp.messages()
    );
}

#[test]
fn answered_then_we_hang_up() {
    let mut sipp = Sipp::uas("answer");
    let daemon = daemon_for(&sipp, "");
    let report = call(&daemon, &["--hold", "1"]);
    assert_eq!(report["outcome"], "answered", "{report}");
    assert_eq!(report["sip_status"], 200);
    assert_eq!(report["hung_up_by"], "us");
    assert_eq!(report["trunk"], "callee");
    assert!(report["talk_ms"].as_u64().unwrap() >= 1000, "{report}");
    assert!(report["post_dial_delay_ms"].is_u64(), "{report}");
    assert_passed(&mut sipp);
    let messages = sipp.messages();
    assert!(
        messages.contains("INVITE sip:+8613800138000@127.0.0.1:"),
        "E.164 in the Request-URI"
    );
    assert!(
        messages.contains("BYE sip:callee@"),
        "the BYE goes to the callee's Contact"
    );
    let metrics = daemon.scrape();
    assert!(
        metrics.contains("dialhound_calls_total{outcome=\"answered\",trunk=\"callee\"} 1"),
        "{metrics}"
    );
}

#[test]
fn answered_then_the_callee_hangs_up() {
    let mut sipp = Sipp::uas("callee_hangs_up");
    let daemon = daemon_for(&sipp, "");
    let report = call(&daemon, &["--hold", "30"]);
    assert_eq!(report["outcome"], "answered", "{report}");
    assert_eq!(report["hung_up_by"], "callee");
    let talk = report["talk_ms"].as_u64().unwrap();
    assert!(
        (400..5000).contains(&talk),
        "the callee hung up after 0.5 s: {report}"
    );
    assert_passed(&mut sipp);
}

#[test]
fn busy() {
    let mut sipp = Sipp::uas("busy");
    let daemon = daemon_for(&sipp, "");
    let report = call(&daemon, &[]);
    assert_eq!(report["outcome"], "busy", "{report}");
    assert_eq!(report["sip_status"], 486);
    assert_eq!(report["talk_ms"], 0);
    assert_passed(&mut sipp);
}

#[test]
fn ringing_past_the_ring_timeout_is_cancelled() {
    let mut sipp = Sipp::uas("ring_forever");
    let daemon = daemon_for(&sipp, "");
    let report = call(&daemon, &["--ring-timeout", "1"]);
    assert_eq!(report["outcome"], "no_answer", "{report}");
    assert_eq!(report["sip_status"], 487);
    assert!(report["ring_ms"].as_u64().unwrap() >= 900, "{report}");
    assert_passed(&mut sipp);
    assert!(
        sipp.messages().contains("CANCEL sip:"),
        "SIPp saw our CANCEL"
    );
}

#[test]
fn early_media_then_answer() {
    let mut sipp = Sipp::uas("early_media");
    let daemon = daemon_for(&sipp, "");
    let report = call(&daemon, &["--hold", "0.5"]);
    assert_eq!(report["outcome"], "answered", "{report}");
    // The 183 arrived 200 ms before the 200: that is ring time, not talk.
    assert!(report["ring_ms"].as_u64().unwrap() >= 150, "{report}");
    assert_passed(&mut sipp);
}

#[test]
fn a_503_with_retry_after_is_a_trunk_failure() {
    let mut sipp = Sipp::uas("unavailable");
    let daemon = daemon_for(&sipp, "");
    let report = call(&daemon, &[]);
    assert_eq!(report["outcome"], "trunk_failure", "{report}");
    assert_eq!(report["sip_status"], 503);
    assert_eq!(report["retry_after_seconds"], 120);
    assert_passed(&mut sipp);
    let trunks = daemon.cli(&["trunk", "list"]);
    assert_eq!(trunks["result"][0]["window"]["attempts"], 1, "{trunks}");
}

#[test]
fn a_401_challenge_is_answered_with_credentials_sipp_verifies() {
    let mut sipp = Sipp::uas("auth_401");
    let daemon = daemon_for(&sipp, "username = \"alice\"\npassword = \"secret\"");
    let report = call(&daemon, &["--hold", "0.5"]);
    assert_eq!(report["outcome"], "answered", "{report}");
    assert_passed(&mut sipp);
    assert!(
        !daemon.log().contains("secret"),
        "the password is never logged"
    );
}

#[test]
fn wrong_credentials_are_refused_by_the_trunk() {
    let mut sipp = Sipp::uas("auth_401");
    let daemon = daemon_for(&sipp, "username = \"alice\"\npassword = \"wrong\"");
    let report = call(&daemon, &[]);
    // SIPp's verifyauth fails and it answers 403.
    assert_eq!(report["outcome"], "failed", "{report}");
    assert_eq!(report["sip_status"], 403);
    sipp.passed();
}

#[test]
fn a_407_challenge_is_answered_with_proxy_authorization() {
    let mut sipp = Sipp::uas("auth_407");
    let daemon = daemon_for(&sipp, "username = \"alice\"\npassword = \"secret\"");
    let report = call(&daemon, &["--hold", "0.5"]);
    assert_eq!(report["outcome"], "answered", "{report}");
    assert_passed(&mut sipp);
    let messages = sipp.messages();
    let header = messages
        .lines()
        .find_map(|line| line.strip_prefix("Proxy-Authorization: "))
        .expect("the second INVITE carries Proxy-Authorization");
    let field = |name: &str| {
        let start = header.find(&format!(" {name}=")).unwrap() + name.len() + 2;
        let rest = &header[start..];
        match rest.strip_prefix('"') {
            Some(quoted) => quoted[..quoted.find('"').unwrap()].to_owned(),
            None => rest.split(',').next().unwrap().to_owned(),
        }
    };
    let md5 = |text: String| {
        use md5::Digest;
        md5::Md5::digest(text.as_bytes())
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect::<String>()
    };
    let ha1 = md5(format!("alice:{}:secret", field("realm")));
    let ha2 = md5(format!("INVITE:{}", field("uri")));
    let expected = md5(format!(
        "{ha1}:{}:{}:{}:auth:{ha2}",
        field("nonce"),
        field("nc"),
        field("cnonce")
    ));
    assert_eq!(field("response"), expected, "{header}");
    assert_eq!(field("realm"), "carrier.test");
}

#[test]
fn a_reinvite_from_the_callee_is_answered_and_the_call_goes_on() {
    let mut sipp = Sipp::uas("reinvite");
    let daemon = daemon_for(&sipp, "");
    let report = call(&daemon, &["--hold", "1"]);
    assert_eq!(report["outcome"], "answered", "{report}");
    assert_eq!(
        report["hung_up_by"], "us",
        "we hung up, after the re-INVITE"
    );
    assert_passed(&mut sipp);
}

#[test]
fn a_reliable_provisional_gets_a_prack() {
    let mut sipp = Sipp::uas("prack");
    let daemon = daemon_for(&sipp, "");
    let report = call(&daemon, &["--hold", "0.5"]);
    assert_eq!(report["outcome"], "answered", "{report}");
    assert_passed(&mut sipp);
    assert!(sipp.messages().contains("RAck: 1 1 INVITE"));
}

#[test]
fn a_broken_header_mid_call_is_dropped_and_counted() {
    let mut sipp = Sipp::uas("broken_header");
    let daemon = daemon_for(&sipp, "");
    let report = call(&daemon, &["--hold", "1"]);
    assert_eq!(report["outcome"], "answered", "{report}");
    assert_eq!(report["hung_up_by"], "us");
    assert_passed(&mut sipp);
    let metrics = daemon.scrape();
    assert!(
        metrics.contains("dialhound_sip_malformed_messages_total 1"),
        "{metrics}"
    );
}

#[test]
fn a_call_to_an_unknown_trunk_or_a_bad_number_is_refused() {
    let sipp = Sipp::uas("answer");
    let daemon = daemon_for(&sipp, "");
    let unknown = daemon.cli(&["call", "--trunk", "nope", "--to", "13800138000"]);
    assert_eq!(unknown["ok"], false);
    assert_eq!(unknown["error"]["code"], "not_found");
    let bad = daemon.cli(&["call", "--trunk", "callee", "--to", "12"]);
    assert_eq!(bad["error"]["code"], "invalid_phone", "{bad}");
    daemon.cli(&["trunk", "drain", "callee"]);
    let drained = daemon.cli(&["call", "--trunk", "callee", "--to", "13800138000"]);
    assert_eq!(drained["error"]["code"], "trunk_unavailable", "{drained}");
}

#[test]
fn options_keepalives_reach_the_trunk() {
    let mut sipp = Sipp::uas("options");
    let daemon = Daemon::with_trunks(&sipp.trunk("callee", "premium", ""), 1);
    assert_passed(&mut sipp);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let metrics = daemon.scrape();
        if metrics.contains("dialhound_sip_keepalives_total{result=\"ok\",trunk=\"callee\"}") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{metrics}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn a_key_the_callee_presses_is_reported() {
    // SIPp plays the RFC 2833 capture of the key 9 once the call is up.
    let mut sipp = Sipp::uas("dtmf_9");
    let daemon = daemon_for(&sipp, "");
    let report = call(&daemon, &["--hold", "2"]);
    assert_eq!(report["outcome"], "answered", "{report}");
    assert_eq!(report["dtmf"], "9", "{report}");
    assert_eq!(report["media"]["codec"], "PCMU", "{report}");
    assert!(
        report["media"]["packets_received"].as_u64().unwrap() > 0,
        "{report}"
    );
    // We sent RTP for the two seconds on the line.
    assert!(
        report["media"]["packets_sent"].as_u64().unwrap() >= 50,
        "{report}"
    );
    assert_passed(&mut sipp);
    let messages = sipp.messages();
    assert!(
        messages.contains("a=rtpmap:101 telephone-event/8000"),
        "our offer names telephone events"
    );
}

#[test]
fn an_echoing_callee_sends_the_prompt_back_sample_for_sample() {
    let mut sipp = Sipp::uas_with("echo", &["-rtp_echo"]);
    let daemon = daemon_for(&sipp, "");
    let dir = tempfile::tempdir().unwrap();
    // One second of noise: no stretch of it looks like another, so the echo
    // can only match at one place.
    let mut state = 0x2545_f491_u32;
    let prompt: Vec<i16> = (0..8000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state % 16_000) as i16 - 8_000
        })
        .collect();
    let prompt_path = dir.path().join("noise.wav");
    write_wav(&prompt_path, &prompt);
    let recording_path = dir.path().join("call.wav");

    let report = call(
        &daemon,
        &[
            "--hold",
            "2",
            "--play",
            prompt_path.to_str().unwrap(),
            "--record",
            recording_path.to_str().unwrap(),
            // The echo of our own noise would sound like the callee speaking.
            "--no-barge-in",
        ],
    );
    assert_eq!(report["outcome"], "answered", "{report}");
    assert_eq!(report["recording"], recording_path.to_str().unwrap());
    assert_passed(&mut sipp);

    // What the callee heard is the prompt through µ-law; the echo brings
    // exactly that back.
    use dialhound_media::g711::{mulaw_decode, mulaw_encode};
    let heard: Vec<i16> = prompt
        .iter()
        .map(|&s| mulaw_decode(mulaw_encode(s)))
        .collect();
    let mut reader = hound::WavReader::open(&recording_path).unwrap();
    assert_eq!(reader.spec().channels, 2);
    let samples: Vec<i16> = reader.samples::<i16>().map(Result::unwrap).collect();
    let callee: Vec<i16> = samples.iter().step_by(2).copied().collect();
    let ours: Vec<i16> = samples.iter().skip(1).step_by(2).copied().collect();
    let found_at = |channel: &[i16]| {
        (0..channel.len().saturating_sub(heard.len()))
            .find(|&offset| channel[offset..offset + heard.len()] == heard[..])
    };
    assert!(
        found_at(&callee).is_some(),
        "the echoed prompt is not in the callee's channel"
    );
    assert!(
        found_at(&ours).is_some(),
        "the prompt is not in our channel"
    );
}

#[test]
fn the_callee_speaking_is_heard_and_cuts_the_prompt_short() {
    let dir = tempfile::tempdir().unwrap();
    // The callee's words, made with espeak-ng, with a second of silence on
    // either side.
    let spoken_wav = dir.path().join("spoken.wav");
    let made = std::process::Command::new("espeak-ng")
        .args(["-v", "en", "-w"])
        .arg(&spoken_wav)
        .arg("Please stop calling me about my shopping cart")
        .status()
        .expect("espeak-ng runs (install the espeak-ng package)");
    assert!(made.success());
    let spoken = dialhound_media::prompt::load_wav(&spoken_wav).unwrap();
    let silence = vec![0i16; 8000];
    let stream: Vec<i16> = [&silence[..], spoken.samples(), &silence[..]].concat();
    // Where the speech lies: the first and last 20 ms with speech energy
    // (above -40 dBFS).
    let loud: Vec<bool> = stream
        .chunks(160)
        .map(|frame| {
            let energy = frame.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / 160.0;
            energy.sqrt() > 32768.0 * 0.01
        })
        .collect();
    let onset_ms = loud.iter().position(|&l| l).unwrap() as i64 * 20;
    let offset_ms = (loud.iter().rposition(|&l| l).unwrap() as i64 + 1) * 20;
    let ulaw: Vec<u8> = stream
        .iter()
        .map(|&s| dialhound_media::g711::mulaw_encode(s))
        .collect();
    let stream_path = dir.path().join("speech.ulaw");
    std::fs::write(&stream_path, ulaw).unwrap();

    // Our prompt: six seconds of a tone, still playing when the callee speaks.
    let prompt_path = dir.path().join("tone.wav");
    let tone: Vec<i16> = (0..48_000)
        .map(|n| {
            let phase = f64::from(n) * 2.0 * std::f64::consts::PI * 440.0 / 8000.0;
            (phase.sin() * 6000.0) as i16
        })
        .collect();
    write_wav(&prompt_path, &tone);

    let mut sipp = Sipp::uas_filled("speech", "SPEECH_FILE", stream_path.to_str().unwrap(), &[]);
    let daemon = daemon_for(&sipp, "");
    let report = call(
        &daemon,
        &["--hold", "5", "--play", prompt_path.to_str().unwrap()],
    );
    assert_eq!(report["outcome"], "answered", "{report}");
    assert_passed(&mut sipp);
    let media = &report["media"];
    let speech = media["speech"].as_array().unwrap();
    assert!(!speech.is_empty(), "no speech heard: {report}");
    let start = speech[0]["start_ms"].as_i64().unwrap();
    let end = speech.last().unwrap()["end_ms"].as_i64().unwrap();
    assert!(
        (start - onset_ms).abs() <= 100,
        "speech starts at {onset_ms} ms, heard at {start} ms: {report}"
    );
    assert!(
        (end - offset_ms).abs() <= 100,
        "speech ends at {offset_ms} ms, heard at {end} ms: {report}"
    );
    // The prompt was cut short when the callee began to speak.
    let barge_in = media["barge_in_ms"]
        .as_i64()
        .unwrap_or_else(|| panic!("{report}"));
    assert!(
        barge_in >= onset_ms && barge_in - onset_ms <= 100,
        "speech at {onset_ms} ms stopped the prompt at {barge_in} ms"
    );
}
