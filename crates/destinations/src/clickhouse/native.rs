//! ClickHouse's native TCP protocol, as much of it as Sluice needs: the handshake, queries whose results
//! are small (metadata), and inserts of blocks that [`super::encode`] has already laid out in the wire
//! format — written straight to the socket, with no intermediate value per cell.
//!
//! Sluice speaks revision [`CLIENT_REVISION`]: old enough that every server from 18.16 to current ones
//! accepts it and sends nothing newer (no profile events, no settings in binary form), recent enough for
//! `LowCardinality` in blocks and for the server's logs and table-column packets, which are read and
//! skipped. Data is sent and received uncompressed: Sluice's blocks go to servers it shares a network
//! with, and compressing them cost as much CPU as encoding them.
//!
//! A connection whose exchange was cut short (an I/O error, a malformed packet, a future dropped in the
//! middle of an insert) is marked broken and must not be reused; a server exception ends the query
//! cleanly and leaves the connection usable.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncBufRead, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufStream};

use super::dialect::ChType;

/// The protocol revision Sluice speaks (that of ClickHouse 19.x with settings as strings).
pub const CLIENT_REVISION: u64 = 54429;
const WITH_CLIENT_INFO: u64 = 54032;
const WITH_SERVER_TIMEZONE: u64 = 54058;
const WITH_QUOTA_KEY: u64 = 54060;
const WITH_DISPLAY_NAME: u64 = 54372;
const WITH_VERSION_PATCH: u64 = 54401;
const WITH_CLIENT_WRITE_INFO: u64 = 54420;
/// From this revision on a query's settings travel as text with flags; before it, each value in the
/// setting's binary form (a varint for the integer and boolean settings Sluice sends).
const WITH_SETTINGS_AS_STRINGS: u64 = 54429;
/// The flag that makes a server refuse a setting it does not know instead of ignoring it.
const SETTING_IMPORTANT: u64 = 0x01;

/// Longest string accepted from a server (the server's own limit).
const MAX_STRING: u64 = 1 << 30;

const CLIENT_HELLO: u64 = 0;
const CLIENT_QUERY: u64 = 1;
const CLIENT_DATA: u64 = 2;

const SERVER_HELLO: u64 = 0;
const SERVER_DATA: u64 = 1;
const SERVER_EXCEPTION: u64 = 2;
const SERVER_PROGRESS: u64 = 3;
const SERVER_PONG: u64 = 4;
const SERVER_END: u64 = 5;
const SERVER_PROFILE_INFO: u64 = 6;
const SERVER_TOTALS: u64 = 7;
const SERVER_EXTREMES: u64 = 8;
const SERVER_LOG: u64 = 10;
const SERVER_TABLE_COLUMNS: u64 = 11;

/// Runs the query to completion (`QueryProcessingStage::Complete`).
const STAGE_COMPLETE: u64 = 2;

/// What went wrong, by whose doing.
#[derive(Debug)]
pub enum NativeError {
    /// The server refused: its exception code, name and message.
    Server {
        code: i32,
        message: String,
    },
    Io(std::io::Error),
    /// The server sent something this client does not understand.
    Protocol(String),
    /// The insert's header did not pass its check: the message says why. No row was sent.
    Refused(String),
}

impl fmt::Display for NativeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NativeError::Server { code, message } => write!(f, "{message} (code {code})"),
            NativeError::Io(e) => write!(f, "{e}"),
            NativeError::Protocol(p) => write!(f, "protocol error: {p}"),
            NativeError::Refused(why) => write!(f, "{why}"),
        }
    }
}

impl From<std::io::Error> for NativeError {
    fn from(e: std::io::Error) -> Self {
        NativeError::Io(e)
    }
}

pub type NativeResult<T> = std::result::Result<T, NativeError>;

/// A byte stream to a server: plain TCP or TLS.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// What the server said of itself in its hello.
#[derive(Debug, Clone, Default)]
pub struct ServerInfo {
    pub name: String,
    pub major: u64,
    pub minor: u64,
    pub revision: u64,
    pub timezone: Option<String>,
}

/// A value of a query result.
#[derive(Debug, Clone, PartialEq)]
pub enum Datum {
    Null,
    UInt(u64),
    Int(i64),
    Float(f64),
    Bytes(Vec<u8>),
    Array(Vec<Datum>),
}

impl Datum {
    /// The value as text (metadata is text or numbers).
    pub fn text(&self) -> String {
        match self {
            Datum::Null => String::new(),
            Datum::UInt(n) => n.to_string(),
            Datum::Int(n) => n.to_string(),
            Datum::Float(f) => f.to_string(),
            Datum::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
            Datum::Array(items) => {
                let items: Vec<String> = items.iter().map(Datum::text).collect();
                format!("[{}]", items.join(", "))
            }
        }
    }
}

/// A setting sent with one query: its name and an integer (booleans are 0 and 1), the one kind of value
/// whose binary form every revision agrees on.
pub type Setting = (&'static str, u64);

/// The settings of a query as the negotiated `revision` expects them, with the empty name that ends them.
/// Each is marked important: a server that does not know one refuses the query rather than running it
/// without (the caller sends only what the server's version has).
pub fn put_settings(out: &mut Vec<u8>, revision: u64, settings: &[Setting]) {
    for (name, value) in settings {
        put_str(out, name);
        if revision >= WITH_SETTINGS_AS_STRINGS {
            put_varuint(out, SETTING_IMPORTANT);
            put_str(out, &value.to_string());
        } else {
            put_varuint(out, *value);
        }
    }
    put_str(out, "");
}

/// A block's columns, as the header of an insert announces them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub columns: Vec<(String, String)>,
}

/// One connection, after its handshake.
pub struct Connection {
    io: BufStream<Box<dyn Io>>,
    pub server: ServerInfo,
    /// The revision both sides speak: the lower of the two.
    revision: u64,
    /// An exchange did not finish: what the server will send next is unknown.
    broken: bool,
    /// The current insert has sent rows.
    sent_rows: bool,
}

impl Connection {
    /// Says hello with the credentials and reads the server's hello (or its refusal).
    pub async fn handshake(
        io: Box<dyn Io>,
        database: &str,
        user: &str,
        password: &str,
    ) -> NativeResult<Connection> {
        let mut conn = Connection {
            io: BufStream::new(io),
            server: ServerInfo::default(),
            revision: CLIENT_REVISION,
            broken: true,
            sent_rows: false,
        };
        let mut out = Vec::new();
        put_varuint(&mut out, CLIENT_HELLO);
        put_str(&mut out, "Sluice");
        put_varuint(&mut out, CLIENT_MAJOR);
        put_varuint(&mut out, CLIENT_MINOR);
        put_varuint(&mut out, CLIENT_REVISION);
        put_str(&mut out, database);
        put_str(&mut out, user);
        put_str(&mut out, password);
        conn.io.write_all(&out).await?;
        conn.io.flush().await?;
        match conn.varuint().await? {
            SERVER_HELLO => {}
            SERVER_EXCEPTION => return Err(conn.exception().await?),
            other => {
                return Err(NativeError::Protocol(format!(
                    "expected the server's hello, got packet {other}"
                )))
            }
        }
        let name = conn.string().await?;
        let major = conn.varuint().await?;
        let minor = conn.varuint().await?;
        let revision = conn.varuint().await?;
        conn.revision = revision.min(CLIENT_REVISION);
        let timezone = if conn.revision >= WITH_SERVER_TIMEZONE {
            Some(conn.string().await?)
        } else {
            None
        };
        if conn.revision >= WITH_DISPLAY_NAME {
            conn.string().await?;
        }
        if conn.revision >= WITH_VERSION_PATCH {
            conn.varuint().await?;
        }
        conn.server = ServerInfo {
            name,
            major,
            minor,
            revision,
            timezone,
        };
        conn.broken = false;
        Ok(conn)
    }

    /// Whether the connection can take another query: no exchange was cut short, and the server has not
    /// closed its end (nor sent anything unasked).
    pub fn is_usable(&mut self) -> bool {
        if self.broken {
            return false;
        }
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        match Pin::new(&mut self.io).poll_fill_buf(&mut cx) {
            Poll::Pending => true,
            // End of stream, an error, or bytes nobody asked for.
            Poll::Ready(_) => {
                self.broken = true;
                false
            }
        }
    }

    /// Runs `sql` and returns the rows of its result.
    pub async fn query(&mut self, sql: &str) -> NativeResult<Vec<Vec<Datum>>> {
        self.query_with(sql, &[]).await
    }

    /// Runs `sql` with `settings` and returns the rows of its result.
    pub async fn query_with(
        &mut self,
        sql: &str,
        settings: &[Setting],
    ) -> NativeResult<Vec<Vec<Datum>>> {
        self.begin()?;
        let result = self.query_inner(sql, settings).await;
        self.end(&result);
        result
    }

    /// Runs the `INSERT` of `sql` with `blocks`, each a whole data packet as [`super::encode`] lays it
    /// out; returns once the server has stored them. `check` sees the server's header first and may
    /// refuse it (the insert is then ended with no rows).
    pub async fn insert(
        &mut self,
        sql: &str,
        settings: &[Setting],
        blocks: impl IntoIterator<Item = Vec<u8>>,
        check: impl FnOnce(&Header) -> Result<(), String>,
    ) -> NativeResult<()> {
        self.open_insert(sql, settings, check).await?;
        self.send_blocks(blocks).await?;
        self.finish_insert().await
    }

    /// Starts the `INSERT` of `sql` and leaves it open for [`Self::send_blocks`], until
    /// [`Self::finish_insert`]: the server stores what it was sent only then (it gathers the blocks of one
    /// insert into as few parts as it can, which is what makes a long insert cheaper than many short
    /// ones). `check` sees the server's header first and may refuse it: the insert is then ended, with no
    /// rows. Until it is finished the connection serves nothing else.
    pub async fn open_insert(
        &mut self,
        sql: &str,
        settings: &[Setting],
        check: impl FnOnce(&Header) -> Result<(), String>,
    ) -> NativeResult<()> {
        self.begin()?;
        self.sent_rows = false;
        let header = match self.insert_header(sql, settings).await {
            Ok(header) => header,
            Err(e) => {
                let failed = Err(e);
                self.end(&failed);
                return failed;
            }
        };
        if let Err(why) = check(&header) {
            let ended = self.end_insert().await;
            let result = ended.and(Err(NativeError::Refused(why)));
            self.end(&result);
            return result;
        }
        Ok(())
    }

    /// Sends blocks into the insert [`Self::open_insert`] opened. Should it fail, the connection is
    /// broken and the insert lost.
    pub async fn send_blocks(
        &mut self,
        blocks: impl IntoIterator<Item = Vec<u8>>,
    ) -> NativeResult<()> {
        for block in blocks {
            self.sent_rows = true;
            self.io.write_all(&block).await?;
        }
        // The server reads an insert's blocks as they come: none should wait in the buffer.
        self.io.flush().await?;
        Ok(())
    }

    /// Ends the open insert and waits until the server has stored its rows.
    pub async fn finish_insert(&mut self) -> NativeResult<()> {
        let result = self.end_insert().await;
        self.end(&result);
        // A server that failed while rows were coming may not have read them all: what it reads next is
        // unknown.
        if self.sent_rows && result.is_err() {
            self.broken = true;
        }
        result
    }

    /// Marks an exchange as under way: should its future be dropped before [`Self::end`], the connection
    /// stays marked broken.
    fn begin(&mut self) -> NativeResult<()> {
        if self.broken {
            return Err(NativeError::Protocol(
                "the connection was left in an unknown state".into(),
            ));
        }
        self.broken = true;
        Ok(())
    }

    /// An exchange that ended cleanly or with a server exception leaves the server ready for the next.
    fn end<T>(&mut self, result: &NativeResult<T>) {
        self.broken = !matches!(
            result,
            Ok(_) | Err(NativeError::Server { .. } | NativeError::Refused(_))
        );
    }

    async fn query_inner(
        &mut self,
        sql: &str,
        settings: &[Setting],
    ) -> NativeResult<Vec<Vec<Datum>>> {
        self.send_query(sql, settings).await?;
        let mut rows = Vec::new();
        loop {
            match self.varuint().await? {
                SERVER_DATA | SERVER_TOTALS | SERVER_EXTREMES => {
                    let block = self.block().await?;
                    rows.extend(block.into_rows());
                }
                SERVER_END => return Ok(rows),
                other => {
                    if let Some(e) = self.skip_packet(other).await? {
                        // The query is over: the server sends nothing after an exception.
                        return Err(e);
                    }
                }
            }
        }
    }

    /// Sends the query of an insert and reads the header of the block the server expects.
    async fn insert_header(&mut self, sql: &str, settings: &[Setting]) -> NativeResult<Header> {
        self.send_query(sql, settings).await?;
        loop {
            match self.varuint().await? {
                SERVER_DATA => {
                    let block = self.block().await?;
                    return Ok(Header {
                        columns: block.columns.into_iter().map(|c| (c.name, c.ty)).collect(),
                    });
                }
                other => {
                    if let Some(e) = self.skip_packet(other).await? {
                        return Err(e);
                    }
                }
            }
        }
    }

    /// Ends an insert with an empty block and reads the server's answer.
    async fn end_insert(&mut self) -> NativeResult<()> {
        self.io.write_all(&EMPTY_BLOCK).await?;
        self.io.flush().await?;
        loop {
            match self.varuint().await? {
                SERVER_END => return Ok(()),
                // Blocks about the insert (none on the servers known), read and dropped.
                SERVER_DATA => {
                    self.block().await?;
                }
                other => {
                    if let Some(e) = self.skip_packet(other).await? {
                        return Err(e);
                    }
                }
            }
        }
    }

    async fn send_query(&mut self, sql: &str, settings: &[Setting]) -> NativeResult<()> {
        let mut out = Vec::with_capacity(sql.len() + 64);
        put_varuint(&mut out, CLIENT_QUERY);
        put_str(&mut out, ""); // query id: the server makes one
        if self.revision >= WITH_CLIENT_INFO {
            out.push(1); // initial query
            put_str(&mut out, ""); // initial user
            put_str(&mut out, ""); // initial query id
            put_str(&mut out, "0.0.0.0:0"); // initial address
            out.push(1); // interface: TCP
            put_str(&mut out, ""); // OS user
            put_str(&mut out, ""); // client host name
            put_str(&mut out, "Sluice");
            put_varuint(&mut out, CLIENT_MAJOR);
            put_varuint(&mut out, CLIENT_MINOR);
            put_varuint(&mut out, CLIENT_REVISION);
            if self.revision >= WITH_QUOTA_KEY {
                put_str(&mut out, "");
            }
            if self.revision >= WITH_VERSION_PATCH {
                put_varuint(&mut out, 0);
            }
        }
        put_settings(&mut out, self.revision, settings);
        put_varuint(&mut out, STAGE_COMPLETE);
        put_varuint(&mut out, 0); // no compression
        put_str(&mut out, sql);
        // No external tables: an empty block ends them.
        out.extend_from_slice(&EMPTY_BLOCK);
        self.io.write_all(&out).await?;
        self.io.flush().await?;
        Ok(())
    }

    /// Reads past a packet that carries no rows; returns the server's exception when it is one.
    async fn skip_packet(&mut self, packet: u64) -> NativeResult<Option<NativeError>> {
        match packet {
            SERVER_EXCEPTION => return Ok(Some(self.exception().await?)),
            SERVER_PROGRESS => {
                let fields = if self.revision >= WITH_CLIENT_WRITE_INFO {
                    5
                } else {
                    3
                };
                for _ in 0..fields {
                    self.varuint().await?;
                }
            }
            SERVER_PROFILE_INFO => {
                for _ in 0..3 {
                    self.varuint().await?;
                }
                self.io.read_u8().await?;
                self.varuint().await?;
                self.io.read_u8().await?;
            }
            SERVER_LOG | SERVER_DATA | SERVER_TOTALS | SERVER_EXTREMES => {
                self.block().await?;
            }
            SERVER_TABLE_COLUMNS => {
                self.string().await?;
                self.string().await?;
            }
            SERVER_PONG => {}
            other => {
                return Err(NativeError::Protocol(format!(
                    "unexpected packet {other} from the server"
                )))
            }
        }
        Ok(None)
    }

    /// The first exception of a chain (the outermost is the one that names the problem).
    async fn exception(&mut self) -> NativeResult<NativeError> {
        let code = self.io.read_i32_le().await?;
        let _name = self.string().await?;
        let message = self.string().await?;
        let _stack = self.string().await?;
        if self.io.read_u8().await? != 0 {
            Box::pin(self.exception()).await?;
        }
        Ok(NativeError::Server { code, message })
    }

    /// A block of a data packet: its table name, info, and columns.
    async fn block(&mut self) -> NativeResult<ResultBlock> {
        self.string().await?; // external table name
        loop {
            match self.varuint().await? {
                0 => break,
                1 => {
                    self.io.read_u8().await?; // is_overflows
                }
                2 => {
                    self.io.read_i32_le().await?; // bucket_num
                }
                other => {
                    return Err(NativeError::Protocol(format!(
                        "unknown block info field {other}"
                    )))
                }
            }
        }
        let columns = self.varuint().await?;
        let rows = self.varuint().await?;
        let mut block = ResultBlock {
            rows: rows as usize,
            columns: Vec::new(),
        };
        for _ in 0..columns {
            let name = self.string().await?;
            let ty = self.string().await?;
            let cells = if rows > 0 {
                let parsed = ChType::parse(&ty).ok_or_else(|| {
                    NativeError::Protocol(format!("column type `{ty}` does not parse"))
                })?;
                self.column_prefix(&parsed).await?;
                self.column(&parsed, rows as usize).await?
            } else {
                Vec::new()
            };
            block.columns.push(ResultColumn { name, ty, cells });
        }
        Ok(block)
    }

    async fn column_prefix(&mut self, ty: &ChType) -> NativeResult<()> {
        match ty {
            ChType::LowCardinality(_) => {
                self.io.read_u64_le().await?;
            }
            ChType::Array(t) | ChType::Nullable(t) => Box::pin(self.column_prefix(t)).await?,
            ChType::Scalar { .. } => {}
        }
        Ok(())
    }

    /// `rows` values of a column of type `ty`: the types metadata and logs use.
    async fn column(&mut self, ty: &ChType, rows: usize) -> NativeResult<Vec<Datum>> {
        // An empty column has no data at all, not even a LowCardinality's dictionary.
        if rows == 0 {
            return Ok(Vec::new());
        }
        match ty {
            ChType::Nullable(inner) => {
                let mut nulls = vec![0u8; rows];
                self.io.read_exact(&mut nulls).await?;
                let mut cells = Box::pin(self.column(inner, rows)).await?;
                for (cell, null) in cells.iter_mut().zip(nulls) {
                    if null != 0 {
                        *cell = Datum::Null;
                    }
                }
                Ok(cells)
            }
            ChType::Array(inner) => {
                let mut ends = Vec::with_capacity(rows);
                for _ in 0..rows {
                    ends.push(self.io.read_u64_le().await? as usize);
                }
                let total = ends.last().copied().unwrap_or(0);
                let mut items = Box::pin(self.column(inner, total)).await?.into_iter();
                let mut start = 0;
                let mut cells = Vec::with_capacity(rows);
                for end in ends {
                    if end < start || end > total {
                        return Err(NativeError::Protocol("bad array offsets".into()));
                    }
                    cells.push(Datum::Array(items.by_ref().take(end - start).collect()));
                    start = end;
                }
                Ok(cells)
            }
            ChType::LowCardinality(inner) => {
                let flags = self.io.read_u64_le().await?;
                let keys = self.io.read_u64_le().await? as usize;
                let base = match &**inner {
                    ChType::Nullable(t) => &**t,
                    t => t,
                };
                let dictionary = Box::pin(self.column(base, keys)).await?;
                let count = self.io.read_u64_le().await? as usize;
                let width = 1usize << (flags & 0xff);
                let mut cells = Vec::with_capacity(count);
                for _ in 0..count {
                    let mut bytes = [0u8; 8];
                    self.io.read_exact(&mut bytes[..width]).await?;
                    let i = u64::from_le_bytes(bytes) as usize;
                    let null = matches!(&**inner, ChType::Nullable(_)) && i == 0;
                    cells.push(if null {
                        Datum::Null
                    } else {
                        dictionary
                            .get(i)
                            .cloned()
                            .ok_or_else(|| NativeError::Protocol("bad dictionary index".into()))?
                    });
                }
                Ok(cells)
            }
            ChType::Scalar { name, args } => {
                let mut cells = Vec::with_capacity(rows);
                let width = match name.as_str() {
                    "String" => {
                        for _ in 0..rows {
                            cells.push(Datum::Bytes(self.bytes().await?));
                        }
                        return Ok(cells);
                    }
                    "FixedString" => args
                        .first()
                        .and_then(|n| n.parse().ok())
                        .ok_or_else(|| NativeError::Protocol(format!("type `{ty}`")))?,
                    "UInt8" | "Int8" | "Bool" | "Enum8" => 1,
                    "UInt16" | "Int16" | "Date" | "Enum16" => 2,
                    "UInt32" | "Int32" | "Float32" | "DateTime" | "Date32" => 4,
                    "UInt64" | "Int64" | "Float64" | "DateTime64" => 8,
                    "UUID" => 16,
                    other => {
                        return Err(NativeError::Protocol(format!(
                            "a result column has type `{other}`, which this client does not read"
                        )))
                    }
                };
                let mut data = vec![0u8; rows * width];
                self.io.read_exact(&mut data).await?;
                for v in data.chunks_exact(width) {
                    cells.push(scalar_cell(name, v));
                }
                Ok(cells)
            }
        }
    }

    async fn varuint(&mut self) -> NativeResult<u64> {
        let mut value = 0u64;
        for i in 0..10 {
            let byte = self.io.read_u8().await?;
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(NativeError::Protocol("a number is too long".into()))
    }

    async fn bytes(&mut self) -> NativeResult<Vec<u8>> {
        let len = self.varuint().await?;
        if len > MAX_STRING {
            return Err(NativeError::Protocol(format!(
                "a string of {len} bytes is too long"
            )));
        }
        let mut buf = vec![0u8; len as usize];
        self.io.read_exact(&mut buf).await?;
        Ok(buf)
    }

    async fn string(&mut self) -> NativeResult<String> {
        let bytes = self.bytes().await?;
        String::from_utf8(bytes).map_err(|_| NativeError::Protocol("text is not UTF-8".into()))
    }
}

const CLIENT_MAJOR: u64 = 1;
const CLIENT_MINOR: u64 = 0;

/// A data packet with a block of no columns and no rows: the end of a stream of blocks.
const EMPTY_BLOCK: [u8; 12] = [
    CLIENT_DATA as u8,
    0, // table name
    1,
    0, // is_overflows
    2,
    0xff,
    0xff,
    0xff,
    0xff, // bucket_num = -1
    0,    // end of info
    0,    // columns
    0,    // rows
];

fn scalar_cell(name: &str, v: &[u8]) -> Datum {
    let mut le = [0u8; 8];
    let n = v.len().min(8);
    le[..n].copy_from_slice(&v[..n]);
    let unsigned = u64::from_le_bytes(le);
    let signed = |bits: u32| ((unsigned << (64 - bits)) as i64) >> (64 - bits);
    match name {
        "Int8" | "Enum8" => Datum::Int(signed(8)),
        "Int16" | "Enum16" => Datum::Int(signed(16)),
        "Int32" | "Date32" => Datum::Int(signed(32)),
        "Int64" | "DateTime64" => Datum::Int(unsigned as i64),
        "Float32" => Datum::Float(f64::from(f32::from_le_bytes([v[0], v[1], v[2], v[3]]))),
        "Float64" => Datum::Float(f64::from_bits(unsigned)),
        "FixedString" | "UUID" => Datum::Bytes(v.to_vec()),
        _ => Datum::UInt(unsigned),
    }
}

struct ResultColumn {
    name: String,
    ty: String,
    cells: Vec<Datum>,
}

struct ResultBlock {
    rows: usize,
    columns: Vec<ResultColumn>,
}

impl ResultBlock {
    fn into_rows(self) -> Vec<Vec<Datum>> {
        let mut columns: Vec<std::vec::IntoIter<Datum>> = self
            .columns
            .into_iter()
            .map(|c| c.cells.into_iter())
            .collect();
        (0..self.rows)
            .map(|_| columns.iter_mut().filter_map(Iterator::next).collect())
            .collect()
    }
}

/// Appends `v` as LEB128.
pub fn put_varuint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Appends `s` with its length.
pub fn put_bytes(out: &mut Vec<u8>, s: &[u8]) {
    put_varuint(out, s.len() as u64);
    out.extend_from_slice(s);
}

pub fn put_str(out: &mut Vec<u8>, s: &str) {
    put_bytes(out, s.as_bytes());
}

/// The block of a data packet that [`start_block`] started, without the packet's own fields (its kind, the
/// table name and the block info): what ClickHouse's `Native` format holds in a file. `None` when `packet`
/// does not start that way.
pub fn packet_block(packet: &[u8]) -> Option<&[u8]> {
    packet.strip_prefix(&EMPTY_BLOCK[..10])
}

/// Starts a data packet with a block of `columns` × `rows`; each column follows as its name, its type and
/// its data ([`super::encode`]).
pub fn start_block(out: &mut Vec<u8>, columns: usize, rows: usize) {
    out.extend_from_slice(&EMPTY_BLOCK[..10]);
    put_varuint(out, columns as u64);
    put_varuint(out, rows as u64);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varuints() {
        let mut out = Vec::new();
        put_varuint(&mut out, 0);
        put_varuint(&mut out, 127);
        put_varuint(&mut out, 128);
        put_varuint(&mut out, 300);
        assert_eq!(out, [0, 127, 0x80, 1, 0xac, 2]);
    }

    #[test]
    fn block_start_and_end() {
        let mut out = Vec::new();
        start_block(&mut out, 0, 0);
        assert_eq!(out, EMPTY_BLOCK);
        let mut out = Vec::new();
        start_block(&mut out, 2, 300);
        assert_eq!(&out[10..], [2, 0xac, 2]);
    }

    #[test]
    fn scalar_cells() {
        assert_eq!(scalar_cell("Int8", &[0xff]), Datum::Int(-1));
        assert_eq!(scalar_cell("Int32", &(-5i32).to_le_bytes()), Datum::Int(-5));
        assert_eq!(
            scalar_cell("UInt64", &u64::MAX.to_le_bytes()),
            Datum::UInt(u64::MAX)
        );
        assert_eq!(
            scalar_cell("Float64", &1.5f64.to_le_bytes()),
            Datum::Float(1.5)
        );
        assert_eq!(
            Datum::Array(vec![Datum::UInt(1), Datum::Null]).text(),
            "[1, ]"
        );
    }

    /// A scripted server: reads the client's bytes and answers from a script, to check the parsing of
    /// packets the test server never sends (logs, table columns, nested exceptions).
    #[tokio::test]
    async fn reads_what_it_skips() {
        let (client, mut server) = tokio::io::duplex(1 << 16);
        let serve = tokio::spawn(async move {
            let mut hello = vec![0u8; 4096];
            let _ = server.read(&mut hello).await.unwrap();
            server.write_all(&server_hello(23, 8, 54465)).await.unwrap();
            let _ = server.read(&mut hello).await.unwrap();
            let mut out = Vec::new();
            put_varuint(&mut out, SERVER_TABLE_COLUMNS);
            put_str(&mut out, "");
            put_str(&mut out, "columns format version: 1");
            put_varuint(&mut out, SERVER_LOG);
            start_block_server(&mut out, 1, 1);
            put_str(&mut out, "text");
            put_str(&mut out, "String");
            put_str(&mut out, "hello");
            put_varuint(&mut out, SERVER_PROGRESS);
            out.extend_from_slice(&[1, 2, 3, 4, 5]);
            put_varuint(&mut out, SERVER_DATA);
            start_block_server(&mut out, 2, 2);
            put_str(&mut out, "n");
            put_str(&mut out, "Nullable(UInt64)");
            out.extend_from_slice(&[0, 1]);
            out.extend_from_slice(&7u64.to_le_bytes());
            out.extend_from_slice(&0u64.to_le_bytes());
            put_str(&mut out, "s");
            put_str(&mut out, "LowCardinality(String)");
            out.extend_from_slice(&1u64.to_le_bytes());
            out.extend_from_slice(&(1u64 << 9).to_le_bytes());
            out.extend_from_slice(&2u64.to_le_bytes());
            put_str(&mut out, "a");
            put_str(&mut out, "b");
            out.extend_from_slice(&2u64.to_le_bytes());
            out.extend_from_slice(&[1, 0]);
            put_varuint(&mut out, SERVER_PROFILE_INFO);
            out.extend_from_slice(&[1, 1, 1, 0, 0, 0]);
            put_varuint(&mut out, SERVER_END);
            put_varuint(&mut out, SERVER_EXCEPTION);
            exception(&mut out, 60, "DB::Exception: Table x doesn't exist", true);
            exception(&mut out, 1, "inner message", false);
            server.write_all(&out).await.unwrap();
            server
        });
        let mut conn = Connection::handshake(Box::new(client), "db", "u", "p")
            .await
            .unwrap();
        assert_eq!(conn.server.revision, 54465);
        assert_eq!(conn.revision, CLIENT_REVISION);
        assert_eq!(conn.server.timezone.as_deref(), Some("UTC"));
        let rows = conn.query("SELECT n, s").await.unwrap();
        assert_eq!(
            rows,
            vec![
                vec![Datum::UInt(7), Datum::Bytes(b"b".to_vec())],
                vec![Datum::Null, Datum::Bytes(b"a".to_vec())]
            ]
        );
        match conn.query("SELECT * FROM x").await {
            Err(NativeError::Server { code, message }) => {
                assert_eq!(code, 60);
                assert!(message.contains("doesn't exist"));
            }
            other => panic!("{other:?}"),
        }
        assert!(conn.is_usable());
        drop(serve.await.unwrap());
        // The server hung up: the connection says so before it is used.
        tokio::task::yield_now().await;
        assert!(!conn.is_usable());
    }

    /// An insert whose header the check refuses sends no rows, ends cleanly and leaves the connection
    /// usable; one whose rows the server refuses leaves it broken.
    #[tokio::test]
    async fn inserts_check_the_header() {
        let (client, mut server) = tokio::io::duplex(1 << 16);
        let serve = tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            let _ = server.read(&mut buf).await.unwrap();
            server
                .write_all(&server_hello(18, 16, 54413))
                .await
                .unwrap();
            let header = |out: &mut Vec<u8>| {
                put_varuint(out, SERVER_DATA);
                start_block_server(out, 1, 0);
                put_str(out, "id");
                put_str(out, "UInt64");
            };
            // First insert: header, then (after the client's empty block) the end.
            let mut received = Vec::new();
            while !received.ends_with(&EMPTY_BLOCK[..]) {
                let n = server.read(&mut buf).await.unwrap();
                received.extend_from_slice(&buf[..n]);
            }
            let mut out = Vec::new();
            header(&mut out);
            server.write_all(&out).await.unwrap();
            let mut rest = Vec::new();
            while !rest.ends_with(&EMPTY_BLOCK[..]) {
                let n = server.read(&mut buf).await.unwrap();
                rest.extend_from_slice(&buf[..n]);
            }
            assert_eq!(rest, EMPTY_BLOCK, "no rows after a refused header");
            server.write_all(&[SERVER_END as u8]).await.unwrap();
            // Second insert: the header passes, the rows are refused.
            let n = server.read(&mut buf).await.unwrap();
            assert!(n > 0);
            let mut out = Vec::new();
            header(&mut out);
            server.write_all(&out).await.unwrap();
            let _ = server.read(&mut buf).await.unwrap();
            let mut out = Vec::new();
            put_varuint(&mut out, SERVER_EXCEPTION);
            exception(&mut out, 53, "Type mismatch", false);
            server.write_all(&out).await.unwrap();
            server
        });
        let mut conn = Connection::handshake(Box::new(client), "db", "u", "p")
            .await
            .unwrap();
        assert_eq!(conn.revision, 54413);
        let mut block = Vec::new();
        start_block(&mut block, 1, 1);
        let result = conn
            .insert("INSERT INTO t VALUES", &[], vec![block.clone()], |h| {
                assert_eq!(h.columns, vec![("id".to_string(), "UInt64".to_string())]);
                Err("the table changed".to_string())
            })
            .await;
        assert!(matches!(result, Err(NativeError::Refused(ref why)) if why == "the table changed"));
        assert!(conn.is_usable());
        let result = conn
            .insert("INSERT INTO t VALUES", &[], vec![block], |_| Ok(()))
            .await;
        assert!(matches!(result, Err(NativeError::Server { code: 53, .. })));
        assert!(!conn.is_usable());
        drop(serve.await.unwrap());
    }

    #[test]
    fn a_packet_block_is_the_native_format() {
        let mut packet = Vec::new();
        start_block(&mut packet, 1, 2);
        put_str(&mut packet, "id");
        assert_eq!(packet_block(&packet).unwrap(), [1, 2, 2, b'i', b'd']);
        assert_eq!(packet_block(&[1, 2, 3]), None);
    }

    #[test]
    fn settings_by_revision() {
        let settings = [("async_insert", 0), ("insert_deduplicate", 300)];
        // Text with the important flag, as servers from 19.x read them.
        let mut out = Vec::new();
        put_settings(&mut out, CLIENT_REVISION, &settings);
        let mut expected = Vec::new();
        expected.extend_from_slice(b"\x0casync_insert\x01\x010");
        expected.extend_from_slice(b"\x12insert_deduplicate\x01\x03300");
        expected.push(0);
        assert_eq!(out, expected);
        // Binary values before it (18.16 speaks 54413): a varint each.
        let mut out = Vec::new();
        put_settings(&mut out, 54413, &settings);
        let mut expected = Vec::new();
        expected.extend_from_slice(b"\x0casync_insert\x00");
        expected.extend_from_slice(b"\x12insert_deduplicate\xac\x02");
        expected.push(0);
        assert_eq!(out, expected);
        let mut out = Vec::new();
        put_settings(&mut out, CLIENT_REVISION, &[]);
        assert_eq!(out, [0]);
    }

    /// A server's hello, with the fields of revisions up to the client's.
    fn server_hello(major: u64, minor: u64, revision: u64) -> Vec<u8> {
        let mut out = Vec::new();
        put_varuint(&mut out, SERVER_HELLO);
        put_str(&mut out, "ClickHouse");
        put_varuint(&mut out, major);
        put_varuint(&mut out, minor);
        put_varuint(&mut out, revision);
        put_str(&mut out, "UTC");
        put_str(&mut out, "box");
        put_varuint(&mut out, 1);
        out
    }

    /// One exception of a chain; `nested` says another follows.
    fn exception(out: &mut Vec<u8>, code: i32, message: &str, nested: bool) {
        out.extend_from_slice(&code.to_le_bytes());
        put_str(out, "DB::Exception");
        put_str(out, message);
        put_str(out, "stack");
        out.push(u8::from(nested));
    }

    fn start_block_server(out: &mut Vec<u8>, columns: usize, rows: usize) {
        put_str(out, "");
        out.extend_from_slice(&[1, 0, 2, 0xff, 0xff, 0xff, 0xff, 0]);
        put_varuint(out, columns as u64);
        put_varuint(out, rows as u64);
    }
}
