//! One sentence spoken by the neural Mandarin voice (FastSpeech2 and
//! MB-MelGAN in process, 24 kHz resampled to 8 kHz) and by espeak-ng (a
//! process per render, numbered pinyin, 8 kHz), neither from the prompt
//! cache. Both run on one thread (tract runs a model on the calling thread,
//! espeak-ng is one process), so the time per sentence is CPU time of one
//! core. The neural voice's time includes optimizing its models for the
//! sentence's length, which it does for every piece of text.
//!
//! Needs the voice from `scripts/install-voices` in `$DIALHOUND_VOICES` or
//! `var/models`, and espeak-ng with its `cmn-latn-pinyin` voice.
//!
//! Run: `cargo bench -p dialhound-benches --bench voice`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use dialhound_media::tts::TtsEngine;
use dialhound_media::voice::{NeuralMandarin, Style, installed_models};

/// One prompt line: 20 characters after normalisation, two pieces.
const LINE: &str = "您好，您的购物车里还有商品，订单金额300.50元。";

fn voice(c: &mut Criterion) {
    let neural = match installed_models().and_then(NeuralMandarin::load) {
        Ok(neural) => neural,
        Err(error) => panic!("{error}"),
    };
    let audio = neural
        .speak(LINE, 1.0, Style::Neutral)
        .expect("neural speech");
    eprintln!("neural: {:.2} s of audio", audio.duration().as_secs_f64());

    let mut group = c.benchmark_group("voice");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.bench_function("neural_sentence", |b| {
        b.iter(|| neural.speak(black_box(LINE), 1.0, Style::Neutral).unwrap())
    });
    group.bench_function("espeak_sentence", |b| {
        b.iter_custom(|iterations| {
            let mut total = Duration::ZERO;
            for _ in 0..iterations {
                // A fresh cache each time, so that espeak-ng runs.
                let cache = tempfile::tempdir().unwrap();
                let engine = TtsEngine::new(cache.path(), "cmn", 1.0).unwrap();
                let started = Instant::now();
                black_box(engine.speak(black_box(LINE)).unwrap());
                total += started.elapsed();
            }
            total
        })
    });
    group.finish();
}

criterion_group!(benches, voice);
criterion_main!(benches);
