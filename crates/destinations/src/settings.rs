//! Each destination kind's settings, stated once, and read from JSON while collecting every problem.
//!
//! A kind's `config` module declares its settings as a list of [`Field`]s — name, label, type, default,
//! whether required, secret or advanced, help text, choices, range, and how messages name it — and
//! everything else follows from that one statement: the catalogue the API serves and the UI renders
//! its forms from ([`crate::connectors`]), and the parsing, where a [`SettingsReader`] takes each field's
//! default, requirement, range and wording from its declaration and refuses whatever is not declared.
//! Adding a setting is one entry in the list, and reading it where the settings are built.
//!
//! Settings come from the API, the YAML workspace file and the UI's forms. A plain serde derive stops at the
//! first bad field, but the API must name every offending field in one 422 answer, so each destination's
//! `config` module reads its object field by field through a [`SettingsReader`], which records a message per
//! field name and, at the end, refuses unknown fields (the same contract as `deny_unknown_fields`).
//!
//! Forms send numbers as strings and empty inputs as `""` or `null`; both are accepted where the meaning is
//! unambiguous (an empty optional field means "use the default").

use serde_json::{json, Map, Value as Json};
use sluice_core::FieldErrors;

use crate::connectors::{FieldInfo, FieldOption, FieldType};

/// One setting of a destination kind, as its `config` module declares it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Field {
    pub name: &'static str,
    /// What the form calls it (`Port`).
    pub label: &'static str,
    /// What messages call it (`the port`).
    pub noun: &'static str,
    pub ty: FieldType,
    /// The value used when the field is left out.
    pub default: Preset,
    /// The default when TLS is on, where it differs (ClickHouse serves native TLS on its own port).
    pub tls_default: Option<i64>,
    pub required: bool,
    /// Accepted but never returned by the API.
    pub secret: bool,
    /// Rarely changed; the UI may fold it away.
    pub advanced: bool,
    pub help: &'static str,
    pub options: &'static [FieldOption],
    /// The accepted values of an integer, inclusive.
    pub range: (i64, i64),
}

/// A field's default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Preset {
    None,
    Text(&'static str),
    Integer(i64),
    /// A TLS field's mode (`{"mode": …}`).
    TlsMode(&'static str),
}

impl Field {
    const fn new(
        name: &'static str,
        label: &'static str,
        noun: &'static str,
        ty: FieldType,
        help: &'static str,
    ) -> Field {
        Field {
            name,
            label,
            noun,
            ty,
            default: Preset::None,
            tls_default: None,
            required: false,
            secret: matches!(ty, FieldType::Password),
            advanced: false,
            help,
            options: &[],
            range: (i64::MIN, i64::MAX),
        }
    }

    /// Text on one line.
    pub const fn text(
        name: &'static str,
        label: &'static str,
        noun: &'static str,
        help: &'static str,
    ) -> Field {
        Field::new(name, label, noun, FieldType::String, help)
    }

    /// Multi-line text, such as a PEM key.
    pub const fn long_text(
        name: &'static str,
        label: &'static str,
        noun: &'static str,
        help: &'static str,
    ) -> Field {
        Field::new(name, label, noun, FieldType::Text, help)
    }

    /// A secret on one line: write-only.
    pub const fn password(
        name: &'static str,
        label: &'static str,
        noun: &'static str,
        help: &'static str,
    ) -> Field {
        Field::new(name, label, noun, FieldType::Password, help)
    }

    /// A whole number in `min..=max`, `default` when left out.
    pub const fn integer(
        name: &'static str,
        label: &'static str,
        noun: &'static str,
        (min, max): (i64, i64),
        default: i64,
        help: &'static str,
    ) -> Field {
        let mut f = Field::new(name, label, noun, FieldType::Integer, help);
        f.range = (min, max);
        f.default = Preset::Integer(default);
        f
    }

    pub const fn required(mut self) -> Field {
        self.required = true;
        self
    }

    pub const fn secret(mut self) -> Field {
        self.secret = true;
        self
    }

    pub const fn advanced(mut self) -> Field {
        self.advanced = true;
        self
    }

    pub const fn default_text(mut self, text: &'static str) -> Field {
        self.default = Preset::Text(text);
        self
    }

    pub const fn tls_default(mut self, value: i64) -> Field {
        self.tls_default = Some(value);
        self
    }

    /// The field as the catalogue describes it.
    pub fn info(&self) -> FieldInfo {
        let default = match self.default {
            Preset::None => Json::Null,
            Preset::Text(t) => json!(t),
            Preset::Integer(i) => json!(i),
            Preset::TlsMode(m) => json!({ "mode": m }),
        };
        FieldInfo {
            name: self.name,
            label: self.label,
            ty: self.ty,
            default,
            tls_default: self.tls_default.map_or(Json::Null, |v| json!(v)),
            required: self.required,
            secret: self.secret,
            advanced: self.advanced,
            help: self.help,
            options: self.options.to_vec(),
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// Fields several kinds share

pub(crate) const fn host() -> Field {
    Field::text(
        "host",
        "Host",
        "the host",
        "Hostname or IP address of the database.",
    )
    .required()
}

pub(crate) const fn port(default: i64, help: &'static str) -> Field {
    Field::integer("port", "Port", "the port", (1, 65535), default, help)
}

pub(crate) const fn username() -> Field {
    Field::text(
        "username",
        "Username",
        "the username",
        "Username for authentication.",
    )
    .required()
}

pub(crate) const fn password() -> Field {
    Field::password(
        "password",
        "Password",
        "the password",
        "Password associated with the username.",
    )
}

pub(crate) const fn database() -> Field {
    Field::text(
        "database",
        "Database name",
        "the database name",
        "Name of the database.",
    )
    .required()
}

pub(crate) const fn connect_timeout() -> Field {
    Field::integer(
        "connect_timeout_secs",
        "Connect timeout (seconds)",
        "the connect timeout",
        (1, 300),
        10,
        "How long to wait for the server to accept a connection.",
    )
    .advanced()
}

/// The TLS object, `{"mode": one of `options`, "ca_cert": "<PEM>"}`; its own fields are [`TLS_FIELDS`].
pub(crate) const fn tls(default_mode: &'static str, options: &'static [FieldOption]) -> Field {
    let mut f = Field::new(
        "tls",
        "TLS",
        "the TLS settings",
        FieldType::Tls,
        "Encryption of the connection: `mode`, and `ca_cert` (a PEM certificate of the CA that signed the server's \
         certificate) for the verify mode.",
    );
    f.default = Preset::TlsMode(default_mode);
    f.options = options;
    f
}

const DISABLE: FieldOption = FieldOption {
    value: "disable",
    label: "Disabled (no TLS)",
    help: "Plain TCP: the data and the password cross the network unencrypted, and the server is not \
           authenticated. Choose it only on a network you trust (loopback, a private link) for a server \
           without TLS.",
};
const PREFER: FieldOption = FieldOption {
    value: "prefer",
    label: "Preferred",
    help: "Encrypt when the server offers TLS, otherwise connect in plain TCP; the certificate is not \
           verified. On plain TCP Sluice still never sends a password in cleartext (nor, to PostgreSQL, as \
           MD5): a server that asks for one is refused.",
};
const REQUIRE: FieldOption = FieldOption {
    value: "require",
    label: "Required",
    help: "Always encrypt; the server's certificate is not checked, so this stops eavesdroppers but not \
           someone impersonating the server. Fails when the server has no TLS.",
};
const VERIFY: FieldOption = FieldOption {
    value: "verify",
    label: "Verify certificate",
    help: "Always encrypt, and check the server's certificate against the CA certificate given (or the \
           public web CAs) and its host name (like verify-full). Stops eavesdroppers and impostors.",
};

/// Every TLS mode.
pub(crate) const TLS_MODES: &[FieldOption] = &[DISABLE, PREFER, REQUIRE, VERIFY];
/// The TLS modes of a server that serves TLS on a port of its own, where there is nothing to prefer.
pub(crate) const TLS_MODES_OWN_PORT: &[FieldOption] = &[DISABLE, REQUIRE, VERIFY];

/// The fields of the TLS object.
pub(crate) const TLS_FIELDS: &[Field] = &[
    Field::text("mode", "Mode", "the TLS mode", ""),
    Field::long_text("ca_cert", "CA certificate", "the CA certificate", "").secret(),
];

// ---------------------------------------------------------------------------------------------------
// Where secrets go

/// The effective value of a declared field in a settings object: what the kind would use, so that
/// `"5432"`, `5432` and a left-out port compare equal, and so do `"require"` and `{"mode": "require"}`.
/// Anything that does not parse stands for itself, so a bad value never compares equal to a good one.
fn effective(field: &Field, settings: &Json) -> Json {
    let raw = settings
        .as_object()
        .and_then(|o| o.get(field.name))
        .filter(|v| !v.is_null());
    let blank = |v: &Json| v.as_str().is_some_and(|s| s.trim().is_empty());
    let default = || match field.default {
        Preset::None => Json::Null,
        Preset::Text(t) => json!(t),
        Preset::Integer(i) => json!(i),
        Preset::TlsMode(m) => json!([m, Json::Null]),
    };
    let Some(raw) = raw.filter(|v| !blank(v)) else {
        return default();
    };
    match field.ty {
        FieldType::Integer => match raw {
            Json::String(s) => s.trim().parse::<i64>().map_or(raw.clone(), |n| json!(n)),
            other => other.clone(),
        },
        FieldType::Tls => {
            let declared = match field.default {
                Preset::TlsMode(m) => m,
                _ => "prefer",
            };
            let (mode, ca) = match raw {
                Json::String(m) => (Some(m.as_str()), None),
                Json::Object(o) => (
                    o.get("mode").and_then(Json::as_str),
                    o.get("ca_cert")
                        .and_then(Json::as_str)
                        .map(str::trim)
                        .filter(|c| !c.is_empty()),
                ),
                other => return other.clone(),
            };
            // An object without a mode is not always the declared mode (ClickHouse reads it as
            // `verify`), so it stands for itself: a change to or from it needs the secret again.
            let given_object = matches!(raw, Json::Object(_));
            let mode = match mode.filter(|m| !m.trim().is_empty()) {
                Some(m) => m,
                None if given_object => return json!(["given without a mode", ca]),
                None => declared,
            };
            let mode = match TlsMode::parse(mode) {
                Some(m) => json!(format!("{m:?}")),
                None => json!(mode),
            };
            json!([mode, ca])
        }
        _ => match raw {
            Json::String(s) => json!(s.trim()),
            other => other.clone(),
        },
    }
}

/// The settings among `binding` — those that decide where a kind's secrets are sent — whose effective
/// value differs between `stored` and `edited`, in the order of `fields`.
pub(crate) fn changed_bindings(
    fields: &'static [Field],
    binding: &[&str],
    stored: &Json,
    edited: &Json,
) -> Vec<&'static Field> {
    fields
        .iter()
        .filter(|f| binding.contains(&f.name))
        .filter(|f| effective(f, stored) != effective(f, edited))
        .collect()
}

/// Refuses an edit of a saved destination that would send one of its stored secrets somewhere else.
///
/// `reused` names the secrets the edit leaves out (or sends back masked), which would be taken from
/// `stored`. When any setting that binds them (see each kind's `SECRET_BINDING`) differs between `stored`
/// and `edited`, each reused secret gets an error under its own name: the caller must type it again. A
/// secret typed again, or a kind without secrets, passes.
pub fn check_secret_reuse(
    kind: &str,
    stored: &Json,
    edited: &Json,
    reused: &[&str],
) -> Result<(), FieldErrors> {
    let Some((fields, binding)) = crate::secret_binding(kind) else {
        return Ok(());
    };
    let mut errors = FieldErrors::new();
    let secrets: Vec<&Field> = fields
        .iter()
        .filter(|f| f.secret && reused.contains(&f.name))
        .filter(|f| {
            stored
                .get(f.name)
                .is_some_and(|v| !v.is_null() && v.as_str() != Some(""))
        })
        .collect();
    if secrets.is_empty() {
        return Ok(());
    }
    let changed = changed_bindings(fields, binding, stored, edited);
    if changed.is_empty() {
        return Ok(());
    }
    let what = join_nouns(changed.iter().map(|f| f.noun));
    let verb = if changed.len() == 1 {
        "changes"
    } else {
        "change"
    };
    for secret in secrets {
        errors.add(
            secret.name,
            format!(
                "give {} again: {what} {verb}, and a saved secret is only ever sent where it was saved",
                secret.noun
            ),
        );
    }
    errors.into_result(())
}

/// `a`, `a and b`, `a, b and c`.
fn join_nouns<'a>(nouns: impl Iterator<Item = &'a str>) -> String {
    let nouns: Vec<&str> = nouns.collect();
    match nouns.split_last() {
        None => String::new(),
        Some((last, [])) => (*last).to_string(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
    }
}

// ---------------------------------------------------------------------------------------------------
// Reading

/// Reads a settings object by its declared fields, recording every problem under the field's name.
pub(crate) struct SettingsReader<'a> {
    object: Option<&'a Map<String, Json>>,
    fields: &'static [Field],
    asked: Vec<&'static str>,
    pub errors: FieldErrors,
}

impl<'a> SettingsReader<'a> {
    pub fn new(json: &'a Json, fields: &'static [Field]) -> Self {
        let mut errors = FieldErrors::new();
        let object = json.as_object();
        if object.is_none() {
            errors.add("", "the settings must be a JSON object");
        }
        Self {
            object,
            fields,
            asked: Vec::new(),
            errors,
        }
    }

    /// The declaration of `name`. Asking for an undeclared field is a bug of the caller, which every test
    /// of its settings finds.
    fn field(&mut self, name: &str) -> &'static Field {
        let field = self
            .fields
            .iter()
            .find(|f| f.name == name)
            .unwrap_or_else(|| panic!("the setting `{name}` is read but not declared"));
        self.asked.push(field.name);
        field
    }

    /// The raw value of `name`, `None` when absent or `null`.
    pub fn raw(&mut self, name: &str) -> Option<&'a Json> {
        let name = self.field(name).name;
        self.object
            .and_then(|o| o.get(name))
            .filter(|v| !v.is_null())
    }

    /// A text field, trimmed (host names and identifiers never carry meaningful outer blanks). An empty
    /// value counts as absent: the declared default then, and a required field is reported.
    pub fn string(&mut self, name: &str) -> Option<String> {
        let field = self.field(name);
        let value = match self.raw(name) {
            None => None,
            Some(Json::String(s)) => Some(s.trim().to_string()).filter(|s| !s.is_empty()),
            Some(_) => {
                self.errors
                    .add(field.name, format!("{} must be text", field.noun));
                return None;
            }
        };
        if value.is_none() && field.required {
            self.errors
                .add(field.name, format!("{} is required", field.noun));
        }
        value.or(match field.default {
            Preset::Text(t) => Some(t.to_string()),
            _ => None,
        })
    }

    /// A secret text field, kept exactly as given (a password may start or end with a blank).
    pub fn secret(&mut self, name: &str) -> Option<String> {
        let field = self.field(name);
        match self.raw(name) {
            None => None,
            Some(Json::String(s)) => Some(s.clone()),
            Some(_) => {
                self.errors
                    .add(field.name, format!("{} must be text", field.noun));
                None
            }
        }
    }

    /// An integer in the declared range, given as a JSON number or a numeric string; the declared default
    /// when absent.
    pub fn integer(&mut self, name: &str) -> Option<i64> {
        self.integer_for(name, false)
    }

    /// [`Self::integer`] whose default is the declared one for a TLS connection when `tls` is on.
    pub fn integer_for(&mut self, name: &str, tls: bool) -> Option<i64> {
        let field = self.field(name);
        let default = match (tls, field.tls_default, field.default) {
            (true, Some(d), _) | (_, _, Preset::Integer(d)) => Some(d),
            _ => None,
        };
        let (min, max) = field.range;
        let label = field.noun;
        let parsed = match self.raw(name) {
            None => return default,
            Some(Json::Number(n)) => n.as_i64(),
            Some(Json::String(s)) if s.trim().is_empty() => return default,
            Some(Json::String(s)) => s.trim().parse::<i64>().ok(),
            Some(_) => None,
        };
        match parsed {
            Some(v) if (min..=max).contains(&v) => Some(v),
            Some(_) => {
                self.errors.add(
                    field.name,
                    format!("{label} must be between {min} and {max}"),
                );
                None
            }
            None => {
                self.errors.add(
                    field.name,
                    format!("{label} must be a whole number between {min} and {max}"),
                );
                None
            }
        }
    }

    /// A TLS field: the object given, or the declared mode.
    pub fn tls(&mut self, name: &str) -> TlsChoice {
        let field = self.field(name);
        let declared = match field.default {
            Preset::TlsMode(m) => TlsMode::parse(m).expect("a declared TLS mode is valid"),
            _ => TlsMode::default(),
        };
        match self.raw(name) {
            None => TlsChoice {
                settings: TlsSettings {
                    mode: declared,
                    ca_cert: None,
                },
                given: false,
                mode_given: false,
            },
            Some(json) => {
                let (settings, mode_given) = read_tls(field.name, json, declared, &mut self.errors);
                TlsChoice {
                    settings,
                    given: true,
                    mode_given,
                }
            }
        }
    }

    /// Reports every field that is not declared, and returns all the errors.
    pub fn finish(mut self) -> FieldErrors {
        debug_assert!(
            self.fields.iter().all(|f| self.asked.contains(&f.name)),
            "declared settings left unread: {:?}",
            self.fields
                .iter()
                .filter(|f| !self.asked.contains(&f.name))
                .map(|f| f.name)
                .collect::<Vec<_>>()
        );
        if let Some(object) = self.object {
            for key in object.keys() {
                if !self.fields.iter().any(|f| f.name == key) {
                    let expected = self
                        .fields
                        .iter()
                        .map(|f| f.name)
                        .collect::<Vec<_>>()
                        .join(", ");
                    self.errors.add(
                        key.clone(),
                        format!("unknown setting `{key}`: expected one of {expected}"),
                    );
                }
            }
        }
        self.errors
    }
}

// ---------------------------------------------------------------------------------------------------
// TLS

/// How the connection is encrypted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TlsMode {
    /// Plain TCP, only when chosen explicitly.
    Disable,
    /// TLS when the server offers it (without verifying the certificate), plain TCP otherwise — what
    /// `libpq` does by default — but never a password in cleartext or MD5 on plain TCP. Destinations saved
    /// before `require` became the default keep it (see the metadata migrations).
    Prefer,
    /// Always TLS, certificate not verified.
    #[default]
    Require,
    /// Always TLS; the certificate chain is checked against `ca_cert` (or the public web CAs) and must name
    /// the host.
    Verify,
}

impl TlsMode {
    fn parse(text: &str) -> Option<TlsMode> {
        Some(match text.trim().to_ascii_lowercase().as_str() {
            "disable" | "disabled" | "off" => TlsMode::Disable,
            "prefer" | "allow" => TlsMode::Prefer,
            "require" | "required" => TlsMode::Require,
            "verify" | "verify-full" | "verify_full" | "verify-ca" => TlsMode::Verify,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsSettings {
    pub mode: TlsMode,
    /// PEM certificate(s) of the CA that signed the server's certificate (verify mode).
    pub ca_cert: Option<String>,
}

/// A TLS setting as given.
#[derive(Debug, Clone)]
pub(crate) struct TlsChoice {
    pub settings: TlsSettings,
    /// Whether the setting was given at all.
    pub given: bool,
    /// Whether it named a mode (the declared mode stands in otherwise).
    pub mode_given: bool,
}

/// The TLS object (or a bare mode, a shorthand for `{"mode": …}`), `mode` when it names none; problems
/// go to `errors` under `<field>.<name>`.
fn read_tls(
    field: &str,
    json: &Json,
    mode: TlsMode,
    errors: &mut FieldErrors,
) -> (TlsSettings, bool) {
    let mut tls = TlsSettings {
        mode,
        ca_cert: None,
    };
    if let Json::String(given) = json {
        match TlsMode::parse(given) {
            Some(m) => tls.mode = m,
            None => errors.add(format!("{field}.mode"), tls_mode_message(given)),
        }
        return (tls, true);
    }
    let mut r = SettingsReader::new(json, TLS_FIELDS);
    let given = r.string("mode");
    tls.ca_cert = r.secret("ca_cert").filter(|c| !c.trim().is_empty());
    errors.merge_prefixed(field, r.finish());
    if let Some(m) = &given {
        match TlsMode::parse(m) {
            Some(m) => tls.mode = m,
            None => errors.add(format!("{field}.mode"), tls_mode_message(m)),
        }
    }
    if let Some(pem) = &tls.ca_cert {
        if let Err(e) = parse_pem_certificates(pem) {
            errors.add(format!("{field}.ca_cert"), e);
        }
    }
    (tls, given.is_some())
}

fn tls_mode_message(given: &str) -> String {
    format!("unknown TLS mode `{given}`: expected disable, prefer, require or verify")
}

/// The DER certificates of a PEM text; an error when it holds none or a block does not parse.
pub fn parse_pem_certificates(
    pem: &str,
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, String> {
    let mut reader = std::io::BufReader::new(pem.as_bytes());
    let certs = rustls_pemfile::certs(&mut reader)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("the CA certificate is not valid PEM: {e}"))?;
    if certs.is_empty() {
        return Err("the CA certificate holds no `-----BEGIN CERTIFICATE-----` block".into());
    }
    Ok(certs)
}

// ---------------------------------------------------------------------------------------------------
// Hosts and URLs

pub(crate) fn validate_host(host: &str) -> Result<(), String> {
    if host.len() > 253 {
        return Err("the host is longer than 253 characters".into());
    }
    if host
        .chars()
        .any(|c| c.is_whitespace() || c == '/' || c == '@' || c.is_control())
    {
        return Err("the host must be a host name or an IP address".into());
    }
    Ok(())
}

pub(crate) fn percent_decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text
                .get(i + 1..i + 3)
                .ok_or("truncated %-escape in the URL")?;
            out.push(
                u8::from_str_radix(hex, 16)
                    .map_err(|_| format!("bad %-escape `%{hex}` in the URL"))?,
            );
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "the URL does not decode to UTF-8".to_string())
}

/// The parts of a database URL after its scheme: `user[:password]@host[:port]/database[?query]`, with
/// user and password percent-decoded and `[::1]` accepted for IPv6 hosts. Each destination turns them into
/// its own settings.
pub(crate) struct UrlParts<'a> {
    pub user: String,
    pub password: Option<String>,
    pub host: String,
    pub port: Option<&'a str>,
    /// Still percent-encoded.
    pub database: &'a str,
    pub query: Option<&'a str>,
}

impl<'a> UrlParts<'a> {
    pub fn split(rest: &'a str) -> Result<Self, String> {
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, Some(q)),
            None => (rest, None),
        };
        let (authority, database) = rest.split_once('/').unwrap_or((rest, ""));
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let (user, password) = match userinfo {
            Some(u) => match u.split_once(':') {
                Some((user, pw)) => (percent_decode(user)?, Some(percent_decode(pw)?)),
                None => (percent_decode(u)?, None),
            },
            None => (String::new(), None),
        };
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or("unterminated [ in the host")?;
            (h.to_string(), after.strip_prefix(':'))
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (hostport.to_string(), None),
            }
        };
        Ok(UrlParts {
            user,
            password,
            host,
            port,
            database,
            query,
        })
    }

    /// The start of a settings object: `host` (`localhost` when the URL gives none) and `port`, when the
    /// URL gives one.
    pub fn host_and_port(&self) -> Result<serde_json::Map<String, serde_json::Value>, String> {
        let mut json = serde_json::Map::new();
        let host = if self.host.is_empty() {
            "localhost"
        } else {
            &self.host
        };
        json.insert("host".into(), host.into());
        if let Some(p) = self.port {
            let p: u16 = p.parse().map_err(|_| format!("bad port `{p}`"))?;
            json.insert("port".into(), p.into());
        }
        Ok(json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIELDS: &[Field] = &[
        host(),
        port(5432, ""),
        Field::text("user", "User", "the user name", "").required(),
    ];
    const NUMBERS: &[Field] = &[
        port(5432, ""),
        Field::integer("timeout", "Timeout", "the timeout", (1, 600), 10, ""),
    ];

    #[test]
    fn collects_every_problem() {
        let settings = json!({"host": 3, "port": "70000", "extra": true, "user": ""});
        let mut r = SettingsReader::new(&settings, FIELDS);
        assert_eq!(r.string("host"), None);
        assert_eq!(r.integer("port"), None);
        assert_eq!(r.string("user"), None);
        let errors = r.finish();
        assert_eq!(errors.len(), 4, "{errors}");
        assert!(errors.get("extra").unwrap()[0].contains("unknown setting `extra`"));
        assert!(errors.get("port").unwrap()[0].contains("between 1 and 65535"));
        assert!(errors.get("user").unwrap()[0].contains("required"));
        assert_eq!(
            errors.get("extra").unwrap()[0],
            "unknown setting `extra`: expected one of host, port, user"
        );
        assert_eq!(errors.get("host").unwrap()[0], "the host must be text");
    }

    #[test]
    fn numbers_as_strings_and_defaults() {
        let settings = json!({"port": " 6432 ", "timeout": ""});
        let mut r = SettingsReader::new(&settings, NUMBERS);
        assert_eq!(r.integer("port"), Some(6432));
        assert_eq!(r.integer("timeout"), Some(10));
        assert!(r.finish().is_empty());
    }

    #[test]
    fn declared_defaults() {
        const OWN_PORT: &[Field] = &[
            port(9000, "").tls_default(9440),
            Field::text("schema", "Schema", "the schema", "").default_text("public"),
        ];
        let settings = json!({"schema": " "});
        let mut r = SettingsReader::new(&settings, OWN_PORT);
        assert_eq!(r.integer_for("port", true), Some(9440));
        assert_eq!(r.integer_for("port", false), Some(9000));
        assert_eq!(r.string("schema").as_deref(), Some("public"));
        assert!(r.finish().is_empty());
    }

    #[test]
    #[should_panic(expected = "not declared")]
    fn undeclared_fields_cannot_be_read() {
        let settings = json!({});
        SettingsReader::new(&settings, FIELDS).string("colour");
    }

    #[test]
    fn not_an_object() {
        let settings = json!([1]);
        let r = SettingsReader::new(&settings, &[]);
        assert!(r.finish().get("").is_some());
    }

    #[test]
    fn declarations_describe_the_catalogue() {
        let info = serde_json::to_value(port(5432, "Port.").info()).unwrap();
        assert_eq!(
            info,
            json!({"name": "port", "label": "Port", "type": "integer", "default": 5432, "required": false,
                   "secret": false, "advanced": false, "help": "Port."})
        );
        let info = serde_json::to_value(tls("prefer", TLS_MODES_OWN_PORT).info()).unwrap();
        assert_eq!(info["default"], json!({"mode": "prefer"}));
        assert_eq!(info["options"][1]["value"], "require");
        assert!(password().secret && !host().secret);
    }

    #[test]
    fn a_stored_secret_goes_only_where_it_was_saved() {
        let stored = json!({"host": "db", "port": 5432, "username": "u", "password": "v1:sealed",
                            "database": "crm", "tls": {"mode": "require"}});
        let reuse =
            |edited: Json| check_secret_reuse("postgresql", &stored, &edited, &["password"]);
        // The same place, however it is written: numbers as text, a bare mode, blanks, another database.
        reuse(
            json!({"host": " db ", "port": "5432", "username": "u", "database": "other",
                     "tls": "required"}),
        )
        .unwrap();
        // Each setting that decides where the password goes needs it again.
        for (field, value, noun) in [
            ("host", json!("evil.example"), "the host"),
            ("port", json!(6543), "the port"),
            ("username", json!("postgres"), "the username"),
            ("tls", json!({"mode": "disable"}), "the TLS settings"),
        ] {
            let mut edited = stored.clone();
            edited[field] = value;
            let e = reuse(edited).unwrap_err();
            let message = &e.get("password").unwrap()[0];
            assert!(
                message.starts_with(&format!("give the password again: {noun} changes")),
                "{message}"
            );
            assert_eq!(e.len(), 1, "{e}");
        }
        let e = reuse(json!({"host": "h2", "port": 1, "username": "u", "database": "crm"}))
            .unwrap_err();
        assert!(
            e.get("password").unwrap()[0]
                .contains("the host, the port and the TLS settings change"),
            "{e}"
        );
        // A secret typed again, or none stored, passes.
        check_secret_reuse("postgresql", &stored, &json!({"host": "h2"}), &[]).unwrap();
        let no_password = json!({"host": "db", "username": "u", "database": "crm"});
        check_secret_reuse(
            "postgresql",
            &no_password,
            &json!({"host": "h2"}),
            &["password"],
        )
        .unwrap();
        // Snowflake: the account and base URL decide where the key goes; the warehouse does not.
        let sf =
            json!({"account": "org-acc", "username": "u", "private_key": "v1:k", "warehouse": "w"});
        check_secret_reuse(
            "snowflake",
            &sf,
            &json!({"account": "org-acc", "username": "u", "warehouse": "x"}),
            &["private_key"],
        )
        .unwrap();
        let e = check_secret_reuse(
            "snowflake",
            &sf,
            &json!({"account": "org-acc", "username": "u", "base_url": "http://x:1"}),
            &["private_key", "password"],
        )
        .unwrap_err();
        assert!(
            e.get("private_key").unwrap()[0].contains("the base URL changes"),
            "{e}"
        );
        assert!(e.get("password").is_none(), "no password was stored: {e}");
        // ClickHouse reads a TLS object without a mode as `verify`: dropping it is a change.
        let ch = json!({"host": "h", "password": "v1:p", "tls": {}});
        assert!(
            check_secret_reuse("clickhouse", &ch, &json!({"host": "h"}), &["password"]).is_err()
        );
        check_secret_reuse(
            "clickhouse",
            &ch,
            &json!({"host": "h", "tls": {}}),
            &["password"],
        )
        .unwrap();
        check_secret_reuse(
            "sqlite",
            &json!({"path": "a"}),
            &json!({"path": "b"}),
            &["password"],
        )
        .unwrap();
    }
}
