//! Text-to-speech with espeak-ng, cached on disk.
//!
//! A Mandarin voice (`cmn`, `zh`) is spoken through espeak-ng's
//! `cmn-latn-pinyin` voice on numbered pinyin written by
//! [`crate::mandarin`]; espeak-ng's `cmn` voice on characters reads the tone
//! numbers in English and is never used.
//!
//! A prompt template such as `您好，{name}，您的购物车还有商品` is filled from
//! the customer's fields, spoken by `espeak-ng -v VOICE -s WPM --stdout` (the
//! text goes in on standard input, never through a shell, so no text can be
//! taken for an option or a command), converted to 8 kHz and stored under the
//! cache directory, keyed by the SHA-256 of voice, speed and text. A prompt
//! once rendered is read back from the cache and never synthesized again.
//! Cache files appear under their final name only when complete: each is
//! written to a temporary file in the same directory and renamed.
//!
//! With a neural Mandarin voice set ([`TtsEngine::with_neural_mandarin`]),
//! Mandarin text that has Chinese characters is spoken by
//! [`NeuralMandarin`] in process instead, at the same rate factor and in the
//! engine's [`Style`]; its cache key names the neural engine, so its renders
//! and espeak-ng's never share a file. Text with nothing the neural voice
//! reads (Latin only) still goes to espeak-ng.
//!
//! Rendering blocks on the program and the disk: an async caller runs it on
//! a blocking thread, or renders a campaign's prompts when it loads.

use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

use crate::prompt::{self, AudioError, Pcm8k};
use crate::voice::{NeuralMandarin, Style, VoiceError};

/// Speaking rates accepted, as a factor of espeak-ng's default.
pub const RATE_FACTORS: std::ops::RangeInclusive<f32> = 0.9..=1.2;

/// espeak-ng's default speed, words per minute.
const DEFAULT_WORDS_PER_MINUTE: f32 = 175.0;

/// The espeak-ng voice that reads numbered pinyin as Mandarin.
const PINYIN_VOICE: &str = "cmn-latn-pinyin";

/// The voice names that mean Mandarin: their text is spoken through
/// [`PINYIN_VOICE`], never by espeak-ng's `cmn` voice on characters.
const MANDARIN_VOICES: [&str; 5] = ["cmn", "zh", "zh-cmn", "cmn-latn-pinyin", "mandarin"];

/// Speaks prompts with espeak-ng, with a disk cache.
#[derive(Debug)]
pub struct TtsEngine {
    program: PathBuf,
    cache_dir: PathBuf,
    voice: String,
    /// Whether the text is rewritten as numbered pinyin for [`PINYIN_VOICE`].
    mandarin: bool,
    words_per_minute: u32,
    /// The rate factor the engine was made with.
    rate: f32,
    /// The in-process voice for Mandarin text, when one is set.
    neural: Option<Arc<NeuralMandarin>>,
    style: Style,
    /// Times the program was run to synthesize a prompt.
    syntheses: AtomicU64,
}

/// A template that cannot be filled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("unknown field `{0}` in prompt template")]
    UnknownField(String),
    #[error("`{{` at byte {0} of the prompt template is never closed")]
    Unclosed(usize),
    #[error("`}}` at byte {0} of the prompt template closes nothing; write `}}}}` for a brace")]
    StrayClose(usize),
    #[error("empty field name at byte {0} of the prompt template")]
    EmptyField(usize),
}

#[derive(Debug, thiserror::Error)]
pub enum TtsError {
    #[error("speech rate factor {0} is outside 0.9–1.2")]
    Rate(f32),
    #[error("voice `{0}` is not installed for espeak-ng")]
    UnknownVoice(String),
    #[error("text-to-speech program `{0}` was not found")]
    ProgramNotFound(PathBuf),
    #[error("text-to-speech program `{program}` could not be run: {reason}")]
    Run { program: PathBuf, reason: String },
    #[error("espeak-ng failed ({status}): {stderr}")]
    Failed { status: String, stderr: String },
    #[error("espeak-ng produced unusable audio: {0}")]
    Audio(#[from] AudioError),
    #[error("nothing to say: the prompt text is empty")]
    EmptyText,
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error("prompt cache `{path}`: {reason}")]
    Cache { path: PathBuf, reason: String },
    #[error(transparent)]
    Neural(#[from] VoiceError),
}

impl TtsEngine {
    /// An engine running `espeak-ng` from `PATH`. `rate` is a factor of
    /// espeak-ng's default 175 words per minute, 0.9–1.2.
    pub fn new(
        cache_dir: impl Into<PathBuf>,
        voice: impl Into<String>,
        rate: f32,
    ) -> Result<TtsEngine, TtsError> {
        if !RATE_FACTORS.contains(&rate) {
            return Err(TtsError::Rate(rate));
        }
        let voice: String = voice.into();
        Ok(TtsEngine {
            program: PathBuf::from("espeak-ng"),
            cache_dir: cache_dir.into(),
            mandarin: MANDARIN_VOICES.contains(&voice.to_ascii_lowercase().as_str()),
            voice,
            // In range: 157.5–210.
            words_per_minute: (DEFAULT_WORDS_PER_MINUTE * rate).round() as u32,
            rate,
            neural: None,
            style: Style::default(),
            syntheses: AtomicU64::new(0),
        })
    }

    /// Runs another espeak-ng binary.
    pub fn with_program(mut self, program: impl Into<PathBuf>) -> TtsEngine {
        self.program = program.into();
        self
    }

    /// Loads the neural Mandarin voice from the models folder `models`
    /// (see [`NeuralMandarin::load`]) and speaks Mandarin text with it.
    pub fn with_neural_mandarin(self, models: impl AsRef<Path>) -> Result<TtsEngine, TtsError> {
        Ok(self.with_neural_voice(NeuralMandarin::load_shared(models)?))
    }

    /// Speaks Mandarin text with `voice`, loaded once and shared.
    pub fn with_neural_voice(mut self, voice: Arc<NeuralMandarin>) -> TtsEngine {
        self.neural = Some(voice);
        self
    }

    /// The delivery of the neural voice; espeak-ng has none.
    pub fn with_style(mut self, style: Style) -> TtsEngine {
        self.style = style;
        self
    }

    /// The neural voice that speaks `text`, if one does.
    fn neural_for(&self, text: &str) -> Option<&NeuralMandarin> {
        self.neural
            .as_deref()
            .filter(|voice| self.mandarin && voice.can_speak(text))
    }

    pub fn voice(&self) -> &str {
        &self.voice
    }

    pub fn words_per_minute(&self) -> u32 {
        self.words_per_minute
    }

    pub fn cache_dir(&self) -> &Path {
        &self.cache_dir
    }

    /// How many times the program ran to synthesize speech (cache misses).
    pub fn syntheses(&self) -> u64 {
        self.syntheses.load(Ordering::Relaxed)
    }

    /// Runs espeak-ng once to check that the voice exists and the program
    /// runs; a campaign calls this when it is loaded.
    pub fn check_voice(&self) -> Result<(), TtsError> {
        self.run_program("a").map(drop)
    }

    /// Fills `template` from `fields` and speaks it, from the cache when it
    /// was spoken before.
    pub fn render(
        &self,
        template: &str,
        fields: &impl Fn(&str) -> Option<String>,
    ) -> Result<Pcm8k, TtsError> {
        let text = fill_template(template, fields)?;
        self.speak(&text)
    }

    /// Speaks `text`, from the cache when it was spoken before. In a
    /// Mandarin voice the text is first normalised (numbers, amounts, dates,
    /// times and phone numbers read the Chinese way) and written as numbered
    /// pinyin, which [`PINYIN_VOICE`] speaks; with a neural voice set, text
    /// it can read is spoken by it instead.
    pub fn speak(&self, text: &str) -> Result<Pcm8k, TtsError> {
        if text.trim().is_empty() {
            return Err(TtsError::EmptyText);
        }
        let path = self.cache_path(text);
        // A file under its final name is complete (see `store`); one that
        // still does not load, say a disk error, is made again.
        if let Ok(pcm) = prompt::load_wav(&path) {
            return Ok(pcm);
        }
        let pcm = if let Some(voice) = self.neural_for(text) {
            let pcm = voice.speak(text, self.rate, self.style)?;
            self.syntheses.fetch_add(1, Ordering::Relaxed);
            pcm
        } else {
            let wav = self.run_program(&self.spoken_text(text))?;
            self.syntheses.fetch_add(1, Ordering::Relaxed);
            prompt::pcm8k_from_streamed_wav(&wav)?
        };
        if pcm.is_empty() {
            return Err(AudioError::Empty.into());
        }
        self.store(&path, &pcm)?;
        Ok(pcm)
    }

    /// What the program is given for `text`: the text itself, or in a
    /// Mandarin voice its normalised numbered pinyin.
    pub fn spoken_text(&self, text: &str) -> String {
        if self.mandarin {
            crate::mandarin::numbered_pinyin(&crate::mandarin::normalize(text))
        } else {
            text.to_owned()
        }
    }

    /// The espeak-ng voice the program runs with.
    fn program_voice(&self) -> &str {
        if self.mandarin {
            PINYIN_VOICE
        } else {
            &self.voice
        }
    }

    /// Where `text` in this voice and speed is cached: keyed by what the
    /// program is given ([`TtsEngine::spoken_text`]) and the voice it runs.
    pub fn cache_path(&self, text: &str) -> PathBuf {
        let mut hash = Sha256::new();
        if self.neural_for(text).is_some() {
            // Starts with a byte no espeak-ng key starts with (those open
            // with a big-endian length), then the engine, delivery and text.
            hash.update(b"neural\0");
            hash.update(crate::voice::VOICE_DIR.as_bytes());
            hash.update([0]);
            hash.update(self.style.name().as_bytes());
            hash.update([0]);
            hash.update(self.rate.to_be_bytes());
            hash.update(crate::mandarin::normalize(text).as_bytes());
            return self.cache_file(hash);
        }
        let text = self.spoken_text(text);
        let voice = self.program_voice();
        // Lengths first, so that no two (voice, text) pairs hash the same bytes.
        hash.update((voice.len() as u64).to_be_bytes());
        hash.update(voice.as_bytes());
        hash.update(self.words_per_minute.to_be_bytes());
        hash.update(text.as_bytes());
        self.cache_file(hash)
    }

    fn cache_file(&self, hash: Sha256) -> PathBuf {
        let mut name = String::with_capacity(68);
        for byte in hash.finalize() {
            // Writing to a String cannot fail.
            let _ = write!(name, "{byte:02x}");
        }
        name.push_str(".wav");
        self.cache_dir.join(name)
    }

    fn run_program(&self, text: &str) -> Result<Vec<u8>, TtsError> {
        let mut child = Command::new(&self.program)
            .arg("-v")
            .arg(self.program_voice())
            .arg("-s")
            .arg(self.words_per_minute.to_string())
            .arg("--stdout")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|error| match error.kind() {
                io::ErrorKind::NotFound => TtsError::ProgramNotFound(self.program.clone()),
                _ => TtsError::Run {
                    program: self.program.clone(),
                    reason: error.to_string(),
                },
            })?;
        // Written from a thread while the output is read here: a long text
        // could otherwise fill both pipes and stall both processes.
        let stdin = child.stdin.take();
        let text = text.to_owned();
        let writer = std::thread::spawn(move || -> io::Result<()> {
            if let Some(mut stdin) = stdin {
                stdin.write_all(text.as_bytes())?;
                stdin.write_all(b"\n")?;
            }
            Ok(())
        });
        let output = child.wait_with_output().map_err(|error| TtsError::Run {
            program: self.program.clone(),
            reason: error.to_string(),
        })?;
        // A write error means the program exited early; its status says why.
        let _ = writer.join();
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
            if stderr.contains("voice does not exist") {
                return Err(TtsError::UnknownVoice(self.program_voice().to_owned()));
            }
            return Err(TtsError::Failed {
                status: output.status.to_string(),
                stderr,
            });
        }
        Ok(output.stdout)
    }

    fn store(&self, path: &Path, pcm: &Pcm8k) -> Result<(), TtsError> {
        static TEMPORARY: AtomicU64 = AtomicU64::new(0);
        let cache_error = |path: &Path, error: &dyn std::fmt::Display| TtsError::Cache {
            path: path.to_path_buf(),
            reason: error.to_string(),
        };
        fs::create_dir_all(&self.cache_dir)
            .map_err(|error| cache_error(&self.cache_dir, &error))?;
        let temporary = path.with_extension(format!(
            "{}-{}.tmp",
            std::process::id(),
            TEMPORARY.fetch_add(1, Ordering::Relaxed)
        ));
        let written = (|| -> Result<(), Box<dyn std::error::Error>> {
            let file = File::create_new(&temporary)?;
            let mut writer = BufWriter::new(file);
            prompt::write_pcm8k(&mut writer, pcm)?;
            writer
                .into_inner()
                .map_err(|error| error.into_error())?
                .sync_all()?;
            fs::rename(&temporary, path)?;
            Ok(())
        })();
        if let Err(error) = written {
            let _ = fs::remove_file(&temporary);
            return Err(cache_error(path, &error));
        }
        Ok(())
    }
}

/// Replaces each `{field}` in `template` with its value; `{{` and `}}`
/// stand for braces.
pub fn fill_template(
    template: &str,
    fields: &impl Fn(&str) -> Option<String>,
) -> Result<String, TemplateError> {
    let mut text = String::with_capacity(template.len());
    let mut rest = template.char_indices().peekable();
    while let Some((at, c)) = rest.next() {
        match c {
            '{' if rest.peek().map(|(_, c)| *c) == Some('{') => {
                rest.next();
                text.push('{');
            }
            '{' => {
                let start = at + 1;
                let end = template[start..]
                    .find('}')
                    .map(|length| start + length)
                    .ok_or(TemplateError::Unclosed(at))?;
                let name = template[start..end].trim();
                if name.is_empty() {
                    return Err(TemplateError::EmptyField(at));
                }
                if name.contains('{') {
                    return Err(TemplateError::Unclosed(at));
                }
                let value = fields(name).ok_or_else(|| TemplateError::UnknownField(name.into()))?;
                text.push_str(&value);
                while rest.peek().is_some_and(|(i, _)| *i <= end) {
                    rest.next();
                }
            }
            '}' if rest.peek().map(|(_, c)| *c) == Some('}') => {
                rest.next();
                text.push('}');
            }
            '}' => return Err(TemplateError::StrayClose(at)),
            c => text.push(c),
        }
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prompt::FRAME_SAMPLES;

    fn fields(name: &str) -> Option<String> {
        match name {
            "name" => Some("张先生".into()),
            "english_name" => Some("Mister Zhang".into()),
            _ => None,
        }
    }

    fn assert_same_audio(a: &Pcm8k, b: &Pcm8k) {
        assert_eq!(a.samples().len(), b.samples().len());
        let first_difference = a
            .samples()
            .iter()
            .zip(b.samples())
            .position(|(x, y)| x != y);
        assert_eq!(first_difference, None);
    }

    /// Frames whose RMS is above -40 dBFS.
    fn speech_frames(pcm: &Pcm8k) -> usize {
        pcm.frames(FRAME_SAMPLES)
            .filter(|frame| {
                let energy: f64 = frame.iter().map(|s| f64::from(*s).powi(2)).sum();
                (energy / frame.len() as f64).sqrt() > 327.0
            })
            .count()
    }

    #[test]
    fn template_fills_fields_and_escapes_braces() {
        assert_eq!(
            fill_template("您好，{name}，{{不是字段}} {{}}", &fields).expect("fill"),
            "您好，张先生，{不是字段} {}"
        );
        assert_eq!(
            fill_template("Hello {english_name}!", &fields).expect("fill"),
            "Hello Mister Zhang!"
        );
    }

    #[test]
    fn template_errors_name_the_problem() {
        assert_eq!(
            fill_template("您好，{surname}", &fields),
            Err(TemplateError::UnknownField("surname".into()))
        );
        assert_eq!(
            fill_template("您好，{surname}", &fields)
                .expect_err("unknown")
                .to_string(),
            "unknown field `surname` in prompt template"
        );
        assert_eq!(
            fill_template("hello {name", &fields),
            Err(TemplateError::Unclosed(6))
        );
        assert_eq!(
            fill_template("a } b", &fields),
            Err(TemplateError::StrayClose(2))
        );
        assert_eq!(
            fill_template("a {} b", &fields),
            Err(TemplateError::EmptyField(2))
        );
    }

    #[test]
    fn rate_outside_the_range_is_rejected() {
        for rate in [0.5, 0.89, 1.21, f32::NAN] {
            let error = TtsEngine::new("never-written", "en", rate).expect_err("rate");
            assert!(matches!(error, TtsError::Rate(_)), "{error}");
        }
        let engine = TtsEngine::new("never-written", "en", 1.2).expect("rate");
        assert_eq!(engine.words_per_minute(), 210);
    }

    #[test]
    fn a_mandarin_voice_is_given_numbered_pinyin_never_characters() {
        let dir = tempfile::tempdir().expect("temp dir");
        // A stand-in for the program that writes down what it was given.
        let program = dir.path().join("record-args");
        let given = dir.path().join("given");
        fs::write(
            &program,
            format!(
                "#!/bin/sh\necho \"$@\" > {0}\ncat >> {0}\nexit 3\n",
                given.display()
            ),
        )
        .expect("script");
        let mut permissions = fs::metadata(&program).expect("metadata").permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
        fs::set_permissions(&program, permissions).expect("chmod");
        for voice in ["cmn", "zh"] {
            let engine = TtsEngine::new(dir.path().join("cache"), voice, 1.0)
                .expect("engine")
                .with_program(&program);
            assert!(engine.speak("您好，订单300.50元").is_err());
            let given = fs::read_to_string(&given).expect("the program ran");
            assert_eq!(
                given,
                "-v cmn-latn-pinyin -s 175 --stdout\nnin2 hao3, ding4 dan1 san1 bai3 yuan2 wu3 jiao3\n",
                "{voice}"
            );
        }
        let english = TtsEngine::new(dir.path().join("cache"), "en-us", 1.0).expect("engine");
        assert_eq!(english.spoken_text("Order 300"), "Order 300");
    }

    #[test]
    fn mandarin_prompt_is_spoken_and_cached() {
        let dir = tempfile::tempdir().expect("temp dir");
        let engine = TtsEngine::new(dir.path(), "cmn", 1.0).expect("engine");
        engine.check_voice().expect("cmn voice");
        let pcm = engine
            .render("您好，{name}，您的购物车还有商品", &fields)
            .expect("render");
        assert!(pcm.duration().as_secs_f32() > 0.5, "{:?}", pcm.duration());
        assert!(
            speech_frames(&pcm) > 20,
            "{} speech frames",
            speech_frames(&pcm)
        );
        assert_eq!(engine.syntheses(), 1);

        let again = engine
            .render("您好，{name}，您的购物车还有商品", &fields)
            .expect("render again");
        assert_eq!(engine.syntheses(), 1, "the second render ran the program");
        assert_same_audio(&again, &pcm);

        // The cache alone serves it: no program is needed.
        let without_program = TtsEngine::new(dir.path(), "cmn", 1.0)
            .expect("engine")
            .with_program("/nonexistent/espeak-ng");
        let cached = without_program
            .render("您好，{name}，您的购物车还有商品", &fields)
            .expect("from cache");
        assert_same_audio(&cached, &pcm);
        assert_eq!(without_program.syntheses(), 0);

        // Only the finished file is left in the cache.
        let files: Vec<_> = fs::read_dir(dir.path())
            .expect("read cache")
            .map(|entry| entry.expect("entry").file_name())
            .collect();
        assert_eq!(files.len(), 1, "{files:?}");
    }

    #[test]
    fn english_prompt_is_spoken() {
        let dir = tempfile::tempdir().expect("temp dir");
        let engine = TtsEngine::new(dir.path(), "en", 1.1).expect("engine");
        let pcm = engine
            .render(
                "Hello {english_name}, items are waiting in your cart.",
                &fields,
            )
            .expect("render");
        assert!(pcm.duration().as_secs_f32() > 0.5, "{:?}", pcm.duration());
        assert!(speech_frames(&pcm) > 20);
    }

    #[test]
    fn speed_and_voice_key_the_cache() {
        let slow = TtsEngine::new("/cache", "en", 0.9).expect("engine");
        let fast = TtsEngine::new("/cache", "en", 1.2).expect("engine");
        let chinese = TtsEngine::new("/cache", "cmn", 0.9).expect("engine");
        assert_ne!(slow.cache_path("hi"), fast.cache_path("hi"));
        assert_ne!(slow.cache_path("hi"), chinese.cache_path("hi"));
        assert_ne!(slow.cache_path("hi"), slow.cache_path("ho"));
        assert_eq!(slow.cache_path("hi"), slow.cache_path("hi"));
        let name = slow.cache_path("hi");
        let name = name.file_name().and_then(|n| n.to_str()).expect("name");
        assert_eq!(name.len(), 64 + 4);
    }

    #[test]
    fn unknown_voice_is_a_clear_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        let engine = TtsEngine::new(dir.path(), "nosuch", 1.0).expect("engine");
        let error = engine.check_voice().expect_err("no such voice");
        assert!(matches!(error, TtsError::UnknownVoice(_)), "{error}");
        assert_eq!(
            error.to_string(),
            "voice `nosuch` is not installed for espeak-ng"
        );
        assert!(matches!(
            engine.speak("hello"),
            Err(TtsError::UnknownVoice(_))
        ));
    }

    #[test]
    fn missing_program_is_a_clear_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        let engine = TtsEngine::new(dir.path(), "en", 1.0)
            .expect("engine")
            .with_program("/nonexistent/espeak-ng");
        let error = engine.check_voice().expect_err("no program");
        assert!(matches!(error, TtsError::ProgramNotFound(_)), "{error}");
        assert_eq!(
            error.to_string(),
            "text-to-speech program `/nonexistent/espeak-ng` was not found"
        );
        assert!(matches!(
            engine.speak("hello"),
            Err(TtsError::ProgramNotFound(_))
        ));
    }

    #[test]
    fn text_that_looks_like_an_option_is_spoken() {
        let dir = tempfile::tempdir().expect("temp dir");
        let engine = TtsEngine::new(dir.path(), "en", 1.0).expect("engine");
        let pcm = engine.speak("--help -v nosuch").expect("spoken");
        assert!(speech_frames(&pcm) > 10);
        assert!(matches!(engine.speak("  "), Err(TtsError::EmptyText)));
    }
}
