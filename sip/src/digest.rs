//! Digest authentication for 401 and 407 challenges (RFC 3261 §22, RFC 2617,
//! and RFC 7616 / RFC 8760 for SHA-256), with `qop=auth` or without qop.
//!
//! The cnonce and the nonce count come from the caller, so an answer is a pure
//! function of its inputs and the published examples can be checked exactly.

use md5::Md5;
use sha2::{Digest, Sha256};

/// A trunk's username and password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The password never reaches a log.
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"…")
            .finish()
    }
}

/// The hash a challenge names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Md5,
    Sha256,
}

impl Algorithm {
    fn name(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
        }
    }

    fn hash(self, input: &str) -> String {
        let bytes = match self {
            Algorithm::Md5 => Md5::digest(input.as_bytes()).to_vec(),
            Algorithm::Sha256 => Sha256::digest(input.as_bytes()).to_vec(),
        };
        bytes.iter().map(|byte| format!("{byte:02x}")).collect()
    }
}

/// A `WWW-Authenticate` or `Proxy-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub realm: String,
    pub nonce: String,
    pub opaque: Option<String>,
    pub algorithm: Algorithm,
    /// The server offered `qop=auth` (we never use `auth-int`).
    pub qop_auth: bool,
    pub stale: bool,
}

/// Why a challenge cannot be answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    #[error("the challenge is not a Digest challenge")]
    NotDigest,
    #[error("the challenge has no `{0}`")]
    Missing(&'static str),
    #[error("the challenge asks for algorithm `{0}`, which dialhound does not support")]
    UnsupportedAlgorithm(String),
    #[error("the challenge offers only qop `{0}`; dialhound answers `auth`")]
    UnsupportedQop(String),
}

impl Challenge {
    /// Parses a challenge value such as
    /// `Digest realm="carrier", nonce="abc", qop="auth,auth-int", algorithm=MD5`.
    pub fn parse(value: &str) -> Result<Challenge, DigestError> {
        let value = value.trim();
        let (scheme, rest) = value.split_once(char::is_whitespace).unwrap_or((value, ""));
        if !scheme.eq_ignore_ascii_case("digest") {
            return Err(DigestError::NotDigest);
        }
        let mut realm = None;
        let mut nonce = None;
        let mut opaque = None;
        let mut algorithm = Algorithm::Md5;
        let mut qop = None;
        let mut stale = false;
        for (name, value) in parameters(rest) {
            match name.to_ascii_lowercase().as_str() {
                "realm" => realm = Some(value),
                "nonce" => nonce = Some(value),
                "opaque" => opaque = Some(value),
                "stale" => stale = value.eq_ignore_ascii_case("true"),
                "qop" => qop = Some(value),
                "algorithm" => {
                    algorithm = match value.to_ascii_uppercase().as_str() {
                        "MD5" => Algorithm::Md5,
                        "SHA-256" => Algorithm::Sha256,
                        _ => return Err(DigestError::UnsupportedAlgorithm(value)),
                    }
                }
                _ => {}
            }
        }
        let qop_auth = match &qop {
            None => false,
            Some(list)
                if list
                    .split(',')
                    .any(|q| q.trim().eq_ignore_ascii_case("auth")) =>
            {
                true
            }
            Some(list) => return Err(DigestError::UnsupportedQop(list.clone())),
        };
        Ok(Challenge {
            realm: realm.ok_or(DigestError::Missing("realm"))?,
            nonce: nonce.ok_or(DigestError::Missing("nonce"))?,
            opaque,
            algorithm,
            qop_auth,
            stale,
        })
    }

    /// The `Authorization` / `Proxy-Authorization` value for a request.
    pub fn answer(
        &self,
        credentials: &Credentials,
        method: &str,
        uri: &str,
        cnonce: &str,
        nonce_count: u32,
    ) -> Result<String, DigestError> {
        let algorithm = self.algorithm;
        let ha1 = algorithm.hash(&format!(
            "{}:{}:{}",
            credentials.username, self.realm, credentials.password
        ));
        let ha2 = algorithm.hash(&format!("{method}:{uri}"));
        let nc = format!("{nonce_count:08x}");
        let response = if self.qop_auth {
            algorithm.hash(&format!("{ha1}:{}:{nc}:{cnonce}:auth:{ha2}", self.nonce))
        } else {
            algorithm.hash(&format!("{ha1}:{}:{ha2}", self.nonce))
        };
        let mut value = format!(
            "Digest username=\"{}\", realm=\"{}\", nonce=\"{}\", uri=\"{uri}\", response=\"{response}\", algorithm={}",
            credentials.username,
            self.realm,
            self.nonce,
            algorithm.name()
        );
        if self.qop_auth {
            value.push_str(&format!(", cnonce=\"{cnonce}\", qop=auth, nc={nc}"));
        }
        if let Some(opaque) = &self.opaque {
            value.push_str(&format!(", opaque=\"{opaque}\""));
        }
        Ok(value)
    }
}

/// `name=value` and `name="quoted, value"` pairs separated by commas.
fn parameters(text: &str) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let Some((name, after)) = rest.split_once('=') else {
            break;
        };
        let name = name.trim().trim_start_matches(',').trim().to_owned();
        let after = after.trim_start();
        let (value, remainder) = if let Some(quoted) = after.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let mut end = quoted.len();
            while let Some((index, character)) = chars.next() {
                match character {
                    '\\' => {
                        if let Some((_, escaped)) = chars.next() {
                            value.push(escaped);
                        }
                    }
                    '"' => {
                        end = index + 1;
                        break;
                    }
                    other => value.push(other),
                }
            }
            (value, &quoted[end.min(quoted.len())..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim().to_owned(), &after[end..])
        };
        pairs.push((name, value));
        rest = remainder.trim_start().trim_start_matches(',').trim_start();
    }
    pairs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field<'a>(answer: &'a str, name: &str) -> &'a str {
        let start = answer.find(&format!("{name}=")).unwrap() + name.len() + 1;
        let rest = &answer[start..];
        match rest.strip_prefix('"') {
            Some(quoted) => &quoted[..quoted.find('"').unwrap()],
            None => rest.split(',').next().unwrap(),
        }
    }

    #[test]
    fn rfc_2617_example() {
        let challenge = Challenge::parse(
            "Digest realm=\"testrealm@host.com\", qop=\"auth,auth-int\", \
             nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", \
             opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"",
        )
        .unwrap();
        assert!(challenge.qop_auth);
        let credentials = Credentials {
            username: "Mufasa".into(),
            password: "Circle Of Life".into(),
        };
        let answer = challenge
            .answer(&credentials, "GET", "/dir/index.html", "0a4f113b", 1)
            .unwrap();
        assert_eq!(
            field(&answer, "response"),
            "6629fae49393a05397450978507c4ef1"
        );
        assert_eq!(field(&answer, "nc"), "00000001");
        assert_eq!(field(&answer, "opaque"), "5ccc069c403ebaf9f0171e9517f40e41");
    }

    #[test]
    fn rfc_7616_sha_256_example() {
        let challenge = Challenge::parse(
            "Digest realm=\"http-auth@example.org\", qop=\"auth, auth-int\", algorithm=SHA-256, \
             nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\", \
             opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\"",
        )
        .unwrap();
        assert_eq!(challenge.algorithm, Algorithm::Sha256);
        let credentials = Credentials {
            username: "Mufasa".into(),
            password: "Circle of Life".into(),
        };
        let answer = challenge
            .answer(
                &credentials,
                "GET",
                "/dir/index.html",
                "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
                1,
            )
            .unwrap();
        assert_eq!(
            field(&answer, "response"),
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
        assert_eq!(field(&answer, "algorithm"), "SHA-256");
    }

    #[test]
    fn without_qop_the_response_skips_cnonce_and_count() {
        let challenge =
            Challenge::parse("Digest realm=\"carrier\",nonce=\"abc\",algorithm=md5").unwrap();
        assert!(!challenge.qop_auth);
        let credentials = Credentials {
            username: "alice".into(),
            password: "secret".into(),
        };
        let answer = challenge
            .answer(&credentials, "INVITE", "sip:+8613800138000@carrier", "x", 1)
            .unwrap();
        let ha1 = Algorithm::Md5.hash("alice:carrier:secret");
        let ha2 = Algorithm::Md5.hash("INVITE:sip:+8613800138000@carrier");
        assert_eq!(
            field(&answer, "response"),
            Algorithm::Md5.hash(&format!("{ha1}:abc:{ha2}"))
        );
        assert!(!answer.contains("cnonce"));
        assert!(!answer.contains("qop"));
    }

    #[test]
    fn unusable_challenges_are_errors() {
        assert_eq!(
            Challenge::parse("Basic realm=\"x\""),
            Err(DigestError::NotDigest)
        );
        assert_eq!(
            Challenge::parse("Digest realm=\"x\""),
            Err(DigestError::Missing("nonce"))
        );
        assert!(matches!(
            Challenge::parse("Digest realm=\"x\", nonce=\"n\", algorithm=SHA-512-256"),
            Err(DigestError::UnsupportedAlgorithm(_))
        ));
        assert!(matches!(
            Challenge::parse("Digest realm=\"x\", nonce=\"n\", qop=\"auth-int\""),
            Err(DigestError::UnsupportedQop(_))
        ));
        // Truncated and odd input: an error or a value, never a panic.
        for text in [
            "Digest",
            "Digest realm=\"unterminated",
            "Digest ,,,=,=\"",
            "Digest a=\"\\",
        ] {
            let _ = Challenge::parse(text);
        }
    }

    #[test]
    fn credentials_do_not_print_the_password() {
        let credentials = Credentials {
            username: "alice".into(),
            password: "secret".into(),
        };
        assert!(!format!("{credentials:?}").contains("secret"));
    }
}
