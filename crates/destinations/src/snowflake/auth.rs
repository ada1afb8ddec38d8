//! Key-pair authentication: reading the PEM private key (PKCS#8, passphrase-encrypted PKCS#8 with PBES2 and
//! AES-CBC or DES-EDE3-CBC, or PKCS#1)
//! and making the RS256-signed JWT that Snowflake's login accepts instead of a password — pure functions,
//! unit-tested here (the test server does not check JWTs, so these tests are what proves them).
//!
//! The token's issuer is `<ACCOUNT>.<USER>.SHA256:<fingerprint>`, where the fingerprint is the base64 of the
//! SHA-256 of the public key in DER `SubjectPublicKeyInfo` form — what Snowflake shows as the user's
//! `RSA_PUBLIC_KEY_FP`. RSA signing is ring's.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{KeyPair, RsaKeyPair, RSA_PKCS1_SHA256};

/// How long a key-pair JWT is valid; Snowflake accepts at most one hour.
pub const JWT_LIFETIME_SECS: i64 = 59 * 60;

/// The DER bytes of the first PEM block of `pem` and its label (`PRIVATE KEY`, …).
fn pem_block(pem: &str) -> Result<(String, Vec<u8>), String> {
    let start = pem
        .find("-----BEGIN ")
        .ok_or("the private key must be in PEM form (-----BEGIN PRIVATE KEY----- …)")?;
    let rest = &pem[start + 11..];
    let label_end = rest
        .find("-----")
        .ok_or("the PEM header of the private key is incomplete")?;
    let label = rest[..label_end].to_string();
    let body_and_end = &rest[label_end + 5..];
    let end = body_and_end
        .find(&format!("-----END {label}-----"))
        .ok_or_else(|| format!("the private key has no -----END {label}----- line"))?;
    let body = &body_and_end[..end];
    if body.contains("Proc-Type:") {
        return Err(
            "the private key is encrypted in the legacy OpenSSL form: convert it to encrypted PKCS#8 \
             (openssl pkcs8 -topk8 -v2 aes-256-cbc)"
                .into(),
        );
    }
    let b64: String = body.chars().filter(|c| !c.is_whitespace()).collect();
    let der = STANDARD
        .decode(b64)
        .map_err(|_| "the private key's PEM body is not valid base64".to_string())?;
    Ok((label, der))
}

/// The key as DER: PKCS#8 (decrypted with `passphrase` when encrypted), or PKCS#1 marked as such.
pub enum KeyDer {
    Pkcs8(Vec<u8>),
    Pkcs1(Vec<u8>),
}

/// The key never appears in logs or panics.
impl std::fmt::Debug for KeyDer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            KeyDer::Pkcs8(_) => "KeyDer::Pkcs8(********)",
            KeyDer::Pkcs1(_) => "KeyDer::Pkcs1(********)",
        })
    }
}

/// Reads the PEM private key into DER, decrypting it with `passphrase` when it is encrypted; checks that it
/// is an RSA key ring can sign with.
pub fn private_key_der(pem: &str, passphrase: Option<&str>) -> Result<KeyDer, String> {
    let (label, der) = pem_block(pem)?;
    let key = match label.as_str() {
        "PRIVATE KEY" => KeyDer::Pkcs8(der),
        "RSA PRIVATE KEY" => KeyDer::Pkcs1(der),
        "ENCRYPTED PRIVATE KEY" => {
            let passphrase = passphrase.ok_or(
                "the private key is encrypted: give its passphrase in private_key_passphrase",
            )?;
            let info = pkcs8::EncryptedPrivateKeyInfo::try_from(der.as_slice())
                .map_err(|e| format!("the encrypted private key cannot be read: {e}"))?;
            let doc = info.decrypt(passphrase.as_bytes()).map_err(|_| {
                "the private key cannot be decrypted: wrong passphrase (or an unsupported cipher)"
                    .to_string()
            })?;
            KeyDer::Pkcs8(doc.as_bytes().to_vec())
        }
        other => {
            return Err(format!(
                "the PEM block is `{other}`; expected a PRIVATE KEY, ENCRYPTED PRIVATE KEY or RSA PRIVATE KEY"
            ))
        }
    };
    key_pair(&key)?;
    Ok(key)
}

fn key_pair(key: &KeyDer) -> Result<RsaKeyPair, String> {
    match key {
        KeyDer::Pkcs8(der) => RsaKeyPair::from_pkcs8(der),
        KeyDer::Pkcs1(der) => RsaKeyPair::from_der(der),
    }
    .map_err(|e| {
        format!("the private key is not an RSA key of 2048 bits or more that Sluice can use ({e})")
    })
}

/// DER length octets.
fn der_len(len: usize, out: &mut Vec<u8>) {
    if len < 128 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .iter()
            .copied()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
}

/// The `SubjectPublicKeyInfo` DER of an RSA public key given as PKCS#1 `RSAPublicKey` DER.
pub fn spki_der(rsa_public_key: &[u8]) -> Vec<u8> {
    // AlgorithmIdentifier { rsaEncryption, NULL }
    const ALGORITHM: [u8; 15] = [
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
    ];
    let mut bit_string = vec![0x03];
    der_len(rsa_public_key.len() + 1, &mut bit_string);
    bit_string.push(0);
    bit_string.extend_from_slice(rsa_public_key);
    let mut out = vec![0x30];
    der_len(ALGORITHM.len() + bit_string.len(), &mut out);
    out.extend_from_slice(&ALGORITHM);
    out.extend(bit_string);
    out
}

/// `SHA256:<base64>` of the key's public half, as Snowflake prints `RSA_PUBLIC_KEY_FP`.
pub fn public_key_fingerprint(key: &KeyDer) -> Result<String, String> {
    let pair = key_pair(key)?;
    let spki = spki_der(pair.public_key().as_ref());
    let digest = ring::digest::digest(&ring::digest::SHA256, &spki);
    Ok(format!("SHA256:{}", STANDARD.encode(digest.as_ref())))
}

/// The signed JWT for `account` (as [`super::SnowflakeSettings::jwt_account`] gives it) and `user`, issued
/// at `now` (seconds since the epoch).
pub fn jwt(account: &str, user: &str, key: &KeyDer, now: i64) -> Result<String, String> {
    let pair = key_pair(key)?;
    let subject = format!(
        "{}.{}",
        account.to_ascii_uppercase(),
        user.to_ascii_uppercase()
    );
    let issuer = format!("{subject}.{}", public_key_fingerprint(key)?);
    let header = serde_json::json!({"alg": "RS256", "typ": "JWT"});
    let claims = serde_json::json!({
        "iss": issuer,
        "sub": subject,
        "iat": now,
        "exp": now + JWT_LIFETIME_SECS,
    });
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let mut signature = vec![0; pair.public().modulus_len()];
    pair.sign(
        &RSA_PKCS1_SHA256,
        &SystemRandom::new(),
        signing_input.as_bytes(),
        &mut signature,
    )
    .map_err(|_| "signing the login token failed".to_string())?;
    Ok(format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(signature)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{UnparsedPublicKey, RSA_PKCS1_2048_8192_SHA256};

    const PKCS8: &str = include_str!("testdata/test_key.p8");
    const ENCRYPTED: &str = include_str!("testdata/test_key_encrypted.p8");
    const PKCS1: &str = include_str!("testdata/test_key_pkcs1.pem");
    const DES3: &str = include_str!("testdata/test_key_des3.p8");
    const AES128: &str = include_str!("testdata/test_key_aes128.p8");
    /// `openssl rsa -in test_key.p8 -pubout -outform DER | openssl dgst -sha256 -binary | base64`
    const FINGERPRINT: &str = "SHA256:/63VJo1fNUay1eeq984WfRSlRSk+7O1WboqzXGitcHo=";

    #[test]
    fn reads_every_key_form_with_the_same_fingerprint() {
        for (pem, pass) in [
            (PKCS8, None),
            (ENCRYPTED, Some("sluice-test")),
            (DES3, Some("sluice-test")),
            (AES128, Some("sluice-test")),
            (PKCS1, None),
        ] {
            let key = private_key_der(pem, pass).unwrap();
            assert_eq!(public_key_fingerprint(&key).unwrap(), FINGERPRINT);
        }
    }

    #[test]
    fn explains_bad_keys() {
        assert!(private_key_der(ENCRYPTED, None)
            .unwrap_err()
            .contains("passphrase"));
        for encrypted in [ENCRYPTED, DES3, AES128] {
            assert!(private_key_der(encrypted, Some("wrong"))
                .unwrap_err()
                .contains("wrong passphrase"));
        }
        assert!(private_key_der("hello", None).unwrap_err().contains("PEM"));
        let not_base64 = "-----BEGIN PRIVATE KEY-----\n!!!\n-----END PRIVATE KEY-----";
        assert!(private_key_der(not_base64, None)
            .unwrap_err()
            .contains("base64"));
        let garbage = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----";
        assert!(private_key_der(garbage, None).unwrap_err().contains("RSA"));
    }

    #[test]
    fn signs_a_verifiable_jwt_with_snowflake_claims() {
        let key = private_key_der(PKCS8, None).unwrap();
        let token = jwt("MYORG-ACCT1", "loader", &key, 1_700_000_000).unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(header["alg"], "RS256");
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(claims["sub"], "MYORG-ACCT1.LOADER");
        assert_eq!(claims["iss"], format!("MYORG-ACCT1.LOADER.{FINGERPRINT}"));
        assert_eq!(claims["iat"], 1_700_000_000);
        assert_eq!(claims["exp"], 1_700_000_000 + JWT_LIFETIME_SECS);
        // The signature verifies with the public key.
        let pair = key_pair(&key).unwrap();
        let public =
            UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, pair.public_key().as_ref());
        let signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        public
            .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature)
            .expect("a valid RS256 signature");
    }

    #[test]
    fn der_lengths() {
        let mut v = Vec::new();
        der_len(5, &mut v);
        der_len(270, &mut v);
        assert_eq!(v, [5, 0x82, 0x01, 0x0e]);
    }
}
