//! Uploading a stage file the way Snowflake's own connectors do for an internal stage whose `PUT` answer
//! names cloud storage: the file is encrypted on the client (a fresh AES key and IV per file, AES-CBC with
//! PKCS#7 padding; the file key wrapped with the query's stage master key in AES-ECB), and sent with the
//! wrapped key, the IV and the material description as object metadata, to S3 (signed with AWS Signature
//! Version 4 from the temporary credentials of the answer), GCS (with the answer's access token) or Azure
//! Blob Storage (with the answer's SAS token).
//!
//! Everything but the sending is pure and unit-tested here. The S3 path is also tested end to end against
//! an S3-protocol server (moto) behind the test server, which decrypts what it receives; the GCS and Azure
//! request shapes are only unit-tested (no server of theirs runs in the tests).

use std::collections::BTreeMap;

use aes::cipher::{block_padding::Pkcs7, BlockEncrypt, BlockEncryptMut, KeyInit, KeyIvInit};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ring::rand::SecureRandom;
use serde_json::{json, Value as Json};

/// The stage master key and its description, from the `encryptionMaterial` of a `PUT` answer.
#[derive(Clone)]
pub struct Material {
    pub master_key: Vec<u8>,
    pub query_id: String,
    pub smk_id: String,
}

/// The key never appears in logs.
impl std::fmt::Debug for Material {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Material")
            .field("master_key", &"********")
            .field("query_id", &self.query_id)
            .field("smk_id", &self.smk_id)
            .finish()
    }
}

impl Material {
    /// Reads `encryptionMaterial` (an object, or the first of a list as some answers give it).
    pub fn from_answer(m: &Json) -> Result<Option<Material>, String> {
        let m = match m {
            Json::Array(list) => list.first().unwrap_or(&Json::Null),
            other => other,
        };
        if m.is_null() {
            return Ok(None);
        }
        let key = m["queryStageMasterKey"]
            .as_str()
            .ok_or("the PUT answer's encryptionMaterial has no queryStageMasterKey")?;
        let master_key = STANDARD
            .decode(key)
            .map_err(|_| "the stage master key is not base64")?;
        if !matches!(master_key.len(), 16 | 24 | 32) {
            return Err(format!(
                "the stage master key has {} bytes; AES needs 16, 24 or 32",
                master_key.len()
            ));
        }
        let smk_id = match &m["smkId"] {
            Json::Number(n) => n.to_string(),
            Json::String(s) => s.clone(),
            _ => String::new(),
        };
        Ok(Some(Material {
            master_key,
            query_id: m["queryId"].as_str().unwrap_or("").to_string(),
            smk_id,
        }))
    }
}

/// An encrypted file and what describes its encryption.
#[derive(Debug)]
pub struct Encrypted {
    pub body: Vec<u8>,
    /// The file key wrapped by the master key, base64.
    pub wrapped_key: String,
    /// The IV, base64.
    pub iv: String,
    /// `{"queryId":…,"smkId":…,"keySize":…}`.
    pub matdesc: String,
    /// Bits of the file key.
    pub key_bits: usize,
}

fn aes_cbc_encrypt(key: &[u8], iv: &[u8; 16], plain: &[u8]) -> Result<Vec<u8>, String> {
    let bad = |_| "bad AES key length".to_string();
    Ok(match key.len() {
        16 => cbc::Encryptor::<aes::Aes128>::new_from_slices(key, iv)
            .map_err(bad)?
            .encrypt_padded_vec_mut::<Pkcs7>(plain),
        24 => cbc::Encryptor::<aes::Aes192>::new_from_slices(key, iv)
            .map_err(bad)?
            .encrypt_padded_vec_mut::<Pkcs7>(plain),
        32 => cbc::Encryptor::<aes::Aes256>::new_from_slices(key, iv)
            .map_err(bad)?
            .encrypt_padded_vec_mut::<Pkcs7>(plain),
        n => return Err(format!("an AES key of {n} bytes")),
    })
}

/// AES-ECB of `data` (a multiple of 16 bytes) under `key`: how the connectors wrap a file key.
fn aes_ecb_encrypt(key: &[u8], data: &[u8]) -> Result<Vec<u8>, String> {
    fn run<C: BlockEncrypt + KeyInit>(key: &[u8], data: &[u8]) -> Result<Vec<u8>, String> {
        let cipher = C::new_from_slice(key).map_err(|_| "bad AES key length".to_string())?;
        let mut out = data.to_vec();
        for block in out.chunks_mut(16) {
            cipher.encrypt_block(aes::cipher::generic_array::GenericArray::from_mut_slice(
                block,
            ));
        }
        Ok(out)
    }
    match key.len() {
        16 => run::<aes::Aes128>(key, data),
        24 => run::<aes::Aes192>(key, data),
        32 => run::<aes::Aes256>(key, data),
        n => Err(format!("an AES key of {n} bytes")),
    }
}

/// PKCS#7 padding to 16 bytes (a whole block when `data` is already aligned).
fn pkcs7(data: &[u8]) -> Vec<u8> {
    let pad = 16 - data.len() % 16;
    let mut out = data.to_vec();
    out.extend(std::iter::repeat_n(pad as u8, pad));
    out
}

/// Encrypts `plain` for a stage under `material`, with a random file key (as long as the master key) and IV.
pub fn encrypt(
    material: &Material,
    plain: &[u8],
    rng: &dyn SecureRandom,
) -> Result<Encrypted, String> {
    let mut file_key = vec![0u8; material.master_key.len()];
    let mut iv = [0u8; 16];
    rng.fill(&mut file_key)
        .and_then(|_| rng.fill(&mut iv))
        .map_err(|_| "no random numbers for the file key".to_string())?;
    let body = aes_cbc_encrypt(&file_key, &iv, plain)?;
    let wrapped = aes_ecb_encrypt(&material.master_key, &pkcs7(&file_key))?;
    let key_bits = file_key.len() * 8;
    Ok(Encrypted {
        body,
        wrapped_key: STANDARD.encode(wrapped),
        iv: STANDARD.encode(iv),
        matdesc: json!({
            "queryId": material.query_id,
            "smkId": material.smk_id,
            "keySize": key_bits.to_string(),
        })
        .to_string(),
        key_bits,
    })
}

/// SHA-256 of the unencrypted file, base64: the connectors' `sfc-digest` metadata.
pub fn digest(plain: &[u8]) -> String {
    STANDARD.encode(ring::digest::digest(&ring::digest::SHA256, plain))
}

fn hex(bytes: &[u8]) -> String {
    super::dialect::hex(bytes)
}

fn sha256_hex(data: &[u8]) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, data).as_ref())
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    ring::hmac::sign(&k, data).as_ref().to_vec()
}

/// One HTTP request to make: method PUT, `url`, `headers`, the body.
#[derive(Debug)]
pub struct Request {
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Percent-encodes a path as S3 canonical requests want (each segment; `/` kept).
fn uri_encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The S3 credentials of a `PUT` answer (`stageInfo.creds`).
pub struct S3Credentials {
    pub key_id: String,
    pub secret: String,
    pub token: Option<String>,
}

/// A signed S3 `PUT` of `body` to `key` in `bucket`. `endpoint` is the answer's `endPoint`: a host name
/// (for FIPS or regional endpoints), or empty for the usual `s3.<region>.amazonaws.com`; a value with an
/// `http://` or `https://` scheme (a test server) is used as given, with path-style addressing.
/// `amz_date` is the signing time, `YYYYMMDDTHHMMSSZ`.
#[allow(clippy::too_many_arguments)]
pub fn s3_put(
    bucket: &str,
    key: &str,
    region: &str,
    endpoint: &str,
    creds: &S3Credentials,
    metadata: &[(&str, String)],
    body: Vec<u8>,
    amz_date: &str,
) -> Request {
    let (base, host, path) = if endpoint.starts_with("http://") || endpoint.starts_with("https://")
    {
        let base = endpoint.trim_end_matches('/').to_string();
        let host = base.split_once("://").map_or("", |(_, h)| h).to_string();
        (base, host, format!("/{bucket}/{key}"))
    } else {
        let domain = if endpoint.is_empty() {
            format!("s3.{region}.amazonaws.com")
        } else {
            endpoint.trim_end_matches('/').to_string()
        };
        let host = format!("{bucket}.{domain}");
        (format!("https://{host}"), host, format!("/{key}"))
    };
    let path = uri_encode_path(&path);
    let payload_hash = sha256_hex(&body);
    // Every x-amz-* header is signed, as S3 requires; keys sorted for the canonical form.
    let mut signed: BTreeMap<String, String> = BTreeMap::new();
    signed.insert("host".into(), host);
    signed.insert("x-amz-content-sha256".into(), payload_hash.clone());
    signed.insert("x-amz-date".into(), amz_date.to_string());
    if let Some(t) = &creds.token {
        signed.insert("x-amz-security-token".into(), t.clone());
    }
    for (k, v) in metadata {
        signed.insert(
            format!("x-amz-meta-{}", k.to_ascii_lowercase()),
            v.trim().to_string(),
        );
    }
    let canonical_headers: String = signed.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let signed_names = signed.keys().cloned().collect::<Vec<_>>().join(";");
    let canonical = format!("PUT\n{path}\n\n{canonical_headers}\n{signed_names}\n{payload_hash}");
    let date = &amz_date[..8.min(amz_date.len())];
    let scope = format!("{date}/{region}/s3/aws4_request");
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        sha256_hex(canonical.as_bytes())
    );
    let mut k = hmac(format!("AWS4{}", creds.secret).as_bytes(), date.as_bytes());
    for part in [region, "s3", "aws4_request"] {
        k = hmac(&k, part.as_bytes());
    }
    let signature = hex(&hmac(&k, to_sign.as_bytes()));
    let mut headers: Vec<(String, String)> =
        signed.into_iter().filter(|(k, _)| k != "host").collect();
    headers.push((
        "authorization".into(),
        format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_names}, Signature={signature}",
            creds.key_id
        ),
    ));
    Request {
        url: format!("{base}{path}"),
        headers,
        body,
    }
}

/// The `encryptiondata` metadata GCS and Azure uploads carry (the shape of Azure's client-side
/// encryption, which the connectors use for both).
pub fn encryption_data(e: &Encrypted) -> String {
    let alg = format!("AES_CBC_{}", e.key_bits);
    json!({
        "EncryptionMode": "FullBlob",
        "WrappedContentKey": {"KeyId": "symmKey1", "EncryptedKey": e.wrapped_key, "Algorithm": alg},
        "EncryptionAgent": {"Protocol": "1.0", "EncryptionAlgorithm": alg},
        "ContentEncryptionIV": e.iv,
        "KeyWrappingMetadata": {"EncryptionLibrary": "Java 5.3.0"},
    })
    .to_string()
}

/// A GCS upload: to the answer's presigned URL when it gives one, otherwise to
/// `https://storage.googleapis.com/<bucket>/<path><file>` with its access token.
pub fn gcs_put(
    presigned_url: Option<&str>,
    location: &str,
    file: &str,
    access_token: Option<&str>,
    e: Encrypted,
    digest: &str,
) -> Request {
    let mut headers = vec![
        (
            "x-goog-meta-encryptiondata".to_string(),
            encryption_data(&e),
        ),
        ("x-goog-meta-matdesc".to_string(), e.matdesc.clone()),
        ("x-goog-meta-sfc-digest".to_string(), digest.to_string()),
    ];
    let url = match presigned_url {
        Some(u) => u.to_string(),
        None => {
            if let Some(t) = access_token {
                headers.push(("authorization".into(), format!("Bearer {t}")));
            }
            let (bucket, path) = location.split_once('/').unwrap_or((location, ""));
            let path = if path.is_empty() || path.ends_with('/') {
                format!("{path}{file}")
            } else {
                format!("{path}/{file}")
            };
            format!(
                "https://storage.googleapis.com/{bucket}/{}",
                uri_encode_path(&path)
            )
        }
    };
    Request {
        url,
        headers,
        body: e.body,
    }
}

/// An Azure Blob Storage upload: `https://<storageAccount>.blob.core.windows.net/<container>/<path><file>`
/// with the answer's SAS token as the query (`endPoint` gives another domain when it is set).
pub fn azure_put(
    storage_account: &str,
    endpoint: &str,
    location: &str,
    file: &str,
    sas_token: &str,
    e: Encrypted,
    digest: &str,
) -> Request {
    let (container, path) = location.split_once('/').unwrap_or((location, ""));
    let path = if path.is_empty() || path.ends_with('/') {
        format!("{path}{file}")
    } else {
        format!("{path}/{file}")
    };
    let domain = if endpoint.is_empty() {
        "blob.core.windows.net"
    } else {
        endpoint
    };
    let sas = sas_token.trim_start_matches('?');
    Request {
        url: format!(
            "https://{storage_account}.{domain}/{container}/{}?{sas}",
            uri_encode_path(&path)
        ),
        headers: vec![
            ("x-ms-blob-type".into(), "BlockBlob".into()),
            ("x-ms-meta-encryptiondata".into(), encryption_data(&e)),
            ("x-ms-meta-matdesc".into(), e.matdesc.clone()),
            ("x-ms-meta-sfcdigest".into(), digest.to_string()),
        ],
        body: e.body,
    }
}

/// The upload a `PUT` answer (`data`) asks for, of `plain` as `file`; `None` when its location type is
/// not one Sluice uploads to. `amz_date` is the signing time for S3.
pub fn plan(
    data: &Json,
    file: &str,
    plain: &[u8],
    amz_date: &str,
) -> Result<Option<Request>, String> {
    let info = &data["stageInfo"];
    let Some(material) = Material::from_answer(&data["encryptionMaterial"])? else {
        return Ok(None);
    };
    let rng = ring::rand::SystemRandom::new();
    let e = encrypt(&material, plain, &rng)?;
    let digest = digest(plain);
    let location = info["location"].as_str().unwrap_or("");
    let creds = &info["creds"];
    let endpoint = info["endPoint"].as_str().unwrap_or("");
    Ok(Some(match info["locationType"].as_str().unwrap_or("") {
        "S3" => {
            let (bucket, prefix) = location.split_once('/').unwrap_or((location, ""));
            let key = if prefix.is_empty() || prefix.ends_with('/') {
                format!("{prefix}{file}")
            } else {
                format!("{prefix}/{file}")
            };
            let s3 = S3Credentials {
                key_id: creds["AWS_KEY_ID"].as_str().unwrap_or("").to_string(),
                secret: creds["AWS_SECRET_KEY"].as_str().unwrap_or("").to_string(),
                token: creds["AWS_TOKEN"].as_str().map(str::to_string),
            };
            let metadata = [
                ("x-amz-key", e.wrapped_key.clone()),
                ("x-amz-iv", e.iv.clone()),
                ("x-amz-matdesc", e.matdesc.clone()),
                ("sfc-digest", digest),
            ];
            let region = info["region"].as_str().unwrap_or("us-east-1");
            s3_put(
                bucket, &key, region, endpoint, &s3, &metadata, e.body, amz_date,
            )
        }
        "GCS" => gcs_put(
            info["presignedUrl"].as_str().filter(|u| !u.is_empty()),
            location,
            file,
            creds["GCS_ACCESS_TOKEN"].as_str(),
            e,
            &digest,
        ),
        "AZURE" => azure_put(
            info["storageAccount"].as_str().unwrap_or(""),
            endpoint,
            location,
            file,
            creds["AZURE_SAS_TOKEN"].as_str().unwrap_or(""),
            e,
            &digest,
        ),
        _ => return Ok(None),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aes::cipher::{BlockDecrypt, BlockDecryptMut, KeyIvInit};

    fn material(len: usize) -> Material {
        Material {
            master_key: (0..len as u8).collect(),
            query_id: "01b2-query".into(),
            smk_id: "4711".into(),
        }
    }

    /// Decrypts as the server side does: unwrap the file key with the master key, then AES-CBC.
    fn decrypt(m: &Material, e: &Encrypted) -> Vec<u8> {
        let wrapped = STANDARD.decode(&e.wrapped_key).unwrap();
        let mut key = wrapped.clone();
        match m.master_key.len() {
            16 => {
                let c = aes::Aes128::new_from_slice(&m.master_key).unwrap();
                for b in key.chunks_mut(16) {
                    c.decrypt_block(aes::Block::from_mut_slice(b));
                }
            }
            32 => {
                let c = aes::Aes256::new_from_slice(&m.master_key).unwrap();
                for b in key.chunks_mut(16) {
                    c.decrypt_block(aes::Block::from_mut_slice(b));
                }
            }
            _ => unreachable!(),
        }
        let pad = *key.last().unwrap() as usize;
        key.truncate(key.len() - pad);
        assert_eq!(
            key.len(),
            m.master_key.len(),
            "file key as long as the master key"
        );
        let iv: [u8; 16] = STANDARD.decode(&e.iv).unwrap().try_into().unwrap();
        match key.len() {
            16 => cbc::Decryptor::<aes::Aes128>::new_from_slices(&key, &iv)
                .unwrap()
                .decrypt_padded_vec_mut::<Pkcs7>(&e.body)
                .unwrap(),
            32 => cbc::Decryptor::<aes::Aes256>::new_from_slices(&key, &iv)
                .unwrap()
                .decrypt_padded_vec_mut::<Pkcs7>(&e.body)
                .unwrap(),
            _ => unreachable!(),
        }
    }

    #[test]
    fn encrypts_as_the_connectors_do() {
        let rng = ring::rand::SystemRandom::new();
        for len in [16, 32] {
            let m = material(len);
            for plain in [&b""[..], b"0123456789abcdef", b"\"1\",\"a\"\n\"2\",\"b\"\n"] {
                let e = encrypt(&m, plain, &rng).unwrap();
                // Padded: always at least one block more than a multiple of 16 below the plain text.
                assert_eq!(e.body.len(), (plain.len() / 16 + 1) * 16);
                assert_eq!(STANDARD.decode(&e.wrapped_key).unwrap().len(), len + 16);
                assert_eq!(decrypt(&m, &e), plain);
                let desc: Json = serde_json::from_str(&e.matdesc).unwrap();
                assert_eq!(
                    desc,
                    json!({"queryId": "01b2-query", "smkId": "4711", "keySize": (len * 8).to_string()})
                );
            }
            // A fresh key and IV per file.
            let a = encrypt(&m, b"same", &rng).unwrap();
            let b = encrypt(&m, b"same", &rng).unwrap();
            assert_ne!(a.wrapped_key, b.wrapped_key);
            assert_ne!(a.iv, b.iv);
        }
    }

    #[test]
    fn reads_encryption_material() {
        let m = Material::from_answer(&json!({
            "queryStageMasterKey": STANDARD.encode([7u8; 16]), "queryId": "q1", "smkId": 99
        }))
        .unwrap()
        .unwrap();
        assert_eq!((m.master_key.len(), m.smk_id.as_str()), (16, "99"));
        assert!(format!("{m:?}").contains("********"));
        let listed = json!([{"queryStageMasterKey": STANDARD.encode([7u8; 32]), "queryId": "q", "smkId": "1"}]);
        assert_eq!(
            Material::from_answer(&listed)
                .unwrap()
                .unwrap()
                .master_key
                .len(),
            32
        );
        assert!(Material::from_answer(&Json::Null).unwrap().is_none());
        let short = json!({"queryStageMasterKey": STANDARD.encode([7u8; 5])});
        assert!(Material::from_answer(&short)
            .unwrap_err()
            .contains("5 bytes"));
    }

    /// The signature botocore's `S3SigV4Auth` makes for the same request (computed once with it).
    #[test]
    fn signs_s3_puts_with_sigv4() {
        let creds = S3Credentials {
            key_id: "AKIDEXAMPLE".into(),
            secret: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            token: Some("tok".into()),
        };
        let metadata = [
            ("x-amz-iv", "aXY=".to_string()),
            ("x-amz-key", "a2V5".to_string()),
            (
                "x-amz-matdesc",
                r#"{"queryId":"q","smkId":"7","keySize":"128"}"#.to_string(),
            ),
        ];
        let r = s3_put(
            "sluice-stage",
            "q1/rows.csv.gz",
            "us-east-1",
            "http://127.0.0.1:18445",
            &creds,
            &metadata,
            b"hello stage".to_vec(),
            "20261206T103056Z",
        );
        assert_eq!(r.url, "http://127.0.0.1:18445/sluice-stage/q1/rows.csv.gz");
        let auth = &r
            .headers
            .iter()
            .find(|(k, _)| k == "authorization")
            .unwrap()
            .1;
        assert_eq!(
            auth,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261206/us-east-1/s3/aws4_request, \
             SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-meta-x-amz-iv;x-amz-meta-x-amz-key;\
             x-amz-meta-x-amz-matdesc;x-amz-security-token, \
             Signature=170c85267c42b6655022c64eb3c7f7c38e1b546838c3a4cc007ce4f6738c0072"
        );
        // Real accounts: virtual-hosted style on the region's endpoint.
        let r = s3_put(
            "b",
            "p/f.gz",
            "eu-west-1",
            "",
            &creds,
            &[],
            vec![],
            "20261206T103056Z",
        );
        assert_eq!(r.url, "https://b.s3.eu-west-1.amazonaws.com/p/f.gz");
    }

    fn sample() -> Encrypted {
        Encrypted {
            body: vec![1, 2, 3],
            wrapped_key: "d3JhcHBlZA==".into(),
            iv: "aXY=".into(),
            matdesc: r#"{"queryId":"q","smkId":"7","keySize":"256"}"#.into(),
            key_bits: 256,
        }
    }

    #[test]
    fn gcs_and_azure_request_shapes() {
        let r = gcs_put(
            None,
            "bucket/stages/x/",
            "rows.csv.gz",
            Some("ya29.tok"),
            sample(),
            "dg",
        );
        assert_eq!(
            r.url,
            "https://storage.googleapis.com/bucket/stages/x/rows.csv.gz"
        );
        let h: BTreeMap<_, _> = r.headers.into_iter().collect();
        assert_eq!(h["authorization"], "Bearer ya29.tok");
        assert_eq!(h["x-goog-meta-sfc-digest"], "dg");
        let data: Json = serde_json::from_str(&h["x-goog-meta-encryptiondata"]).unwrap();
        assert_eq!(data["WrappedContentKey"]["EncryptedKey"], "d3JhcHBlZA==");
        assert_eq!(data["WrappedContentKey"]["Algorithm"], "AES_CBC_256");
        assert_eq!(data["ContentEncryptionIV"], "aXY=");
        assert_eq!(data["EncryptionMode"], "FullBlob");
        assert_eq!(r.body, [1, 2, 3]);
        let r = gcs_put(
            Some("https://signed/url"),
            "b/p/",
            "f",
            None,
            sample(),
            "dg",
        );
        assert_eq!(r.url, "https://signed/url");
        assert!(r.headers.iter().all(|(k, _)| k != "authorization"));

        let r = azure_put(
            "acct",
            "",
            "container/stages/x",
            "rows.csv.gz",
            "?sv=2020&sig=abc",
            sample(),
            "dg",
        );
        assert_eq!(
            r.url,
            "https://acct.blob.core.windows.net/container/stages/x/rows.csv.gz?sv=2020&sig=abc"
        );
        let h: BTreeMap<_, _> = r.headers.into_iter().collect();
        assert_eq!(h["x-ms-blob-type"], "BlockBlob");
        assert_eq!(h["x-ms-meta-sfcdigest"], "dg");
        assert_eq!(
            h["x-ms-meta-matdesc"],
            r#"{"queryId":"q","smkId":"7","keySize":"256"}"#
        );
    }

    #[test]
    fn plans_by_location_type() {
        let material =
            json!({"queryStageMasterKey": STANDARD.encode([1u8; 16]), "queryId": "q", "smkId": 3});
        let s3 = json!({"stageInfo": {"locationType": "S3", "location": "bkt/stages/abc/", "region": "us-west-2",
            "creds": {"AWS_KEY_ID": "id", "AWS_SECRET_KEY": "s", "AWS_TOKEN": "t"}}, "encryptionMaterial": material});
        let r = plan(&s3, "rows.csv.gz", b"x", "20261206T000000Z")
            .unwrap()
            .unwrap();
        assert_eq!(
            r.url,
            "https://bkt.s3.us-west-2.amazonaws.com/stages/abc/rows.csv.gz"
        );
        let names: Vec<&str> = r.headers.iter().map(|(k, _)| k.as_str()).collect();
        for h in [
            "x-amz-meta-x-amz-key",
            "x-amz-meta-x-amz-iv",
            "x-amz-meta-x-amz-matdesc",
            "x-amz-security-token",
        ] {
            assert!(names.contains(&h), "{h} in {names:?}");
        }
        let local =
            json!({"stageInfo": {"locationType": "LOCAL_FS"}, "encryptionMaterial": material});
        assert!(plan(&local, "f", b"x", "20261206T000000Z")
            .unwrap()
            .is_none());
        let unencrypted = json!({"stageInfo": {"locationType": "S3"}, "encryptionMaterial": null});
        assert!(plan(&unencrypted, "f", b"x", "20261206T000000Z")
            .unwrap()
            .is_none());
    }
}
