//! Call quality: the numbers a call leg's RTP session measured, and a MOS
//! estimate from a simplified ITU-T G.107 E-model.
//!
//! The full E-model has some twenty inputs, most of them about handsets and
//! rooms dialhound cannot see. With their defaults the rating reduces to
//! `R = 93.2 − Id − Ie_eff`: an impairment for delay and one for codec and
//! loss. For delay this uses the widely used linear fit of G.107's `Id`
//! (Cole and Rosenbluth, 2001): `Id = 0.024 d + 0.11 (d − 177.3) H(d − 177.3)`
//! with `d` the one-way mouth-to-ear delay in milliseconds and `H` the step
//! function. For loss, `Ie_eff = Ie + (95 − Ie) · Ppl / (Ppl + Bpl)`, G.107's
//! formula for random loss (BurstR = 1).

use std::time::Duration;

/// G.711's equipment impairment factor (ITU-T G.113 Appendix I): none.
pub const G711_IE: f64 = 0.0;

/// G.711's packet-loss robustness without packet loss concealment (ITU-T
/// G.113 Appendix I). 25.1 would apply with concealment.
///
/// dialhound uses the value without: its own receive path (DTMF detection,
/// voice activity, recording) does not conceal lost packets, and it cannot
/// know whether the far end's phone does. The lower robustness makes loss
/// weigh more, so the estimate errs on the side of reporting a bad call.
pub const G711_BPL: f64 = 4.3;

/// Audio in one packet, which the far end waits for before it can play it.
pub const PACKETIZATION_DELAY: Duration = Duration::from_millis(20);

/// What one call leg's media looked like, for CDRs and metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct CallQuality {
    pub packets_sent: u64,
    pub packets_received: u64,
    /// Packets of the peer's stream that never arrived.
    pub lost: u64,
    /// `lost` over packets expected, 0 to 1.
    pub loss_fraction: f64,
    /// Interarrival jitter of the peer's stream (RFC 3550 A.8), milliseconds.
    pub jitter_ms: f64,
    /// Round-trip time from the peer's last reception report, when it sent
    /// one that refers to one of our sender reports.
    pub rtt_ms: Option<f64>,
    /// The peer's latest report of our stream's loss since its previous
    /// report, 0 to 1.
    pub peer_loss_fraction: Option<f64>,
    /// The peer's latest report of our stream's jitter, milliseconds.
    pub peer_jitter_ms: Option<f64>,
    /// Estimated mean opinion score, 1 to 4.5, for the worse direction.
    pub mos: f64,
}

/// The one-way delay the E-model rates: half the round trip (zero while
/// unknown), one packet of audio, and a jitter buffer deep enough for twice
/// the measured jitter. dialhound does not report its jitter buffer's real
/// depth yet, so this is the depth an adaptive buffer would settle on.
pub fn mouth_to_ear_delay(rtt: Option<Duration>, jitter: Duration) -> Duration {
    rtt.unwrap_or_default() / 2 + PACKETIZATION_DELAY + jitter * 2
}

/// The E-model's transmission rating R for G.711 at a loss fraction (0 to 1)
/// and one-way delay, clamped to 0–100.
pub fn r_factor(loss_fraction: f64, one_way_delay: Duration) -> f64 {
    let delay_ms = one_way_delay.as_secs_f64() * 1000.0;
    let delay_impairment = 0.024 * delay_ms + 0.11 * (delay_ms - 177.3).max(0.0);
    let loss_percent = if loss_fraction.is_finite() {
        loss_fraction.clamp(0.0, 1.0) * 100.0
    } else {
        0.0
    };
    let loss_impairment = G711_IE + (95.0 - G711_IE) * loss_percent / (loss_percent + G711_BPL);
    (93.2 - delay_impairment - loss_impairment).clamp(0.0, 100.0)
}

/// G.107's mapping from R to MOS.
pub fn mos_from_r(r: f64) -> f64 {
    if r <= 0.0 {
        return 1.0;
    }
    if r >= 100.0 {
        return 4.5;
    }
    (1.0 + 0.035 * r + 7.0e-6 * r * (r - 60.0) * (100.0 - r)).clamp(1.0, 4.5)
}

/// MOS for G.711 at a loss fraction and one-way delay.
pub fn estimate_mos(loss_fraction: f64, one_way_delay: Duration) -> f64 {
    mos_from_r(r_factor(loss_fraction, one_way_delay))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clean_call_scores_about_4_4() {
        let delay = mouth_to_ear_delay(None, Duration::ZERO);
        assert_eq!(delay, Duration::from_millis(20));
        // R = 93.2 − 0.48 = 92.72.
        assert!((r_factor(0.0, delay) - 92.72).abs() < 1e-9);
        let mos = estimate_mos(0.0, delay);
        assert!((mos - 4.40).abs() < 0.01, "{mos}");
    }

    #[test]
    fn mos_falls_with_loss() {
        let delay = Duration::from_millis(40);
        let scores: Vec<f64> = [0.0, 0.005, 0.01, 0.02, 0.05, 0.1, 0.3]
            .iter()
            .map(|loss| estimate_mos(*loss, delay))
            .collect();
        assert!(
            scores.windows(2).all(|pair| pair[0] > pair[1]),
            "{scores:?}"
        );
        // 1 % random loss without concealment: Ie_eff = 95/5.3 ≈ 17.9.
        let one_percent = r_factor(0.01, Duration::ZERO);
        assert!((one_percent - (93.2 - 95.0 / 5.3)).abs() < 1e-9);
        assert!(scores[2] < 4.0 && scores[2] > 3.5, "{scores:?}");
        assert!(scores[6] < 1.5, "{scores:?}");
    }

    #[test]
    fn delay_past_177_ms_costs_more() {
        let below = r_factor(0.0, Duration::from_millis(170));
        let at = r_factor(0.0, Duration::from_millis(177));
        let above = r_factor(0.0, Duration::from_millis(277));
        assert!((below - at - 0.024 * 7.0).abs() < 1e-9);
        assert!((at - above - (0.024 * 100.0 + 0.11 * 99.7)).abs() < 1e-6);
    }

    #[test]
    fn scores_stay_in_range_for_any_input() {
        for loss in [-1.0, 0.0, 1.0, 7.0, f64::NAN, f64::INFINITY] {
            for delay_ms in [0, 150, 1000, 100_000] {
                let mos = estimate_mos(loss, Duration::from_millis(delay_ms));
                assert!((1.0..=4.5).contains(&mos), "{loss} {delay_ms}: {mos}");
            }
        }
        assert_eq!(mos_from_r(-5.0), 1.0);
        assert_eq!(mos_from_r(120.0), 4.5);
    }
}
