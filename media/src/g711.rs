//! G.711 µ-law and A-law, as ITU-T G.711 defines them (segment-and-mantissa
//! companding of 14-bit and 13-bit linear samples into 8 bits).

const MULAW_BIAS: i32 = 0x84;
const MULAW_CLIP: i32 = 32_635;

/// Encodes one 16-bit linear sample as µ-law.
pub fn mulaw_encode(sample: i16) -> u8 {
    let mut value = i32::from(sample);
    let sign = if value < 0 {
        value = -value;
        0x80
    } else {
        0
    };
    value = value.min(MULAW_CLIP) + MULAW_BIAS;
    let exponent = (7 - (value >> 7).leading_zeros().saturating_sub(24).min(7)) as i32;
    let exponent = exponent.clamp(0, 7);
    let mantissa = (value >> (exponent + 3)) & 0x0f;
    !(sign | (exponent << 4) as u8 | mantissa as u8)
}

/// Decodes one µ-law byte to a 16-bit linear sample.
pub fn mulaw_decode(code: u8) -> i16 {
    let code = !code;
    let exponent = i32::from((code >> 4) & 0x07);
    let mantissa = i32::from(code & 0x0f);
    let magnitude = (((mantissa << 3) + MULAW_BIAS) << exponent) - MULAW_BIAS;
    if code & 0x80 != 0 {
        -magnitude as i16
    } else {
        magnitude as i16
    }
}

/// Encodes one 16-bit linear sample as A-law.
pub fn alaw_encode(sample: i16) -> u8 {
    // A-law works on 13-bit samples.
    let mut value = i32::from(sample) >> 3;
    let sign = if value >= 0 {
        0x80
    } else {
        value = -value - 1;
        0x00
    };
    let value = value.min(0x0fff);
    let code = if value < 32 {
        (value >> 1) as u8
    } else {
        let exponent = 31 - (value as u32).leading_zeros() - 4; // 1..=7
        let mantissa = (value >> exponent) & 0x0f;
        ((exponent << 4) as u8) | mantissa as u8
    };
    (sign | code) ^ 0x55
}

/// Decodes one A-law byte to a 16-bit linear sample.
pub fn alaw_decode(code: u8) -> i16 {
    let code = code ^ 0x55;
    let exponent = i32::from((code >> 4) & 0x07);
    let mantissa = i32::from(code & 0x0f);
    let magnitude = if exponent == 0 {
        (mantissa << 4) + 8
    } else {
        ((mantissa << 4) + 0x108) << (exponent - 1)
    };
    if code & 0x80 != 0 {
        magnitude as i16
    } else {
        -magnitude as i16
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values from the G.711 decoding tables.
    #[test]
    fn mulaw_matches_the_reference_table() {
        for (code, linear) in [
            (0x00u8, -32124i16),
            (0x80, 32124),
            (0x0f, -16764),
            (0x8f, 16764),
            (0x70, -120),
            (0x7e, -8),
            (0xfe, 8),
            (0x7f, 0),
            (0xff, 0),
            (0xf0, 120),
        ] {
            assert_eq!(mulaw_decode(code), linear, "code {code:#04x}");
        }
    }

    #[test]
    fn alaw_matches_the_reference_table() {
        for (code, linear) in [
            (0xd5u8, 8i16),
            (0x55, -8),
            (0xaa, 32256),
            (0x2a, -32256),
            (0xd4, 24),
            (0xc5, 264),
            (0xfa, 1008),
            (0x80, 5504),
        ] {
            assert_eq!(alaw_decode(code), linear, "code {code:#04x}");
        }
    }

    #[test]
    fn encoding_a_decoded_value_gives_the_code_back() {
        for code in 0..=255u8 {
            let mulaw = mulaw_decode(code);
            // µ-law has two zeros (0x7f and 0xff); both decode to 0, which encodes as 0xff.
            if code != 0x7f {
                assert_eq!(mulaw_encode(mulaw), code, "µ-law {code:#04x} → {mulaw}");
            }
            let alaw = alaw_decode(code);
            assert_eq!(alaw_encode(alaw), code, "A-law {code:#04x} → {alaw}");
        }
    }

    #[test]
    fn round_trip_error_stays_within_the_segment_step() {
        for sample in (i16::MIN..=i16::MAX).step_by(7) {
            let mulaw = mulaw_decode(mulaw_encode(sample));
            let alaw = alaw_decode(alaw_encode(sample));
            let allowed = (i32::from(sample).abs() / 16).max(16) + 16;
            let clipped = i32::from(sample).clamp(-32_635, 32_635);
            assert!(
                (i32::from(mulaw) - clipped).abs() <= allowed,
                "µ-law {sample} → {mulaw}"
            );
            assert!(
                (i32::from(alaw) - i32::from(sample)).abs() <= allowed,
                "A-law {sample} → {alaw}"
            );
        }
        assert_eq!(mulaw_encode(i16::MAX), 0x80);
        assert_eq!(mulaw_encode(i16::MIN), 0x00);
    }
}
