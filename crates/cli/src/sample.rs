//! Realistic sample profiles for the demo and the benchmarks: accented names, emails, countries, dates,
//! amounts, booleans, a nested address and tags. Deterministic for a given seed.

use chrono::{Duration, NaiveDate, TimeZone, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

const FIRST: &[&str] = &[
    "José",
    "Zoë",
    "François",
    "Åsa",
    "Björn",
    "Chloé",
    "Dario",
    "Élodie",
    "Giulia",
    "Hélène",
    "Iñaki",
    "Jürgen",
    "Kateřina",
    "Łukasz",
    "Marta",
    "Nuno",
    "Oğuz",
    "Paulína",
    "Raphaël",
    "Søren",
    "Tomás",
    "Ursula",
    "Vítor",
    "Wojciech",
    "Yannick",
    "Zuzana",
    "Amélie",
    "Noé",
    "Matteo",
    "Sofia",
    "Lucía",
    "Olivia",
    "Liam",
    "Aarav",
    "Mei",
    "Yuki",
    "Fatima",
    "Omar",
    "Chiara",
    "Lorenzo",
    "Emma",
    "Léa",
    "Mathéo",
    "Ana",
    "João",
    "Nikolaj",
];
const LAST: &[&str] = &[
    "Müller",
    "García",
    "Núñez",
    "Østergaard",
    "Dvořák",
    "Kowalski",
    "Nguyễn",
    "O'Brien",
    "Rossi",
    "Bianchi",
    "Dubois",
    "Lefèvre",
    "Schröder",
    "Fernández",
    "Gonçalves",
    "Öztürk",
    "Håkansson",
    "Novák",
    "Wiśniewski",
    "Smith",
    "Johnson",
    "Tanaka",
    "Kim",
    "Haddad",
    "Esposito",
    "Romano",
    "Martín",
    "Lindqvist",
    "Jensen",
    "Silva",
];
const PLACES: &[(&str, &[&str])] = &[
    ("IT", &["Roma", "Milano", "Torino", "Napoli", "Bologna"]),
    ("FR", &["Paris", "Lyon", "Marseille", "Besançon", "Nîmes"]),
    (
        "DE",
        &["Berlin", "München", "Köln", "Düsseldorf", "Hamburg"],
    ),
    (
        "ES",
        &["Madrid", "Barcelona", "Sevilla", "Málaga", "A Coruña"],
    ),
    (
        "US",
        &["New York", "San Francisco", "Austin", "Chicago", "Seattle"],
    ),
    (
        "GB",
        &["London", "Manchester", "Edinburgh", "Bristol", "Leeds"],
    ),
    (
        "BR",
        &[
            "São Paulo",
            "Rio de Janeiro",
            "Brasília",
            "Curitiba",
            "Belém",
        ],
    ),
    (
        "SE",
        &["Stockholm", "Göteborg", "Malmö", "Uppsala", "Västerås"],
    ),
    ("PL", &["Warszawa", "Kraków", "Łódź", "Wrocław", "Gdańsk"]),
    ("JP", &["東京", "大阪", "京都", "Sapporo", "Fukuoka"]),
];
const STREETS: &[&str] = &[
    "Via Roma",
    "Rue de la Paix",
    "Hauptstraße",
    "Calle Mayor",
    "Main Street",
    "Rua Augusta",
    "Storgatan",
];
const TAGS: &[&str] = &[
    "vip",
    "newsletter",
    "churn-risk",
    "mobile",
    "b2b",
    "early-adopter",
    "wholesale",
];
const SEGMENTS: &[&str] = &["consumer", "smb", "enterprise", "partner"];
const LANGUAGES: &[&str] = &["it", "fr", "de", "es", "en", "pt", "sv", "pl", "ja"];
const DOMAINS: &[&str] = &[
    "example.com",
    "mail.example.org",
    "corp.example.net",
    "example.it",
    "example.fr",
];

/// The Customer Model of the samples, in the API's wire form.
pub fn schema() -> Value {
    json!({"properties": [
        {"name": "first_name", "type": "string"},
        {"name": "last_name", "type": "string"},
        {"name": "email", "type": "string"},
        {"name": "country", "type": "string"},
        {"name": "birth_date", "type": "date"},
        {"name": "signed_up_at", "type": "datetime"},
        {"name": "ltv", "type": "decimal(12,2)", "description": "lifetime value"},
        {"name": "orders", "type": "int"},
        {"name": "newsletter", "type": "boolean"},
        {"name": "score", "type": "float"},
        {"name": "tags", "type": "array(string)"},
        {"name": "phone", "type": "string"},
        {"name": "language", "type": "string"},
        {"name": "segment", "type": "string"},
        {"name": "loyalty_points", "type": "int"},
        {"name": "last_order_at", "type": "datetime"},
        {"name": "address", "type": "object", "properties": [
            {"name": "street", "type": "string"},
            {"name": "city", "type": "string"},
            {"name": "postal_code", "type": "string"},
            {"name": "country", "type": "string"}
        ]}
    ]})
}

/// ASCII form of a name for email addresses, by transliteration: `Élodie` gives `elodie`, `Søren`
/// `soren`. The name is lowercased first, so that capitals with accents fold as their small letters do.
fn fold(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.to_lowercase().chars() {
        let base = match c {
            'á' | 'à' | 'â' | 'ä' | 'ã' | 'å' | 'ā' | 'ą' => "a",
            'æ' => "ae",
            'ç' | 'č' | 'ć' => "c",
            'ď' | 'đ' => "d",
            'é' | 'è' | 'ê' | 'ë' | 'ě' | 'ē' | 'ę' | 'ễ' => "e",
            'ğ' => "g",
            'í' | 'ì' | 'î' | 'ï' | 'ı' | 'ī' => "i",
            'ł' => "l",
            'ñ' | 'ń' | 'ň' => "n",
            'ó' | 'ò' | 'ô' | 'ö' | 'õ' | 'ø' | 'ő' => "o",
            'œ' => "oe",
            'ř' => "r",
            'ş' | 'ś' | 'š' => "s",
            'ß' => "ss",
            'ť' | 'ţ' => "t",
            'ú' | 'ù' | 'û' | 'ü' | 'ů' | 'ű' | 'ū' => "u",
            'ý' | 'ÿ' => "y",
            'ž' | 'ź' | 'ż' => "z",
            c if c.is_ascii_alphanumeric() => {
                out.push(c);
                continue;
            }
            // Spaces, apostrophes and hyphens have no place in the local part of a sample address.
            _ => continue,
        };
        out.push_str(base);
    }
    out
}

/// Profile number `i` of the set made with `seed` (ids `c0000001`, … sort in creation order).
pub fn profile(seed: u64, i: usize) -> Value {
    let mut rng = StdRng::seed_from_u64(seed.wrapping_mul(1_000_003).wrapping_add(i as u64));
    let first = FIRST[rng.gen_range(0..FIRST.len())];
    let last = LAST[rng.gen_range(0..LAST.len())];
    let (country, cities) = PLACES[rng.gen_range(0..PLACES.len())];
    let city = cities[rng.gen_range(0..cities.len())];
    let domain = DOMAINS[rng.gen_range(0..DOMAINS.len())];
    let birth =
        NaiveDate::from_ymd_opt(1950, 1, 1).unwrap() + Duration::days(rng.gen_range(0..20_000));
    let signed = Utc.with_ymd_and_hms(2018, 1, 1, 0, 0, 0).unwrap()
        + Duration::seconds(rng.gen_range(0..250_000_000));
    let cents: i64 = rng.gen_range(0..5_000_000);
    let n_tags = rng.gen_range(0..3);
    let tags: Vec<&str> = (0..n_tags)
        .map(|_| TAGS[rng.gen_range(0..TAGS.len())])
        .collect();
    // A few profiles lack an email, so a filter on it has something to filter out.
    let email = if rng.gen_ratio(1, 20) {
        Value::Null
    } else {
        json!(format!("{}.{}{}@{}", fold(first), fold(last), i, domain))
    };
    json!({
        "_id": format!("c{i:07}"),
        "first_name": first,
        "last_name": last,
        "email": email,
        "country": country,
        "birth_date": birth.format("%Y-%m-%d").to_string(),
        "signed_up_at": signed.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "ltv": format!("{}.{:02}", cents / 100, cents % 100),
        "orders": rng.gen_range(0..250),
        "newsletter": rng.gen_bool(0.4),
        "score": (rng.gen_range(0.0..100.0f64) * 100.0).round() / 100.0,
        "tags": tags,
        "phone": format!("+{} {:03} {:07}", rng.gen_range(1..99), rng.gen_range(100..999), rng.gen_range(0..9_999_999)),
        "language": LANGUAGES[rng.gen_range(0..LANGUAGES.len())],
        "segment": SEGMENTS[rng.gen_range(0..SEGMENTS.len())],
        "loyalty_points": rng.gen_range(0..100_000),
        "last_order_at": (signed + Duration::seconds(rng.gen_range(0..30_000_000))).to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "address": {
            "street": format!("{} {}", STREETS[rng.gen_range(0..STREETS.len())], rng.gen_range(1..300)),
            "city": city,
            "postal_code": format!("{:05}", rng.gen_range(1000..99999)),
            "country": country,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_fit_their_schema_and_are_deterministic() {
        let wire: sluice_core::schema::SchemaWire = serde_json::from_value(schema()).unwrap();
        let s = sluice_core::Schema::from_wire(&wire).unwrap();
        for i in 0..2000 {
            let p = profile(7, i);
            s.validate_profile(p.as_object().unwrap()).unwrap();
        }
        assert_eq!(profile(7, 5), profile(7, 5));
        assert_ne!(profile(7, 5), profile(8, 5));
    }

    #[test]
    fn emails_transliterate_every_letter_of_a_name() {
        assert_eq!(fold("Élodie"), "elodie");
        assert_eq!(fold("Åsa"), "asa");
        assert_eq!(fold("Łukasz"), "lukasz");
        assert_eq!(fold("Søren"), "soren");
        assert_eq!(fold("Oğuz"), "oguz");
        // No letter of any sample name is dropped: each folds to at least one ASCII letter.
        for name in FIRST.iter().chain(LAST) {
            let letters = name.chars().filter(|c| c.is_alphabetic()).count();
            let folded = fold(name);
            assert!(
                folded.len() >= letters && folded.chars().all(|c| c.is_ascii_alphanumeric()),
                "`{name}` folds to `{folded}`"
            );
        }
        let with_accented_initial = (0..2_000)
            .map(|i| profile(42, i))
            .find(|p| p["first_name"] == "Élodie" && p["email"].is_string())
            .expect("an Élodie with an email among 2,000 samples");
        assert!(
            with_accented_initial["email"]
                .as_str()
                .unwrap()
                .starts_with("elodie."),
            "{with_accented_initial}"
        );
    }
}
