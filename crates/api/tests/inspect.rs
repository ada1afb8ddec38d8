//! `POST /v1/sources/inspect` and `/v1/connections` through the router, against the real servers: a table
//! and a query source on PostgreSQL, MariaDB, ClickHouse 18.16, the Snowflake-protocol server and SQLite,
//! each proposing a Customer Model (nested properties from a JSON column where the database has JSON);
//! a query that is not one SELECT, a table that does not exist and an id column that is not there named
//! in the answer; the roles. Each test makes its own schema, database or file, named `insp_…`.

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use mysql_async::prelude::Queryable;
use serde_json::{json, Value};
use tower::ServiceExt;

mod support;

const ADMIN: &str = "the-admin-token";
/// Given as the connection's password where the server ignores it: no answer may show it.
const PASSWORD: &str = "insp-pa55-never-shown";

fn env(name: &str, what: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} must name {what} for these tests (scripts/services.sh starts one)")
    })
}

fn unique() -> String {
    format!("insp_{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

struct Answer {
    status: StatusCode,
    body: Value,
    text: String,
}

async fn call(app: &Router, method: &str, path: &str, token: &str, body: Option<Value>) -> Answer {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(match body {
            Some(b) => Body::from(b.to_string()),
            None => Body::empty(),
        })
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    Answer {
        status,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        text,
    }
}

async fn token(app: &Router, role: &str) -> String {
    let a = call(
        app,
        "POST",
        "/v1/tokens",
        ADMIN,
        Some(json!({"name": format!("insp-{role}"), "role": role})),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    a.body["token"].as_str().unwrap().to_string()
}

/// A database with a table of its own to inspect.
#[async_trait]
trait Db: Send + Sync {
    fn kind(&self) -> &'static str;
    fn settings(&self) -> Value;
    async fn exec(&self, sql: &str);
    /// How the database's SQL names a column or table as written (case kept).
    fn quote(&self, name: &str) -> String {
        format!("\"{name}\"")
    }
    /// `CREATE TABLE` of `table`: `id` integer, `firstName` text, `email` text, `score` decimal(10,2),
    /// `attrs` JSON (text where the database has no JSON).
    fn table(&self, table: &str) -> String;
    /// The JSON literal of `doc` in an INSERT.
    fn json(&self, doc: &Value) -> String {
        format!("'{doc}'")
    }
    /// Whether a table's JSON column is described as JSON.
    fn has_json(&self) -> bool {
        true
    }
    /// Drops what the test made (its schema, database or nothing).
    async fn cleanup(&self) {}
    /// Inserts rows, one statement each (Snowflake's JSON needs `SELECT … PARSE_JSON`).
    fn insert(&self, table: &str, values: &str) -> String {
        format!("INSERT INTO {} VALUES ({values})", self.quote(table))
    }
}

struct Pg {
    schema: String,
    client: tokio_postgres::Client,
}

async fn pg() -> Pg {
    let url = env("SLUICE_TEST_POSTGRES_URL", "a PostgreSQL server");
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connect to SLUICE_TEST_POSTGRES_URL");
    tokio::spawn(conn);
    let schema = unique();
    client
        .batch_execute(&format!("CREATE SCHEMA \"{schema}\""))
        .await
        .unwrap();
    Pg { schema, client }
}

#[async_trait]
impl Db for Pg {
    fn kind(&self) -> &'static str {
        "postgresql"
    }
    fn settings(&self) -> Value {
        let url: tokio_postgres::Config = env("SLUICE_TEST_POSTGRES_URL", "").parse().unwrap();
        let host = match &url.get_hosts()[0] {
            tokio_postgres::config::Host::Tcp(h) => h.clone(),
            other => panic!("{other:?}"),
        };
        json!({"host": host, "port": url.get_ports()[0], "username": url.get_user().unwrap(),
               "password": PASSWORD, "database": url.get_dbname().unwrap(), "schema": self.schema,
               "tls": {"mode": "disable"}})
    }
    async fn exec(&self, sql: &str) {
        let sql = format!("SET search_path TO \"{}\"; {sql}", self.schema);
        self.client
            .batch_execute(&sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    async fn cleanup(&self) {
        self.client
            .batch_execute(&format!("DROP SCHEMA \"{}\" CASCADE", self.schema))
            .await
            .unwrap();
    }
    fn table(&self, table: &str) -> String {
        format!(
            "CREATE TABLE \"{table}\" (id bigint PRIMARY KEY, \"firstName\" text, email text, \
             score numeric(10,2), attrs jsonb)"
        )
    }
}

struct My {
    url: String,
    database: String,
}

impl My {
    async fn conn(&self, database: Option<&str>) -> mysql_async::Conn {
        let mut opts = mysql_async::OptsBuilder::from_opts(
            mysql_async::Opts::from_url(&self.url).expect("SLUICE_TEST_MYSQL_URL"),
        );
        if let Some(db) = database {
            opts = opts.db_name(Some(db));
        }
        mysql_async::Conn::new(opts).await.unwrap()
    }
}

async fn mysql() -> My {
    let url = env("SLUICE_TEST_MYSQL_URL", "a MySQL or MariaDB server");
    let my = My {
        url,
        database: unique(),
    };
    my.conn(None)
        .await
        .query_drop(format!(
            "CREATE DATABASE `{}` DEFAULT CHARSET utf8mb4",
            my.database
        ))
        .await
        .unwrap();
    my
}

#[async_trait]
impl Db for My {
    fn kind(&self) -> &'static str {
        "mysql"
    }
    fn settings(&self) -> Value {
        let opts = mysql_async::Opts::from_url(&self.url).unwrap();
        json!({"host": opts.ip_or_hostname(), "port": opts.tcp_port(),
               "username": opts.user().unwrap_or("root"), "password": opts.pass().unwrap_or(""),
               "database": self.database, "tls": {"mode": "disable"}})
    }
    async fn exec(&self, sql: &str) {
        self.conn(Some(&self.database))
            .await
            .query_drop(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    fn quote(&self, name: &str) -> String {
        format!("`{name}`")
    }
    fn table(&self, table: &str) -> String {
        format!(
            "CREATE TABLE `{table}` (id bigint PRIMARY KEY, firstName varchar(100), email varchar(200), \
             score decimal(10,2), attrs json)"
        )
    }
}

struct Ch {
    settings: Value,
}

async fn clickhouse() -> Ch {
    let native = env(
        "SLUICE_TEST_CLICKHOUSE_NATIVE",
        "a ClickHouse server (host:port)",
    );
    let (host, port) = native.rsplit_once(':').unwrap();
    let mut settings = json!({"host": host, "port": port.parse::<u16>().unwrap(),
        "username": std::env::var("SLUICE_TEST_CLICKHOUSE_USER").unwrap_or_else(|_| "default".into()),
        "password": std::env::var("SLUICE_TEST_CLICKHOUSE_PASSWORD").unwrap_or_default(),
        "database": "default"});
    let database = unique();
    let ch = Ch {
        settings: settings.clone(),
    };
    ch.exec(&format!("CREATE DATABASE {database}")).await;
    settings["database"] = json!(database);
    Ch { settings }
}

#[async_trait]
impl Db for Ch {
    fn kind(&self) -> &'static str {
        "clickhouse"
    }
    fn settings(&self) -> Value {
        self.settings.clone()
    }
    async fn exec(&self, sql: &str) {
        let settings =
            sluice_destinations::clickhouse::ClickHouseSettings::from_json(&self.settings).unwrap();
        let mut session = sluice_destinations::clickhouse::client::connect(&settings)
            .await
            .unwrap();
        session
            .execute(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    fn quote(&self, name: &str) -> String {
        format!("`{name}`")
    }
    fn table(&self, table: &str) -> String {
        format!(
            "CREATE TABLE `{}`.`{table}` (id Int64, firstName Nullable(String), email Nullable(String), \
             score Nullable(Decimal(10, 2)), attrs Nullable(String)) ENGINE = MergeTree() ORDER BY id",
            self.settings["database"].as_str().unwrap()
        )
    }
    fn insert(&self, table: &str, values: &str) -> String {
        format!(
            // Native-protocol INSERT … VALUES waits for data blocks; a SELECT carries its own rows.
            "INSERT INTO `{}`.`{table}` SELECT {values}",
            self.settings["database"].as_str().unwrap()
        )
    }
    fn has_json(&self) -> bool {
        false
    }
    async fn cleanup(&self) {
        let mut settings = self.settings.clone();
        let database = settings["database"].as_str().unwrap().to_string();
        settings["database"] = json!("default");
        Ch { settings }
            .exec(&format!("DROP DATABASE {database}"))
            .await;
    }
}

struct Sf {
    url: String,
    database: String,
}

impl Sf {
    fn settings_in(&self, database: &str) -> Value {
        json!({"account": "sluice-test", "username": "sluice", "password": PASSWORD,
               "database": database, "schema": "PUBLIC", "warehouse": "SLUICE_WH", "base_url": self.url})
    }
    async fn run(&self, database: Option<&str>, sql: &str) {
        use sluice_destinations::snowflake::{client::Connection, SnowflakeSettings};
        let settings =
            SnowflakeSettings::from_json(&self.settings_in(database.unwrap_or("SLUICE_TEST")))
                .unwrap();
        let conn = Connection::new(settings, Default::default()).unwrap();
        let mut session = conn.login(database.is_some()).await.unwrap();
        conn.run(&mut session, sql, &[], true)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

async fn snowflake() -> Sf {
    let sf = Sf {
        url: env("SLUICE_TEST_SNOWFLAKE_URL", "a Snowflake-protocol server"),
        database: unique().to_uppercase(),
    };
    sf.run(None, &format!("CREATE DATABASE {}", sf.database))
        .await;
    sf.run(
        None,
        &format!("CREATE SCHEMA IF NOT EXISTS {}.PUBLIC", sf.database),
    )
    .await;
    sf
}

#[async_trait]
impl Db for Sf {
    fn kind(&self) -> &'static str {
        "snowflake"
    }
    fn settings(&self) -> Value {
        self.settings_in(&self.database)
    }
    async fn exec(&self, sql: &str) {
        self.run(Some(&self.database), sql).await;
    }
    fn table(&self, table: &str) -> String {
        format!(
            "CREATE TABLE PUBLIC.\"{table}\" (\"id\" NUMBER(38,0), \"firstName\" VARCHAR, \"email\" VARCHAR, \
             \"score\" NUMBER(10,2), \"attrs\" VARIANT)"
        )
    }
    fn json(&self, doc: &Value) -> String {
        format!("PARSE_JSON('{doc}')")
    }
    // The Snowflake-protocol test server has no DROP DATABASE: the test database stays there.
    fn insert(&self, table: &str, values: &str) -> String {
        format!("INSERT INTO PUBLIC.\"{table}\" SELECT {values}")
    }
}

struct Lite {
    path: std::path::PathBuf,
}

#[async_trait]
impl Db for Lite {
    fn kind(&self) -> &'static str {
        "sqlite"
    }
    fn settings(&self) -> Value {
        json!({"path": self.path})
    }
    async fn exec(&self, sql: &str) {
        rusqlite::Connection::open(&self.path)
            .unwrap()
            .execute_batch(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    fn table(&self, table: &str) -> String {
        format!(
            "CREATE TABLE \"{table}\" (id INTEGER PRIMARY KEY, \"firstName\" TEXT, email TEXT, \
             score NUMERIC(10,2), attrs JSON)"
        )
    }
}

/// Makes the table, saves the connection, and answers the server, the connection's id, the table and
/// the editor's token.
async fn setup(db: &dyn Db) -> (Router, tempfile::TempDir, String, String, String) {
    let table = unique();
    db.exec(&db.table(&table)).await;
    let ada =
        json!({"plan": "pro", "address": {"city": "Rome", "zip": "00100"}, "tags": ["a", "b"]});
    let bo = json!({"plan": "free", "address": {"city": "Oslo"}});
    for values in [
        format!("1, 'Ada', 'ada@example.com', 12.50, {}", db.json(&ada)),
        format!("2, 'Bo', 'bo@example.com', 3.00, {}", db.json(&bo)),
        "3, NULL, NULL, NULL, NULL".to_string(),
    ] {
        db.exec(&db.insert(&table, &values)).await;
    }
    let (app, dir) = support::app(ADMIN).await;
    let a = call(
        &app,
        "POST",
        "/v1/destinations",
        ADMIN,
        Some(json!({"name": format!("{} source", db.kind()), "type": db.kind(), "settings": db.settings()})),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    let id = a.body["id"].as_str().unwrap().to_string();
    let editor = token(&app, "editor").await;
    (app, dir, id, table, editor)
}

fn names(v: &Value) -> Vec<&str> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect()
}

/// Everything every database must do.
async fn scenario(db: &dyn Db) {
    let (app, _dir, id, table, editor) = setup(db).await;

    // The table: columns, rows, the proposal.
    let a = call(
        &app,
        "POST",
        "/v1/sources/inspect",
        &editor,
        Some(json!({"connection": id, "table": table, "rows": 10})),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert!(!a.text.contains(PASSWORD), "{}", a.text);
    let b = &a.body;
    assert_eq!(
        names(&b["columns"]),
        ["id", "firstName", "email", "score", "attrs"]
    );
    let email = &b["columns"][2];
    assert_eq!(email["property_type"], "string", "{email}");
    assert_eq!(b["rows"].as_array().unwrap().len(), 3, "{}", a.text);
    let ada = b["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["firstName"] == "Ada")
        .unwrap_or_else(|| panic!("no Ada in {}", a.text));
    assert_eq!(ada["email"], "ada@example.com");
    assert_eq!(b["id_column"], "id");
    let model = &b["model"]["properties"];
    assert_eq!(
        names(model),
        ["first_name", "email", "score", "attrs"],
        "{model}"
    );
    assert_eq!(model[0]["type"], "string");
    assert!(
        model[2]["type"]
            .as_str()
            .is_some_and(|t| t.starts_with("decimal(") || t == "float"),
        "{model}"
    );
    let mapping = b["mapping"].as_object().unwrap();
    assert_eq!(mapping["first_name"], "firstName");
    assert_eq!(mapping["email"], "email");
    assert_eq!(b["added"], json!(["first_name", "email", "score", "attrs"]));
    assert_eq!(b["columns"][4]["json"], db.has_json(), "{}", b["columns"]);
    if db.has_json() {
        // Nested properties from the sample's objects, mapped leaf by leaf.
        let attrs = &model[3];
        assert_eq!(attrs["type"], "object", "{attrs}");
        // Keys come in the order the database gives them (PostgreSQL's jsonb sorts them).
        let nested: std::collections::BTreeMap<&str, &Value> = attrs["properties"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p["name"].as_str().unwrap(), p))
            .collect();
        assert_eq!(
            nested.keys().copied().collect::<Vec<_>>(),
            ["address", "plan", "tags"],
            "{attrs}"
        );
        assert_eq!(nested["address"]["type"], "object");
        let mut address = names(&nested["address"]["properties"]);
        address.sort_unstable();
        assert_eq!(address, ["city", "zip"]);
        assert_eq!(nested["tags"]["type"], "array(string)");
        assert_eq!(mapping["attrs.address.city"], "attrs.address.city");
        assert_eq!(mapping["attrs.tags"], "attrs.tags");
        assert!(!mapping.contains_key("attrs"), "{mapping:?}");
    } else {
        assert_eq!(model[3]["type"], "string");
        assert_eq!(mapping["attrs"], "attrs");
    }
    // The proposal is a model the Customer Model route takes as it is — but nothing was written.
    let stored = call(&app, "GET", "/v1/profile-schema", &editor, None).await;
    assert_eq!(stored.body["properties"], json!([]), "{}", stored.text);
    let put = call(
        &app,
        "PUT",
        "/v1/profile-schema",
        &editor,
        Some(b["model"].clone()),
    )
    .await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.text);

    // A query: its own columns and rows; the model now has the properties, so nothing is added.
    let query = format!(
        "SELECT {id}, {email} AS {mail} FROM {t} WHERE {id} >= 2",
        id = db.quote("id"),
        email = db.quote("email"),
        mail = db.quote("Mail"),
        t = match db.kind() {
            "clickhouse" => format!(
                "`{}`.`{table}`",
                db.settings()["database"].as_str().unwrap()
            ),
            _ => db.quote(&table),
        }
    );
    let a = call(
        &app,
        "POST",
        "/v1/sources/inspect",
        &editor,
        Some(json!({"connection": id, "query": query, "id_column": "id"})),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(names(&a.body["columns"]), ["id", "Mail"]);
    assert_eq!(a.body["rows"].as_array().unwrap().len(), 2, "{}", a.text);
    // `Mail` matches no property by name, nor by its snake-case name `mail`: proposed as new.
    assert_eq!(a.body["added"], json!(["mail"]), "{}", a.text);
    assert_eq!(a.body["mapping"], json!({"mail": "Mail"}), "{}", a.text);

    // What is wrong is named.
    let a = call(
        &app,
        "POST",
        "/v1/sources/inspect",
        &editor,
        Some(json!({"connection": id, "query": format!("DELETE FROM {}", db.quote(&table))})),
    )
    .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", a.text);
    assert!(a.body["error"]["fields"]["query"].is_array(), "{}", a.text);
    let a = call(
        &app,
        "POST",
        "/v1/sources/inspect",
        &editor,
        Some(json!({"connection": id, "query": format!("SELECT 1 AS a; DROP TABLE {}", db.quote(&table))})),
    )
    .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", a.text);
    // What the database refuses in a query is the query's fault, in the database's words. (Unquoted:
    // SQLite reads a double-quoted name that matches no column as a string.)
    let a = call(
        &app,
        "POST",
        "/v1/sources/inspect",
        &editor,
        Some(json!({"connection": id, "query": format!("SELECT insp_nope FROM {}", db.quote(&table))})),
    )
    .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", a.text);
    assert!(
        a.body["error"]["fields"]["query"][0]
            .as_str()
            .is_some_and(|m| m.to_lowercase().contains("insp_nope")),
        "{}",
        a.text
    );
    let a = call(
        &app,
        "POST",
        "/v1/sources/inspect",
        &editor,
        Some(json!({"connection": id, "table": "insp_no_such_table"})),
    )
    .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND, "{}", a.text);
    assert_eq!(a.body["error"]["code"], "TableNotFound");
    assert!(a.text.contains("insp_no_such_table"), "{}", a.text);
    let a = call(
        &app,
        "POST",
        "/v1/sources/inspect",
        &editor,
        Some(json!({"connection": id, "table": table, "id_column": "customer_no"})),
    )
    .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", a.text);
    assert!(
        a.body["error"]["fields"]["id_column"][0]
            .as_str()
            .unwrap()
            .contains("customer_no"),
        "{}",
        a.text
    );
    // The table is still there, with its rows: nothing the previews ran wrote anything.
    let a = call(
        &app,
        "POST",
        "/v1/sources/inspect",
        &editor,
        Some(json!({"connection": id, "table": table, "rows": 1})),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.body["rows"].as_array().unwrap().len(), 1);
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_table_and_query() {
    scenario(&pg().await).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql_table_and_query() {
    let db = mysql().await;
    scenario(&db).await;
    db.conn(None)
        .await
        .query_drop(format!("DROP DATABASE `{}`", db.database))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn clickhouse_table_and_query() {
    scenario(&clickhouse().await).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn snowflake_table_and_query() {
    scenario(&snowflake().await).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_table_and_query() {
    let dir = tempfile::tempdir().unwrap();
    scenario(&Lite {
        path: dir.path().join("insp_source.db"),
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_existing_model_is_matched_and_never_retyped() {
    let dir = tempfile::tempdir().unwrap();
    let db = Lite {
        path: dir.path().join("insp_model.db"),
    };
    let (app, _d, id, table, editor) = setup(&db).await;
    let put = call(
        &app,
        "PUT",
        "/v1/profile-schema",
        ADMIN,
        Some(json!({"properties": [
            {"name": "FirstName", "type": "string"},
            {"name": "email", "type": "int"},
            {"name": "attrs", "type": "object", "properties": [
                {"name": "plan", "type": "string"},
                {"name": "address", "type": "object", "properties": [{"name": "city", "type": "string"}]},
            ]},
        ]})),
    )
    .await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.text);
    let a = call(
        &app,
        "POST",
        "/v1/sources/inspect",
        &editor,
        Some(json!({"connection": id, "table": table})),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let b = &a.body;
    // Existing properties first and unchanged; only `score` is new.
    assert_eq!(
        names(&b["model"]["properties"]),
        ["FirstName", "email", "attrs", "score"]
    );
    assert_eq!(b["model"]["properties"][1]["type"], "int");
    assert_eq!(
        b["mapping"],
        json!({"FirstName": "firstName", "attrs.plan": "attrs.plan",
               "attrs.address.city": "attrs.address.city", "score": "score"}),
        "{}",
        a.text
    );
    assert_eq!(b["added"], json!(["score"]));
    let issues: Vec<(&str, &str)> = b["issues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["column"].as_str().unwrap(),
                i["message"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(
        issues
            .iter()
            .any(|(c, m)| *c == "email" && m.contains("existing property `email`, which is int")),
        "{issues:?}"
    );
    assert!(issues.iter().any(|(c, _)| *c == "attrs.tags"), "{issues:?}");
    assert!(
        issues.iter().any(|(c, _)| *c == "attrs.address.zip"),
        "{issues:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn viewers_may_not_run_queries_and_connections_are_listed() {
    let dir = tempfile::tempdir().unwrap();
    let db = Lite {
        path: dir.path().join("insp_roles.db"),
    };
    let (app, _d, id, table, editor) = setup(&db).await;
    let viewer = token(&app, "viewer").await;
    for body in [
        json!({"connection": id, "table": table}),
        json!({"connection": id, "query": "SELECT 1 AS one"}),
    ] {
        let a = call(&app, "POST", "/v1/sources/inspect", &viewer, Some(body)).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.text);
        assert_eq!(a.body["error"]["code"], "Forbidden");
    }
    let a = call(
        &app,
        "POST",
        "/v1/sources/inspect",
        &editor,
        Some(json!({"connection": id, "query": "SELECT 1 AS one"})),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.body["rows"], json!([{"one": 1}]));
    let a = call(
        &app,
        "POST",
        "/v1/sources/inspect",
        &editor,
        Some(json!({"connection": "dst_nope", "table": table})),
    )
    .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND, "{}", a.text);
    assert!(a.text.contains("dst_nope"), "{}", a.text);
    let a = call(
        &app,
        "POST",
        "/v1/sources/inspect",
        &editor,
        Some(json!({"connection": id, "table": table, "rows": 500})),
    )
    .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", a.text);
    assert!(a.body["error"]["fields"]["rows"].is_array(), "{}", a.text);

    // Connections: the destination records, readable by a viewer.
    let list = call(&app, "GET", "/v1/connections", &viewer, None).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.text);
    let dests = call(&app, "GET", "/v1/destinations", &viewer, None).await;
    assert_eq!(
        list.body["connections"], dests.body["destinations"],
        "{}",
        list.text
    );
    assert_eq!(list.body["connections"][0]["id"], id.as_str());
    let one = call(&app, "GET", &format!("/v1/connections/{id}"), &viewer, None).await;
    assert_eq!(one.status, StatusCode::OK, "{}", one.text);
    assert_eq!(one.body["type"], "sqlite");
    let none = call(&app, "GET", "/v1/connections/dst_nope", &viewer, None).await;
    assert_eq!(none.status, StatusCode::NOT_FOUND, "{}", none.text);
}
